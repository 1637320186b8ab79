//! The journal: the durable record of every decision, order, status change, fill, admin action
//! and actor stop, on SQLite (one file under the data directory, the default) or PostgreSQL
//! through the same code.
//!
//! The venue is the source of truth for orders and the account's positions; the journal is the
//! source of truth for why each order was placed and which instance owns it. At start herd
//! restores its order book and every instance's ledger from it (`read.rs`), before any
//! strategy ticks.
//!
//! Invariants:
//! - Writes never block an actor's thread: [`Journal::record`] queues an entry for the one
//!   writer task (`writer.rs`) and returns a [`Ticket`]; [`Journal::durable`] waits, as a
//!   future, until that entry has committed.
//! - An order's intent is durable before the order leaves the process (the broker waits for its
//!   ticket); its later changes are recorded after they happen, in order.
//! - The queue is bounded for what can be dropped: decisions past `journal.queue` waiting are
//!   dropped and counted (`herd_journal_entries_dropped_total{kind="decision"}`). Order
//!   records, fills, admin actions, stops and state are never dropped; their number is bounded
//!   by the orders admitted, and an order is admitted only once its intent has committed, so a
//!   writer that falls behind slows orders down instead of losing them.

mod entry;
mod export;
mod open;
mod read;
mod retention;
mod settings;
mod statements;
mod writer;

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::AnyPool;
use tokio::sync::{mpsc, watch};

pub use entry::{ActorStop, AdminAction, DecisionEntry, Entry, Fill, decision_detail};
pub use export::{ExportError, ExportFormat, ExportKind, export};
pub use open::{JournalError, known_version};
pub use read::{OrderQuery, Restored, RestoredOrder};
pub use settings::{DEFAULT_FILE, JournalSettings, Location};

use crate::metrics::JournalMetrics;
use statements::Dialect;
use writer::Queued;

/// The longest a page of `/orders` waits for queued changes to commit.
const PAGE_FLUSH: Duration = Duration::from_secs(1);

/// Keys of the values in `herd_state`.
pub mod keys {
    /// The trading state an operator or the risk gate set (`{"state":…,"reason":…}`).
    pub const TRADING: &str = "trading";
    /// Prefix of one key per paused instance (`paused:<instance>`).
    pub const PAUSED: &str = "paused:";
    /// The default account's positions before herd's first order (`{"SPY":"5",…}`).
    pub const EXTERNAL: &str = "external_positions";

    /// The key of [`EXTERNAL`] for `account`: the default account keeps the key it had before
    /// accounts existed; another's is `external_positions:<id>`.
    pub fn external(account: &crate::domain::AccountId) -> String {
        if account.as_str() == crate::domain::AccountId::DEFAULT {
            EXTERNAL.to_owned()
        } else {
            format!("{EXTERNAL}:{account}")
        }
    }
}

/// Where the settings put the journal (validated settings always name one).
fn locate(
    settings: &JournalSettings,
    data_dir: &std::path::Path,
) -> Result<Location, JournalError> {
    settings
        .location(data_dir)
        .map_err(|e| JournalError::Database {
            location: "journal.url".to_owned(),
            detail: e.to_string(),
        })
}

/// Opens the journal the settings name for reading (`herd journal export`), migrated to this
/// binary's schema (a migration is its only write); no writer runs and retention does not
/// prune.
pub async fn open_for_reading(
    settings: &JournalSettings,
    data_dir: &std::path::Path,
) -> Result<AnyPool, JournalError> {
    let location = locate(settings, data_dir)?;
    if let Location::Sqlite(path) = &location
        && !path.exists()
    {
        return Err(JournalError::Database {
            location: location.shown(),
            detail: "no journal here (herd has not run with this data directory)".into(),
        });
    }
    open::open_pool(&location).await
}

/// An entry's place in the write order: durable once the writer's watermark reaches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ticket(u64);

