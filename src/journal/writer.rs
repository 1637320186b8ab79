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
use super::entry::{DECISIONS_PER_INSERT, DecisionEntry, Entry, Placeholders, write_decisions};

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
    placeholders: Placeholders,
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
            match commit(&pool, placeholders, &batch).await {
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
        let decisions = batch
            .iter()
            .filter(|q| matches!(q.entry, Entry::Decision(_)))
            .count();
        for q in &batch {
            shared.metrics.written(q.entry.kind(), 1);
        }
        shared.settled(batch.len(), decisions);
        if let Some(last) = batch.last() {
            committed.send_replace(last.ticket);
        }
        batch.clear();
    }
}

async fn commit(
    pool: &AnyPool,
    placeholders: Placeholders,
    batch: &[Queued],
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    // Decisions in a row go in as one multi-row INSERT; everything else one entry at a time, in
    // order (decisions are independent rows, so grouping them keeps every invariant).
    let mut decisions: Vec<&DecisionEntry> = Vec::with_capacity(DECISIONS_PER_INSERT);
    for q in batch {
        if let Entry::Decision(d) = &q.entry {
            decisions.push(d);
            if decisions.len() == DECISIONS_PER_INSERT {
                write_decisions(&mut tx, &decisions, placeholders).await?;
                decisions.clear();
            }
            continue;
        }
        write_decisions(&mut tx, &decisions, placeholders).await?;
        decisions.clear();
        q.entry.write(&mut tx).await?;
    }
    write_decisions(&mut tx, &decisions, placeholders).await?;
    tx.commit().await
}
