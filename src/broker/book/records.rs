//! The book's order records: by age, by `client_order_id`, and the ones still working by
//! instance, so a view or an order finds its instance's working orders without walking the
//! thousands of final records the book keeps for `/orders`.
//!
//! Invariants:
//! - A stored record changes only through [`Records::update`], which files it again after the
//!   change: the working index holds exactly the records that are not final, and the count of
//!   final ones is exact. Nothing outside hands out `&mut OrderRecord`.
//! - Iteration is in age order (insertion sequence).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::domain::{ClientOrderId, InstanceId, OrderRecord};

/// The sequences of each instance's records that are not final.
type Working = HashMap<InstanceId, BTreeSet<u64>>;

#[derive(Default)]
pub(super) struct Records {
    all: BTreeMap<u64, OrderRecord>,
    by_client_id: HashMap<ClientOrderId, u64>,
    working: Working,
    finals: usize,
}

impl Records {
    /// Stores `record` at `seq`, replacing what was there.
    pub fn insert(&mut self, seq: u64, record: OrderRecord) {
        if let Some(old) = self.all.remove(&seq) {
            unfile(&mut self.working, &mut self.finals, seq, &old);
            self.by_client_id.remove(&old.client_order_id);
        }
        file(&mut self.working, &mut self.finals, seq, &record);
        self.by_client_id
            .insert(record.client_order_id.clone(), seq);
        self.all.insert(seq, record);
    }

    pub fn seq_of(&self, client_order_id: &ClientOrderId) -> Option<u64> {
        self.by_client_id.get(client_order_id).copied()
    }

    pub fn contains(&self, client_order_id: &ClientOrderId) -> bool {
        self.by_client_id.contains_key(client_order_id)
    }

    pub fn get(&self, seq: u64) -> Option<&OrderRecord> {
        self.all.get(&seq)
    }

    pub fn by_client_id(&self, client_order_id: &ClientOrderId) -> Option<&OrderRecord> {
        self.get(self.seq_of(client_order_id)?)
    }

    /// Changes the record at `seq` with `change` (which keeps its `client_order_id`), then
    /// files it by its new state.
    pub fn update<R>(&mut self, seq: u64, change: impl FnOnce(&mut OrderRecord) -> R) -> Option<R> {
        let record = self.all.get_mut(&seq)?;
        unfile(&mut self.working, &mut self.finals, seq, record);
        let result = change(record);
        debug_assert_eq!(self.by_client_id.get(&record.client_order_id), Some(&seq));
        file(&mut self.working, &mut self.finals, seq, record);
        Some(result)
    }

    /// Records older than `before` (a sequence), newest first.
    pub fn older_than(&self, before: u64) -> impl Iterator<Item = (u64, &OrderRecord)> {
        self.all.range(..before).rev().map(|(seq, r)| (*seq, r))
    }

    /// Every record not final, oldest first.
    pub fn working(&self) -> impl Iterator<Item = (u64, &OrderRecord)> {
        let mut seqs: Vec<u64> = self.working.values().flatten().copied().collect();
        seqs.sort_unstable();
        seqs.into_iter()
            .filter_map(|seq| Some((seq, self.all.get(&seq)?)))
    }

    /// Every record not final, in no particular order (no sorting: for sets and sums).
    pub fn working_any_order(&self) -> impl Iterator<Item = &OrderRecord> {
        self.working
            .values()
            .flatten()
            .filter_map(|seq| self.all.get(seq))
    }

    /// `instance`'s records that are not final, oldest first.
    pub fn working_of(&self, instance: &InstanceId) -> impl Iterator<Item = &OrderRecord> {
        self.working
            .get(instance)
            .into_iter()
            .flatten()
            .filter_map(|seq| self.all.get(seq))
    }

    /// Drops the oldest final records beyond `keep`; working ones always stay.
    pub fn evict_final_beyond(&mut self, keep: usize) {
        let Some(excess) = self.finals.checked_sub(keep).filter(|n| *n > 0) else {
            return;
        };
        let victims: Vec<u64> = self
            .all
            .iter()
            .filter(|(_, r)| r.state.is_final())
            .take(excess)
            .map(|(seq, _)| *seq)
            .collect();
        for seq in victims {
            if let Some(r) = self.all.remove(&seq) {
                unfile(&mut self.working, &mut self.finals, seq, &r);
                self.by_client_id.remove(&r.client_order_id);
            }
        }
    }
}

/// Counts a record by its state: working ones in their instance's set, final ones in `finals`.
fn file(working: &mut Working, finals: &mut usize, seq: u64, r: &OrderRecord) {
    if r.state.is_final() {
        *finals += 1;
    } else {
        working.entry(r.instance.clone()).or_default().insert(seq);
    }
}

