//! Listing the Hive-partitioned inputs of a relational job with the query's filters in hand:
//! the outermost key's folders that the filters rule out are never listed, and the files of
//! the folders that any key rules out are never opened. Each step asks the planner which files
//! its scans read ([`crate::hive_prune`] drops the others) and lists or opens only those.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use tracing::info;

use crate::exchange::{PlanningOnly, ShuffleSource};
use crate::hive_prune::files_read;
use crate::planner::{Cut, draft, stages_of};
use kask_api::{DaskJobSpec, Input};
use kask_core::error::{Error, Result};
use kask_core::plan::listing::{
    ListedFile, ListedInput, Listing, Splits, TopFolders, inspect_files, list_input, list_inputs,
    listed_from, top_folders, visible_files,
};
use kask_core::store::Store;

/// Every table of a job listed, those of Hive-partitioned inputs whose outermost folders a
/// query's filters skip without listing those folders: their folders are listed one level
/// down, a plan whose scans read one stand-in file per folder says which folders the query
/// reads, and only those are listed. Any failure of that plan lists every table whole, so that
/// the job's errors are those of its real plan.
pub async fn listed_by_folders(
    store: &Store,
    spec: &DaskJobSpec,
    tables: &BTreeMap<String, Input>,
) -> Result<Listing> {
    let ctx = crate::tables::session(store);
    let mut tops = BTreeMap::new();
    for (name, input) in tables {
        if let Some(top) = top_folders(store, input).await? {
            tops.insert(name.clone(), top);
        }
    }
    if tops.is_empty() {
        return list_inputs(store, tables, &ctx).await;
    }
    let mut probe = Listing {
        inputs: BTreeMap::new(),
    };
    for (name, input) in tables {
        let listed = match tops.get(name) {
            None => list_input(store, name, input, &ctx).await?,
            Some(top) => {
                let first =
                    listed_from(store, name, input, top.first.clone(), &top.values(), &ctx).await?;
                stand_ins(first, top)
            }
        };
        probe.inputs.insert(name.clone(), listed);
    }
    let read = async {
        let plan = draft(store, "probe", spec, &probe)?;
        let source: Arc<dyn ShuffleSource> = Arc::new(PlanningOnly);
        let cut = stages_of(store, &plan, &source).await?;
        Ok::<_, Error>(files_read(cut.stages.iter().map(|s| &s.root)))
    }
    .await;
    let Ok(read) = read else {
        info!("the folder probe did not plan; listing every folder");
        return list_inputs(store, tables, &ctx).await;
    };
    let mut listing = probe;
    for (name, top) in &tops {
        let kept: Vec<&(String, Option<String>)> = top
            .folders
            .iter()
            .filter(|(dir, _)| read.contains(&store.path(dir).to_string()))
            .collect();
        info!(
            table = name.as_str(),
            key = top.key.as_str(),
            folders = top.folders.len(),
            kept = kept.len(),
            "outer folders the filters keep"
        );
        let mut files = files_below(store, top, &kept).await?;
        if files.is_empty() {
            // No folder is read: the first one's files give the columns of an empty result
            // (the planner skips them as it would any other).
            files = top.first.clone();
        }
        let listed = listed_from(store, name, &tables[name], files, &top.values(), &ctx).await?;
        listing.inputs.insert(name.clone(), listed);
    }
    Ok(listing)
}

/// `first` (the files of the first outer folder, listed) with one stand-in file per outer
/// folder instead, knowing only the outer key: a plan over them scans the folders that the
/// query's filters on that key keep.
fn stand_ins(first: ListedInput, top: &TopFolders) -> ListedInput {
    let files = top
        .folders
        .iter()
        .map(|(dir, value)| ListedFile {
            path: dir.clone(),
            size: 1,
            version: String::new(),
            splits: Splits::Whole,
            keys: vec![value.clone()],
        })
        .collect();
    ListedInput {
        files,
        sampled: false,
        ..first
    }
}

/// How many kept folders are listed one by one; beyond, the whole input is listed at once (a
/// listing returns a thousand files a request) and the files of the others dropped.
const FOLDERS_LISTED_ONE_BY_ONE: usize = 64;

/// The files below the `kept` outer folders of `top`, sorted by path.
async fn files_below(
    store: &Store,
    top: &TopFolders,
    kept: &[&(String, Option<String>)],
) -> Result<Vec<(String, u64, String)>> {
    if kept.len() <= FOLDERS_LISTED_ONE_BY_ONE {
        let dirs: Vec<String> = kept.iter().map(|(dir, _)| dir.clone()).collect();
        let listed: Vec<Vec<(String, u64, String)>> = futures::stream::iter(dirs)
            .map(|dir| async move {
                // The first folder was listed when the folders were.
                if dir == top.folders[0].0 {
                    return Ok(top.first.clone());
                }
                visible_files(store, &dir).await
            })
            .buffered(16)
            .try_collect()
            .await?;
        return Ok(listed.into_iter().flatten().collect());
    }
    let dirs: BTreeSet<String> = kept.iter().map(|(dir, _)| format!("{dir}/")).collect();
    Ok(visible_files(store, &top.dir)
        .await?
        .into_iter()
        .filter(|(path, _, _)| {
            dirs.range(..=path.clone())
                .next_back()
                .is_some_and(|d| path.starts_with(d.as_str()))
        })
        .collect())
}

/// `listing` without the files of its Hive-partitioned inputs that no scan of `cut` reads
/// (their folder keys fail the query's filters), the files kept of sampled inputs opened; or
/// `None` when every file is read and opened.
pub async fn without_unread_folders(
    store: &Store,
    listing: &Listing,
    cut: &Cut,
) -> Result<Option<Listing>> {
    if listing.inputs.values().all(|i| i.hive.is_empty()) {
        return Ok(None);
    }
    let read = files_read(cut.stages.iter().map(|s| &s.root));
    let keep = |input: &ListedInput, f: &ListedFile| {
        input.hive.is_empty() || read.contains(&store.path(&f.path).to_string())
    };
    let skipped = listing
        .inputs
        .values()
        .map(|i| i.files.iter().filter(|f| !keep(i, f)).count())
        .sum::<usize>();
    info!(files = skipped, "files in folders the filters skip");
    if skipped == 0 && !listing.sampled() {
        return Ok(None);
    }
    open_kept(store, listing, keep).await.map(Some)
}

/// `listing` with only the files `keep` accepts, those of sampled inputs opened.
pub async fn open_kept(
    store: &Store,
    listing: &Listing,
    keep: impl Fn(&ListedInput, &ListedFile) -> bool,
) -> Result<Listing> {
    let ctx = crate::tables::session(store);
    let mut inputs = BTreeMap::new();
    for (name, input) in &listing.inputs {
        let kept = inspect_files(store, name, input, |f| keep(input, f), &ctx).await?;
        inputs.insert(name.clone(), kept);
    }
    Ok(Listing { inputs })
}