/// The journal did not confirm an entry in time.
#[derive(Debug, Clone, thiserror::Error)]
#[error("journal did not commit within {waited:?}{}", last_error.as_ref().map(|e| format!(": {e}")).unwrap_or_default())]
pub struct NotDurable {
    pub waited: Duration,
    pub last_error: Option<String>,
}

/// The journal's state for `/health`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JournalStatus {
    pub location: String,
    pub backend: &'static str,
    /// Rows waiting for the writer (each decision, order change, fill, ... is one).
    pub queued: usize,
    /// The last write error while the writer is retrying; `None` once writes succeed.
    pub failing: Option<String>,
    pub failing_since: Option<DateTime<Utc>>,
}

struct Sender {
    queue: mpsc::UnboundedSender<Queued>,
    next: u64,
}

pub(crate) struct Shared {
    sender: Mutex<Sender>,
    /// Rows queued and not yet committed (an entry of decisions counts each of them).
    queued: AtomicUsize,
    /// Of those, decisions: the part that may be dropped.
    decisions: AtomicUsize,
    capacity: usize,
    metrics: JournalMetrics,
    failing: Mutex<Option<(String, DateTime<Utc>)>>,
}

impl Shared {
    fn failed(&self, e: &sqlx::Error) {
        let mut f = self
            .failing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let since = f.as_ref().map_or_else(Utc::now, |(_, since)| *since);
        *f = Some((e.to_string(), since));
    }

    fn recovered(&self) {
        let mut f = self
            .failing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((error, since)) = f.take() {
            tracing::info!(event = "journal_recovered", last_error = %error, failing_since = %since, "journal writes succeed again");
        }
    }

    fn settled(&self, rows: usize, decisions: usize) {
        let left = self.queued.fetch_sub(rows, Ordering::AcqRel) - rows;
        self.decisions.fetch_sub(decisions, Ordering::AcqRel);
        self.metrics.queued(left);
    }

