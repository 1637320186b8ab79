//! An LRU cache of minute paths keyed by (symbol, day), on `hashlink`'s `LruCache` (O(1) get,
//! insert and eviction).
//!
//! Why: a day around the clock is 1440 bars (~90 KB); herd asks for the same days of lookback
//! of every symbol it trades on every cycle. Regenerating is deterministic, so evicting is
//! always safe, but it dominated the simulator's cost once the symbols' days outnumbered the
//! entries (every bars request of 500 symbols regenerated 500 days).
//!
//! Invariant: never more than `capacity` entries.

use std::sync::Arc;

use chrono::NaiveDate;
use hashlink::LruCache;

use super::bar::Bar;

pub struct DayCache {
    entries: LruCache<(String, NaiveDate), Arc<[Bar]>>,
}

impl DayCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: LruCache::new(capacity.max(1)),
        }
    }

    pub fn get(&mut self, symbol: &str, date: NaiveDate) -> Option<Arc<[Bar]>> {
        // Lookup by borrowed key would need a custom Borrow impl; the allocation is cheap
        // next to generating a day.
        self.entries.get(&(symbol.to_string(), date)).cloned()
    }

    pub fn put(&mut self, symbol: &str, date: NaiveDate, bars: Arc<[Bar]>) {
        self.entries.insert((symbol.to_string(), date), bars);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_least_recently_used_entry() {
        let d = |n| NaiveDate::from_ymd_opt(2024, 1, n).expect("date");
        let mut c = DayCache::new(2);
        c.put("A", d(1), Arc::from(Vec::new()));
        c.put("A", d(2), Arc::from(Vec::new()));
        assert!(c.get("A", d(1)).is_some());
        c.put("A", d(3), Arc::from(Vec::new()));
        assert_eq!(c.len(), 2);
        assert!(c.get("A", d(2)).is_none());
        assert!(c.get("A", d(1)).is_some());
    }
}
