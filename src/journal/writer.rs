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
    ActorStop, DecisionEntry, Dialect, Entry, ROWS_PER_INSERT, write_decisions, write_holds,
    write_stops,
};

/// Entries per transaction at most: bounds a transaction's time while the queue is long.
const MAX_BATCH: usize = 512;
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
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
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
        // Counted by kind, one metric update per kind a batch (not per entry: thousands a second).
        let mut written: Vec<(&'static str, u64)> = Vec::new();
        for q in &batch {
            let kind = q.entry.kind();
            match written.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, n)) => *n += 1,
                None => written.push((kind, 1)),
            }
        }
        for (kind, n) in &written {
            shared.metrics.written(kind, *n);
        }
        let decisions = batch
            .iter()
            .filter(|q| matches!(q.entry, Entry::Decision(_)))
            .count();
        shared.settled(batch.len(), decisions);
        if let Some(last) = batch.last() {
            committed.send_replace(last.ticket);
        }
        batch.clear();
    }
}

async fn commit(pool: &AnyPool, dialect: Dialect, batch: &[Queued]) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    // Decisions and actor stops go in as multi-row INSERTs (bare holds in their own, with
    // half the parameters); everything else one entry at a time, in order. They are all
    // independent rows nothing else refers to, so grouping them (written before the next
    // other entry) keeps every invariant.
    let mut groups = Groups::default();
    for q in batch {
        match &q.entry {
            Entry::Decision(d) if d.is_bare_hold() => {
                groups.holds.push(d);
                if groups.holds.len() == ROWS_PER_INSERT {
                    write_holds(&mut tx, &groups.holds, dialect).await?;
                    groups.holds.clear();
                }
            }
            Entry::Decision(d) => {
                groups.decisions.push(d);
                if groups.decisions.len() == ROWS_PER_INSERT {
                    write_decisions(&mut tx, &groups.decisions, dialect).await?;
                    groups.decisions.clear();
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
    holds: Vec<&'a DecisionEntry>,
    decisions: Vec<&'a DecisionEntry>,
    stops: Vec<&'a ActorStop>,
}

impl Groups<'_> {
    async fn write(
        &mut self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        dialect: Dialect,
    ) -> Result<(), sqlx::Error> {
        write_holds(tx, &self.holds, dialect).await?;
        self.holds.clear();
        write_decisions(tx, &self.decisions, dialect).await?;
        self.decisions.clear();
        write_stops(tx, &self.stops, dialect).await?;
        self.stops.clear();
        Ok(())
    }
}
