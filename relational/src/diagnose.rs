//! A task that failed on its data: find the file and the line.

use std::sync::Arc;

use futures::StreamExt;

use kask_core::error::df_message;
use kask_core::error::{Error, store_failure};
use kask_core::plan::Plan;
use kask_core::store::Store;
use kask_core::store::lines::lines_before;

/// A task over several files failed while reading: find the file, and make line numbers
/// count from the start of the file rather than from the task's byte range.
pub async fn diagnose(
    store: &Store,
    plan: &Plan,
    ctx: &datafusion::prelude::SessionContext,
    input: &str,
    fragments: &[kask_core::plan::Fragment],
    original: Error,
) -> Error {
    for f in fragments {
        let one = std::slice::from_ref(f);
        let Ok(table) = super::tables::ScanTable::new(store, &plan.inputs[input], one) else {
            continue;
        };
        let Ok(df) = ctx.read_table(Arc::new(table)) else {
            continue;
        };
        // Batches are read and dropped: the search holds no more of a file than its task did.
        let read = match df.execute_stream().await {
            Ok(mut stream) => loop {
                match stream.next().await {
                    Some(Ok(_)) => {}
                    Some(Err(e)) => break Err(e),
                    None => break Ok(()),
                }
            },
            Err(e) => Err(e),
        };
        if let Err(e) = read {
            if store_failure(&e).is_some() {
                // The store failed, not the data: the task's own error says so.
                return original;
            }
            let msg = file_lines(store, &f.path, f.start, &df_message(&e)).await;
            return Error::input(input, format!("{}: {msg}", f.path));
        }
    }
    // Reading alone succeeds: the failure is in the task's own operations.
    original
}

/// Rewrites the CSV reader's "line N" (0-based, counted from where the task's byte range
/// starts) into the 1-based line of the file that an editor shows.
async fn file_lines(store: &Store, path: &str, start: u64, msg: &str) -> String {
    let Some(i) = msg.find("at line ") else {
        return msg.to_string();
    };
    let at = i + "at line ".len();
    let digits: String = msg[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    let Ok(n) = digits.parse::<u64>() else {
        return msg.to_string();
    };
    let line = if start == 0 {
        (n + 1).to_string()
    } else {
        // The range begins by skipping the rest of the line `start` falls in, which the
        // previous range reads.
        match lines_before(store, path, start).await {
            Ok(Some(before)) => (before + n + 2).to_string(),
            Ok(None) => format!("{} after byte {start}", n + 1),
            Err(_) => return msg.to_string(),
        }
    };
    format!("{}{line}{}", &msg[..at], &msg[at + digits.len()..])
}