    fn failing(&self) -> Option<(String, DateTime<Utc>)> {
        self.failing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// A handle on the journal; cheap to clone.
#[derive(Clone)]
pub struct Journal {
    shared: Arc<Shared>,
    committed: watch::Receiver<u64>,
    pool: AnyPool,
    location: Location,
    commit_timeout: Duration,
}

impl Journal {
    /// Opens the journal (exit 2 on error, see [`JournalError`]), prunes what retention no
    /// longer keeps, reads what herd must restore, and starts the writer.
    pub async fn open(
        settings: &JournalSettings,
        data_dir: &std::path::Path,
        metrics: JournalMetrics,
    ) -> Result<(Journal, Restored), JournalError> {
        let location = locate(settings, data_dir)?;
        let pool = open::open_pool(&location).await?;
        open::prove_writable(&pool, &location).await?;
        retention::prune(&pool, settings.retention.get())
            .await
            .map_err(|e| JournalError::from_sqlx(&location, &e))?;
        let restored = read::restore(&pool)
            .await
            .map_err(|e| JournalError::Corrupt {
                location: location.shown(),
                detail: e.to_string(),
            })?;
        let (tx, rx) = mpsc::unbounded_channel();
        let (committed_tx, committed) = watch::channel(0);
        let shared = Arc::new(Shared {
            sender: Mutex::new(Sender { queue: tx, next: 0 }),
            queued: AtomicUsize::new(0),
            decisions: AtomicUsize::new(0),
            capacity: settings.queue,
            metrics,
            failing: Mutex::new(None),
        });
        let dialect = match location {
            Location::Sqlite(_) => Dialect::Sqlite,
            Location::Postgres { .. } => Dialect::Postgres,
        };
        tokio::spawn(writer::run(
            pool.clone(),
            dialect,
            rx,
            committed_tx,
            Arc::clone(&shared),
        ));
        tokio::spawn(retention::every_day(pool.clone(), settings.retention.get()));
        tracing::info!(
            event = "journal_opened", location = %location.shown(), schema = known_version(),
            orders = restored.orders.len(), ledger_rows = restored.ledger.len(),
            "journal opened"
        );
        let journal = Journal {
            shared,
            committed,
            pool,
            location,
            commit_timeout: settings.commit_timeout.get(),
        };
        Ok((journal, restored))
    }

    /// Queues `entry` for the writer. Never blocks and never drops: see the module invariants.
    pub fn record(&self, entry: Entry) -> Ticket {
        let mut sender = self
            .shared
            .sender
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        sender.next += 1;
        let ticket = sender.next;
        let rows = entry.rows();
        let depth = self.shared.queued.fetch_add(rows, Ordering::AcqRel) + rows;
        if matches!(entry, Entry::Decisions(_)) {
            self.shared.decisions.fetch_add(rows, Ordering::AcqRel);
        }
        if sender.queue.send(Queued { ticket, entry }).is_err() {
            // Only after the writer task ended (the runtime is shutting down).
            tracing::error!(
                event = "journal_closed",
                ticket,
                "journal writer has stopped; entry not recorded"
            );
        }
        self.shared.metrics.queued(depth);
        Ticket(ticket)
    }

    /// Queues a tick's decisions, unless `journal.queue` decisions already wait: they are kept
    /// or dropped together (a tick's record is never half there), and each dropped one is
    /// counted. Returns whether they were queued.
    pub fn record_decisions(&self, decisions: Vec<DecisionEntry>) -> bool {
        if decisions.is_empty() {
            return true;
        }
        if self.shared.decisions.load(Ordering::Acquire) >= self.shared.capacity {
            self.shared
                .metrics
                .dropped("decision", decisions.len() as u64);
            return false;
        }
        self.record(Entry::Decisions(decisions));
        true
    }

    /// Waits until the entry behind `ticket` has committed, at most `journal.commit_timeout`.
    pub async fn durable(&self, ticket: Ticket) -> Result<(), NotDurable> {
        self.durable_within(ticket, self.commit_timeout).await
    }

    async fn durable_within(&self, ticket: Ticket, wait: Duration) -> Result<(), NotDurable> {
        let mut committed = self.committed.clone();
        let reached = tokio::time::timeout(wait, committed.wait_for(|c| *c >= ticket.0)).await;
        match reached {
            Ok(Ok(_)) => Ok(()),
            _ => Err(NotDurable {
                waited: wait,
                last_error: self.shared.failing().map(|(e, _)| e),
            }),
        }
    }

    /// Waits until everything recorded so far has committed, at most `wait` (the drain's step).
    pub async fn flush(&self, wait: Duration) -> Result<(), NotDurable> {
        let last = self
            .shared
            .sender
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .next;
        self.durable_within(Ticket(last), wait).await
    }

    pub fn status(&self) -> JournalStatus {
        let failing = self.shared.failing();
        JournalStatus {
            location: self.location.shown(),
            backend: match self.location {
                Location::Sqlite(_) => "sqlite",
                Location::Postgres { .. } => "postgres",
            },
            queued: self.shared.queued.load(Ordering::Acquire),
            failing_since: failing.as_ref().map(|(_, since)| *since),
            failing: failing.map(|(e, _)| e),
        }
    }

    /// One page of orders, newest first, with the cursor of the next page. Waits for what is
    /// queued to commit first (at most a second), so a page shows every change recorded before
    /// the request.
    pub async fn page(
        &self,
        query: &OrderQuery,
    ) -> Result<(Vec<crate::domain::OrderRecord>, Option<u64>), sqlx::Error> {
        // Bounded: while the writer is failing, a page answers with what is committed.
        let _ = self.flush(self.commit_timeout.min(PAGE_FLUSH)).await;
        read::page(&self.pool, query).await
    }

    /// Everything a start restores, read again now (a replica taking an account over reads
    /// what the previous owner wrote). What this process queued is committed first.
    pub async fn restore(&self) -> Result<Restored, String> {
        self.flush(self.commit_timeout)
            .await
            .map_err(|e| e.to_string())?;
        read::restore(&self.pool).await
    }

    /// The pool, for reads (`/orders`, export).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn location(&self) -> &Location {
        &self.location
    }
}

#[cfg(test)]
mod tests;
