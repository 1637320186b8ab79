//! The journal's one writer: a task that takes entries off the queue in the order they were
//! recorded and commits them in batches, one transaction per batch.
//!
//! Invariants:
//! - The committed watermark only moves forward, and only after the batch holding every entry
//!   up to it has committed: a caller waiting for its ticket knows its entry is on disk.
//! - A batch that fails is retried whole, with backoff, until it commits: nothing recorded is
//!   skipped. Meanwhile the watermark stands still, so orders wait (and are refused at
//!   `journal.commit_timeout`) instead of leaving the process unrecorded.

use std::sync::Arc;
use std::time::Duration;

use sqlx::AnyPool;
use tokio::sync::{mpsc, watch};

use super::Shared;
use super::entry::{
    ActorStop, DecisionEntry, Entry, HoldTick, write_decisions, write_hold_ticks, write_stops,
};
use super::statements::{Dialect, ROWS_PER_INSERT};

/// Rows per transaction at most (an entry of a tick's decisions counts each): bounds a
/// transaction's time while the queue is long. A commit has a cost of its own (the WAL frames
/// of every page it changed, an fsync), so a cycle's burst of decisions goes in a few large
/// transactions: 1.9 → 1.5 µs of CPU a decision against 512 (`cargo bench --bench journal`).
/// An entry is never split, so a batch may end past it by one entry's rows.
const MAX_BATCH: usize = 4096;
/// Rows per transaction at most once it holds an order record: the broker waits for an
/// order's intent to commit before the order leaves, so the entries after it in the same
/// transaction would delay the order.
const MAX_BATCH_AWAITED: usize = 512;
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_CAP: Duration = Duration::from_secs(5);

/// An entry and its place in the queue.
pub(super) struct Queued {
    pub ticket: u64,
    pub entry: Entry,
}

pub(super) async fn run(
    pool: AnyPool,
    dialect: Dialect,
    mut queue: mpsc::UnboundedReceiver<Queued>,
    committed: watch::Sender<u64>,
    shared: Arc<Shared>,
) {
    let mut batch: Vec<Queued> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.recv().await {
        fill(&mut batch, first, || queue.try_recv().ok());
        let mut wait = RETRY_FIRST;
        loop {
            match commit(&pool, dialect, &batch).await {
                Ok(()) => break,
                Err(e) => {
                    shared.metrics.write_error();
                    shared.failed(&e);
                    tracing::error!(
                        event = "journal_write_failed", error = %e, entries = batch.len(),
                        retry_in_ms = wait.as_millis() as u64,
                        "journal write failed; retrying (orders wait until it succeeds)"
                    );
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(RETRY_CAP);
                }
            }
        }
        shared.recovered();
        // Counted by kind, one metric update per kind a batch (not per row: thousands a second).
        let mut written: Vec<(&'static str, usize)> = Vec::new();
        let (mut rows, mut decisions) = (0, 0);
        for q in &batch {
            let (kind, n) = (q.entry.kind(), q.entry.rows());
            rows += n;
            if matches!(q.entry, Entry::Decisions(_)) {
                decisions += n;
            }
            match written.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, sum)) => *sum += n,
                None => written.push((kind, n)),
            }
        }
        for (kind, n) in &written {
            shared.metrics.written(kind, *n as u64);
        }
        shared.settled(rows, decisions);
        if let Some(last) = batch.last() {
            committed.send_replace(last.ticket);
        }
        batch.clear();
    }
}

/// Takes `first` and what `next` has waiting into `batch`, up to [`MAX_BATCH`] rows, or up
/// to [`MAX_BATCH_AWAITED`] once an order record is in it (never past the entry that made it
/// so).
fn fill(batch: &mut Vec<Queued>, first: Queued, mut next: impl FnMut() -> Option<Queued>) {
    let cap = |q: &Queued| match q.entry {
        Entry::Order { .. } => MAX_BATCH_AWAITED,
        _ => MAX_BATCH,
    };
    let mut limit = cap(&first);
    let mut rows = first.entry.rows();
    batch.push(first);
    while rows < limit {
        let Some(q) = next() else { break };
        limit = limit.min(cap(&q));
        rows += q.entry.rows();
        batch.push(q);
    }
}

async fn commit(pool: &AnyPool, dialect: Dialect, batch: &[Queued]) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    // Decisions and actor stops go in as multi-row INSERTs (a tick's bare holds as one row of
    // `hold_ticks`); everything else one entry at a time, in order. They are all independent
    // rows nothing else refers to, so grouping them (written before the next other entry)
    // keeps every invariant.
    let mut groups = Groups::default();
    for q in batch {
        match &q.entry {
            Entry::Decisions(ds) => {
                // An entry is one tick: its holds join the row it opened, never another's.
                let mut opened = false;
                for d in ds {
                    if d.is_bare_hold() {
                        let joined =
                            opened && groups.hold_ticks.last_mut().is_some_and(|t| t.add(d));
                        if !joined {
                            if groups.hold_ticks.len() == ROWS_PER_INSERT {
                                write_hold_ticks(&mut tx, &groups.hold_ticks, dialect).await?;
                                groups.hold_ticks.clear();
                            }
                            groups.hold_ticks.push(HoldTick::new(d));
                            opened = true;
                        }
                    } else {
                        groups.decisions.push(d);
                        if groups.decisions.len() == ROWS_PER_INSERT {
                            write_decisions(&mut tx, &groups.decisions, dialect).await?;
                            groups.decisions.clear();
                        }
                    }
                }
            }
            Entry::Stop(s) => {
                groups.stops.push(s);
                if groups.stops.len() == ROWS_PER_INSERT {
                    write_stops(&mut tx, &groups.stops, dialect).await?;
                    groups.stops.clear();
                }
            }
            other => {
                groups.write(&mut tx, dialect).await?;
                other.write(&mut tx).await?;
            }
        }
    }
    groups.write(&mut tx, dialect).await?;
    tx.commit().await
}

