//! Input blocks that the tasks of one process read alike, decoded once. Each tile of a matrix
//! product reads a row of blocks of its left operand and a column of blocks of its right one,
//! which the other tiles of that row and column read too, and `kask run` runs every tile's
//! task in one process (a worker pod, the tasks it is given). Blocks are kept up to a byte
//! budget, the least recently used leaving first; a block being read by one task is awaited
//! by the others instead of read twice.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use super::block::{Block, each};
use kask_core::error::Result;

/// A block read or being read.
type Cell = Arc<OnceCell<Arc<Block>>>;

struct Entry {
    cell: Cell,
    /// Its bytes once read (0 while being read).
    bytes: u64,
    /// When it was last asked for (a counter).
    used: u64,
}

#[derive(Default)]
struct State {
    entries: HashMap<String, Entry>,
    bytes: u64,
    clock: u64,
}

/// Blocks by key; the key names the job, the array and the region.
#[derive(Default)]
pub struct BlockCache {
    state: Mutex<State>,
}

impl BlockCache {
    /// The block of `key`: kept, being read by another task, or read now by `read` and kept
    /// if the cache then holds at most `budget` bytes (older blocks leave to make room).
    pub async fn get_or_read<F, Fut>(&self, key: &str, budget: u64, read: F) -> Result<Arc<Block>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Block>>,
    {
        let cell = self.cell(key);
        let block = cell
            .get_or_try_init(|| async { read().await.map(Arc::new) })
            .await?
            .clone();
        self.settle(key, &cell, bytes_of(&block), budget);
        Ok(block)
    }

    /// The cell of `key`, made if new, marked as just used.
    fn cell(&self, key: &str) -> Cell {
        let Ok(mut state) = self.state.lock() else {
            return Arc::new(OnceCell::new());
        };
        state.clock += 1;
        let clock = state.clock;
        let entry = state
            .entries
            .entry(key.to_string())
            .or_insert_with(|| Entry {
                cell: Arc::new(OnceCell::new()),
                bytes: 0,
                used: clock,
            });
        entry.used = clock;
        Arc::clone(&entry.cell)
    }

    /// Counts a block just read, then drops the least recently used blocks until the cache
    /// holds at most `budget` bytes; a block larger than that alone is not kept.
    fn settle(&self, key: &str, cell: &Cell, bytes: u64, budget: u64) {
        let Ok(mut guard) = self.state.lock() else {
            return;
        };
        let state = &mut *guard;
        match state.entries.get_mut(key) {
            Some(e) if Arc::ptr_eq(&e.cell, cell) && e.bytes == 0 => {
                if bytes > budget {
                    state.entries.remove(key);
                    return;
                }
                e.bytes = bytes;
                state.bytes += bytes;
            }
            _ => return,
        }
        while state.bytes > budget {
            let Some(oldest) = state
                .entries
                .iter()
                .filter(|(_, e)| e.bytes > 0)
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(e) = state.entries.remove(&oldest) {
                state.bytes -= e.bytes;
            }
        }
    }

    /// The bytes of the blocks kept.
    pub fn bytes(&self) -> u64 {
        self.state.lock().map_or(0, |s| s.bytes)
    }
}

fn bytes_of(block: &Block) -> u64 {
    fn element<T>(_: &ndarray::ArrayD<T>) -> usize {
        std::mem::size_of::<T>()
    }
    each!(block, a => (a.len() * element(a)) as u64)
}
