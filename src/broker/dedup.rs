//! Sharing one upstream call among concurrent identical requests.
//!
//! Invariants:
//! - While a call for a key is in flight, every further request for that key joins it instead
//!   of making its own; the first to complete removes the entry, so the next request after
//!   completion starts a fresh call (freshness is the cache's job, not this one's).
//! - A call whose every waiter went away stays joinable and resumes when polled again; it is
//!   never left half-done in the map for good.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

use futures::future::{BoxFuture, FutureExt, Shared};

type Calls<K, V> = Arc<Mutex<HashMap<K, Shared<BoxFuture<'static, V>>>>>;

pub struct Inflight<K, V: Clone> {
    /// A std mutex: held only to look up or insert, never across an `.await`.
    calls: Calls<K, V>,
}

impl<K, V: Clone> Clone for Inflight<K, V> {
    fn clone(&self) -> Self {
        Self {
            calls: Arc::clone(&self.calls),
        }
    }
}

impl<K, V: Clone> Default for Inflight<K, V> {
    fn default() -> Self {
        Self {
            calls: Arc::new(Mutex::new(HashMap::new())),
        }
    }
}

impl<K, V> Inflight<K, V>
where
    K: Eq + Hash + Clone + Send + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// The result of the call in flight for `key`, or of a new one made by `start`. The flag
    /// says whether an existing call was joined.
    pub fn run<F>(&self, key: K, start: impl FnOnce() -> F) -> (Shared<BoxFuture<'static, V>>, bool)
    where
        F: Future<Output = V> + Send + 'static,
    {
        // The map only ever holds complete insertions; a poisoned lock's data is consistent.
        let mut calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(call) = calls.get(&key) {
            return (call.clone(), true);
        }
        let fut = start();
        let map = Arc::clone(&self.calls);
        let k = key.clone();
        let call = async move {
            let value = fut.await;
            map.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&k);
            value
        }
        .boxed()
        .shared();
        calls.insert(key, call.clone());
        (call, false)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn concurrent_identical_requests_share_one_call_and_the_next_starts_afresh() {
        let inflight: Inflight<&str, u32> = Inflight::default();
        let calls = Arc::new(AtomicU32::new(0));
        let start = |calls: Arc<AtomicU32>| {
            move || async move {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                calls.fetch_add(1, Ordering::SeqCst) + 1
            }
        };
        let (a, joined_a) = inflight.run("clock", start(Arc::clone(&calls)));
        let (b, joined_b) = inflight.run("clock", start(Arc::clone(&calls)));
        let (other, _) = inflight.run("positions", start(Arc::clone(&calls)));
        assert!(!joined_a && joined_b);
        let (a, b, other) = tokio::join!(a, b, other);
        assert_eq!((a, b), (a, a), "both waiters got the same answer");
        assert_ne!(a, other);
        assert_eq!(calls.load(Ordering::SeqCst), 2, "one call per key");
        let (again, joined) = inflight.run("clock", start(Arc::clone(&calls)));
        assert!(!joined);
        again.await;
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }
}