/// The rows waiting for their multi-row INSERT.
#[derive(Default)]
struct Groups<'a> {
    hold_ticks: Vec<HoldTick<'a>>,
    decisions: Vec<&'a DecisionEntry>,
    stops: Vec<&'a ActorStop>,
}

impl Groups<'_> {
    /// Writes what waits, each group in statements of the sizes [`shaped`] gives.
    async fn write(
        &mut self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        dialect: Dialect,
    ) -> Result<(), sqlx::Error> {
        for rows in shaped(&self.hold_ticks) {
            write_hold_ticks(tx, rows, dialect).await?;
        }
        self.hold_ticks.clear();
        for rows in shaped(&self.decisions) {
            write_decisions(tx, rows, dialect).await?;
        }
        self.decisions.clear();
        for rows in shaped(&self.stops) {
            write_stops(tx, rows, dialect).await?;
        }
        self.stops.clear();
        Ok(())
    }
}

/// `rows` cut into statements of [`ROWS_PER_INSERT`] rows, the rest into powers of two, largest
/// first. Every row count is a statement of its own that sqlx prepares and keeps (up to 100 a
/// connection), and one of hundreds of rows is a large program: with any count allowed they
/// were several MiB at 1,000 instances. Ten sizes a kind of row bound them.
fn shaped<T>(rows: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = rows;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let n = if rest.len() >= ROWS_PER_INSERT {
            ROWS_PER_INSERT
        } else {
            1 << rest.len().ilog2()
        };
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Some(head)
    })
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;
    use crate::domain::OrderState;

    fn decision(ticket: u64) -> Queued {
        tick(ticket, 1)
    }

    /// A tick's `n` decisions, queued as one entry.
    fn tick(ticket: u64, n: usize) -> Queued {
        Queued {
            ticket,
            entry: Entry::Decisions(vec![crate::journal::tests::hold(); n]),
        }
    }

    fn order(ticket: u64) -> Queued {
        Queued {
            ticket,
            entry: Entry::Order {
                seq: ticket,
                record: Box::new(crate::journal::tests::record("m-1", OrderState::Submitting)),
                changed: true,
            },
        }
    }

    /// The batches `entries` are written in, as their rows.
    fn batches(entries: impl IntoIterator<Item = Queued>) -> Vec<usize> {
        let mut queue: VecDeque<Queued> = entries.into_iter().collect();
        let mut lengths = Vec::new();
        while let Some(first) = queue.pop_front() {
            let mut batch = Vec::new();
            fill(&mut batch, first, || queue.pop_front());
            lengths.push(batch.iter().map(|q| q.entry.rows()).sum());
        }
        lengths
    }

    #[test]
    fn rows_go_in_full_statements_then_powers_of_two() {
        let sizes = |n: usize| -> Vec<usize> {
            let rows: Vec<usize> = (0..n).collect();
            let parts: Vec<&[usize]> = shaped(&rows).collect();
            // Every row once, in order.
            assert_eq!(parts.concat(), rows);
            parts.iter().map(|p| p.len()).collect()
        };
        assert_eq!(sizes(0), Vec::<usize>::new());
        assert_eq!(sizes(1), [1]);
        assert_eq!(sizes(ROWS_PER_INSERT), [ROWS_PER_INSERT]);
        assert_eq!(
            sizes(2 * ROWS_PER_INSERT + 100),
            [ROWS_PER_INSERT, ROWS_PER_INSERT, 64, 32, 4]
        );
        // Whatever the count, a partial statement is one of a few sizes.
        let mut seen: Vec<usize> = (1..=2 * ROWS_PER_INSERT).flat_map(sizes).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen, [1, 2, 4, 8, 16, 32, 64, 128, 256, ROWS_PER_INSERT]);
    }

    #[test]
    fn decisions_alone_go_in_large_batches_and_one_with_an_order_ends_early() {
        let n = MAX_BATCH as u64 + 1000;
        assert_eq!(batches((0..n).map(decision)), [MAX_BATCH, 1000]);
        // An order early in the queue: its batch ends at the smaller bound.
        let with_order = (0..n).map(|t| if t == 10 { order(t) } else { decision(t) });
        assert_eq!(
            batches(with_order),
            [MAX_BATCH_AWAITED, MAX_BATCH, 1000 - MAX_BATCH_AWAITED]
        );
        // An order past that bound ends its batch at once: nothing after it waits with it.
        let late = 3000;
        let with_late_order = (0..n).map(|t| if t == late { order(t) } else { decision(t) });
        assert_eq!(
            batches(with_late_order),
            [late as usize + 1, n as usize - late as usize - 1]
        );
        // Ticks of five decisions: rows are what a batch counts, and a tick is never split,
        // so a batch ends with the tick that reaches the bound.
        let ticks = (0..1000).map(|t| tick(t, 5));
        let first = (MAX_BATCH / 5 + 1) * 5;
        assert!(first > MAX_BATCH);
        assert_eq!(batches(ticks), [first, 5000 - first]);
    }
}
