//! Values that the tasks running in one process share: `kask run` runs every task of a stage
//! in one process, and what each would compute alike (a stage's key filter, a join's
//! broadcast side) is computed once. A value lives as long as a task holds it; tasks that
//! run at once, or one after another on the same worker, find it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};

/// A value being computed or computed, which the first task to ask fills.
pub type Cell<T> = tokio::sync::OnceCell<T>;

/// Cells by key (which names the store, the job and what the value is of).
pub struct ProcessCache<T> {
    cells: Mutex<BTreeMap<String, Weak<Cell<T>>>>,
}

impl<T> ProcessCache<T> {
    /// An empty cache, for a `static`.
    pub const fn new() -> Self {
        ProcessCache {
            cells: Mutex::new(BTreeMap::new()),
        }
    }

    /// The cell of `key`, shared with every task that holds it now.
    pub fn cell(&self, key: String) -> Arc<Cell<T>> {
        let Ok(mut all) = self.cells.lock() else {
            return Arc::new(Cell::new());
        };
        if let Some(cell) = all.get(&key).and_then(Weak::upgrade) {
            return cell;
        }
        all.retain(|_, w| w.strong_count() > 0);
        let cell = Arc::new(Cell::new());
        all.insert(key, Arc::downgrade(&cell));
        cell
    }

    /// Tasks that ask for `key` from now on get a new cell, if `cell` is still its cell;
    /// those that hold `cell` keep it.
    pub fn forget(&self, key: &str, cell: &Arc<Cell<T>>) {
        if let Ok(mut all) = self.cells.lock()
            && all
                .get(key)
                .and_then(Weak::upgrade)
                .is_some_and(|c| Arc::ptr_eq(&c, cell))
        {
            all.remove(key);
        }
    }
}

impl<T> Default for ProcessCache<T> {
    fn default() -> Self {
        Self::new()
    }
}
