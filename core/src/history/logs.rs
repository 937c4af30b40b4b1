//! A copy of this process's log, kept in memory so that a worker pod can upload it to the
//! job's history when it ends, and `kask logs` can show it after the pod is gone.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::Mutex;

/// The start of the log kept whole (what the process set out to do).
pub const HEAD: usize = 256 * 1024;
/// The end of the log kept (what it did last, and its error).
pub const TAIL: usize = 4 * 1024 * 1024;

#[derive(Default)]
pub struct Kept {
    head: Vec<u8>,
    pub tail: VecDeque<u8>,
    dropped: u64,
}

static KEPT: Mutex<Option<Kept>> = Mutex::new(None);

/// Starts keeping a copy of what is written through [`LogCopy`].
pub fn keep() {
    if let Ok(mut k) = KEPT.lock()
        && k.is_none()
    {
        *k = Some(Kept::default());
    }
}

pub fn append(kept: &mut Kept, mut bytes: &[u8]) {
    let room = HEAD.saturating_sub(kept.head.len());
    let first = room.min(bytes.len());
    kept.head.extend_from_slice(&bytes[..first]);
    bytes = &bytes[first..];
    kept.tail.extend(bytes);
    let over = kept.tail.len().saturating_sub(TAIL);
    if over > 0 {
        kept.tail.drain(..over);
        kept.dropped += over as u64;
    }
}

pub fn render(kept: &Kept) -> String {
    let mut out = String::from_utf8_lossy(&kept.head).into_owned();
    if kept.dropped > 0 {
        out.push_str(&format!(
            "\n[... {} bytes of log left out ...]\n",
            kept.dropped
        ));
    }
    let (a, b) = kept.tail.as_slices();
    out.push_str(&String::from_utf8_lossy(&[a, b].concat()));
    out
}

/// The log kept so far, when [`keep`] was called.
pub fn kept() -> Option<String> {
    KEPT.lock().ok()?.as_ref().map(render)
}

/// A writer that copies what it is given into the kept log (a no-op until [`keep`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct LogCopy;

impl Write for LogCopy {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut k) = KEPT.lock()
            && let Some(kept) = k.as_mut()
        {
            append(kept, buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes to standard error and to the kept log.
#[derive(Debug, Default)]
pub struct StderrAndCopy;

impl Write for StderrAndCopy {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = LogCopy.write(buf);
        std::io::stderr().write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
