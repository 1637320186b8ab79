//! A small LRU cache of minute paths keyed by (symbol, day).
//!
//! Why: a day around the clock is 1440 bars (~70 KB); herd asks for ten days of lookback on a
//! handful of symbols, over and over. Regenerating is deterministic, so evicting is always safe.
//!
//! Invariant: never more than `capacity` entries.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::NaiveDate;

use super::bar::Bar;

/// A cached minute path and the use stamp of its last access.
type Entry = (Arc<[Bar]>, u64);

pub struct DayCache {
    capacity: usize,
    /// Monotonic use counter: the entry with the smallest stamp is the least recently used.
    clock: u64,
    entries: HashMap<(String, NaiveDate), Entry>,
}

impl DayCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            clock: 0,
            entries: HashMap::new(),
        }
    }

    pub fn get(&mut self, symbol: &str, date: NaiveDate) -> Option<Arc<[Bar]>> {
        self.clock += 1;
        let stamp = self.clock;
        // Lookup by borrowed key would need a custom Borrow impl; the allocation is cheap
        // next to generating a day.
        let entry = self.entries.get_mut(&(symbol.to_string(), date))?;
        entry.1 = stamp;
        Some(entry.0.clone())
    }

    pub fn put(&mut self, symbol: &str, date: NaiveDate, bars: Arc<[Bar]>) {
        self.clock += 1;
        if self.entries.len() >= self.capacity
            && let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, (_, stamp))| *stamp)
                .map(|(k, _)| k.clone())
        {
            self.entries.remove(&oldest);
        }
        self.entries
            .insert((symbol.to_string(), date), (bars, self.clock));
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