/// Undoes [`file`] for the record as it was filed.
fn unfile(working: &mut Working, finals: &mut usize, seq: u64, r: &OrderRecord) {
    if r.state.is_final() {
        *finals -= 1;
    } else if let Some(set) = working.get_mut(&r.instance) {
        set.remove(&seq);
        if set.is_empty() {
            working.remove(&r.instance);
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use proptest::prelude::*;
    use rust_decimal::Decimal;

    use super::*;
    use crate::domain::{OrderState, Side, Symbol};

    const STATES: [OrderState; 4] = [
        OrderState::Submitting,
        OrderState::Unknown,
        OrderState::Filled,
        OrderState::Refused,
    ];

    fn record(instance: usize, seq: u64, state: OrderState) -> OrderRecord {
        let now = Utc::now();
        OrderRecord {
            instance: InstanceId::parse(&format!("i{instance}")).unwrap(),
            client_order_id: ClientOrderId::new(format!("cid-{seq}")),
            order_id: None,
            symbol: Symbol::parse("SPY").unwrap(),
            side: Side::Buy,
            qty: Decimal::ONE,
            state,
            venue_status: None,
            submitted_at: None,
            filled_qty: Decimal::ZERO,
            filled_avg_price: None,
            decided_on: now,
            reason: String::new(),
            error: None,
            created_at: now,
            updated_at: now,
            lease_epoch: None,
        }
    }

    /// The indexes say what a walk over every record says.
    fn assert_indexed(records: &Records) {
        for instance in 0..3 {
            let id = InstanceId::parse(&format!("i{instance}")).unwrap();
            let walked: Vec<&str> = records
                .all
                .values()
                .filter(|r| r.instance == id && !r.state.is_final())
                .map(|r| r.client_order_id.as_str())
                .collect();
            let indexed: Vec<&str> = records
                .working_of(&id)
                .map(|r| r.client_order_id.as_str())
                .collect();
            assert_eq!(indexed, walked, "{id}");
        }
        let working: Vec<u64> = records.working().map(|(seq, _)| seq).collect();
        let mut any_order: Vec<&str> = records
            .working_any_order()
            .map(|r| r.client_order_id.as_str())
            .collect();
        let mut in_order: Vec<&str> = records
            .working()
            .map(|(_, r)| r.client_order_id.as_str())
            .collect();
        any_order.sort_unstable();
        in_order.sort_unstable();
        assert_eq!(any_order, in_order);
        let walked: Vec<u64> = records
            .all
            .iter()
            .filter(|(_, r)| !r.state.is_final())
            .map(|(seq, _)| *seq)
            .collect();
        assert_eq!(working, walked);
        let finals = records.all.values().filter(|r| r.state.is_final()).count();
        assert_eq!(records.finals, finals);
        for (seq, r) in &records.all {
            assert_eq!(records.seq_of(&r.client_order_id), Some(*seq));
        }
        assert_eq!(records.by_client_id.len(), records.all.len());
    }

    #[derive(Debug, Clone)]
    enum Step {
        Insert { instance: usize, state: usize },
        Update { pick: usize, state: usize },
        Evict { keep: usize },
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0..3usize, 0..4usize).prop_map(|(instance, state)| Step::Insert { instance, state }),
            (0..64usize, 0..4usize).prop_map(|(pick, state)| Step::Update { pick, state }),
            (0..8usize).prop_map(|keep| Step::Evict { keep }),
        ]
    }

    proptest! {
        #[test]
        fn the_working_index_and_the_final_count_follow_every_change(
            steps in proptest::collection::vec(step(), 1..60)
        ) {
            let mut records = Records::default();
            let mut next = 0u64;
            for s in steps {
                match s {
                    Step::Insert { instance, state } => {
                        records.insert(next, record(instance, next, STATES[state]));
                        next += 1;
                    }
                    Step::Update { pick, state } => {
                        let seqs: Vec<u64> = records.all.keys().copied().collect();
                        if let Some(seq) = seqs.get(pick % seqs.len().max(1)) {
                            records.update(*seq, |r| r.state = STATES[state]);
                        }
                    }
                    Step::Evict { keep } => {
                        let working = records.working().count();
                        records.evict_final_beyond(keep);
                        prop_assert_eq!(records.working().count(), working);
                        prop_assert!(records.finals <= keep);
                    }
                }
                assert_indexed(&records);
            }
        }
    }

    #[test]
    fn eviction_drops_the_oldest_final_records_only() {
        let mut records = Records::default();
        for seq in 0..6 {
            let state = if seq == 1 {
                OrderState::Submitting
            } else {
                OrderState::Filled
            };
            records.insert(seq, record(0, seq, state));
        }
        records.evict_final_beyond(2);
        let left: Vec<u64> = records.all.keys().copied().collect();
        assert_eq!(left, [1, 4, 5]);
        assert!(
            records
                .seq_of(&ClientOrderId::new("cid-0".into()))
                .is_none()
        );
        assert_indexed(&records);
    }
}
