//! Parallel batch fetching for [`Fetcher`]: a scoped worker pool over a shared queue.
//!
//! Owns only the scheduling and progress accounting; downloading and caching stay in the
//! parent module.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use super::{FetchError, FetchItem, Fetcher};

impl Fetcher {
    /// Fetches `items` into the cache with `threads` workers sharing one queue, each item
    /// with retries. `progress(done_items, done_bytes, total_bytes)` is called after every
    /// item and about every MiB, from any worker. Returns cache paths in input order; the
    /// first hard error stops the workers and is returned (its URL names the file).
    pub fn fetch_all(
        &self,
        items: &[FetchItem],
        threads: usize,
        progress: &(dyn Fn(u64, u64, u64) + Sync),
    ) -> Result<Vec<PathBuf>, FetchError> {
        let total: u64 = items.iter().map(|i| i.size).sum();
        let (next, done, bytes) = (AtomicUsize::new(0), AtomicU64::new(0), AtomicU64::new(0));
        let failed = AtomicBool::new(false);
        let first_error = Mutex::new(None);
        let results = Mutex::new(vec![None; items.len()]);
        let on_bytes = |delta: i64| {
            let before = if delta >= 0 {
                bytes.fetch_add(delta.unsigned_abs(), Ordering::Relaxed)
            } else {
                bytes.fetch_sub(delta.unsigned_abs(), Ordering::Relaxed)
            };
            let after = before.wrapping_add_signed(delta);
            if delta > 0 && before >> 20 != after >> 20 {
                progress(done.load(Ordering::Relaxed), after, total);
            }
        };
        let worker = || {
            while !failed.load(Ordering::Relaxed) {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                match self.fetch_with_progress(&item.rel, item.size, &item.sha256, &on_bytes) {
                    Ok(path) => {
                        results.lock().unwrap_or_else(PoisonError::into_inner)[i] = Some(path);
                        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                        progress(n, bytes.load(Ordering::Relaxed), total);
                    }
                    Err(e) => {
                        failed.store(true, Ordering::Relaxed);
                        let mut slot = first_error.lock().unwrap_or_else(PoisonError::into_inner);
                        slot.get_or_insert(e);
                    }
                }
            }
        };
        std::thread::scope(|scope| {
            for _ in 0..threads.clamp(1, items.len().max(1)) {
                scope.spawn(worker);
            }
        });
        if let Some(e) = first_error
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
        {
            return Err(e);
        }
        let results = results.into_inner().unwrap_or_else(PoisonError::into_inner);
        Ok(results.into_iter().flatten().collect())
    }
}
