//! What the journal records, and the SQL that records each kind.
//!
//! Invariants:
//! - What the ledger is rebuilt from is idempotent: an order row is the latest snapshot
//!   (upsert), a fill is keyed by the order's cumulative filled quantity, a ledger row is the
//!   holding after that fill. The history tables (order events, decisions, admin actions,
//!   actor stops) are appended; a batch is one transaction, so a failed one leaves nothing.
//! - Entries are written in the order they were recorded (one writer, one queue), so the last
//!   snapshot of an order or a ledger row is the latest one.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::{Any, Transaction};

use super::statements::{Dialect, ROWS_PER_INSERT, Rows, insert_sql};
use crate::domain::{Action, Decision, Holding, InstanceId, OrderRecord, Symbol};

/// One thing to record.
#[derive(Debug, Clone)]
pub enum Entry {
    /// An order's latest state; `changed` adds a row to its history.
    Order {
        seq: u64,
        record: Box<OrderRecord>,
        changed: bool,
    },
    Fill(Box<Fill>),
    /// A tick's decisions, queued together: one entry for the five or so decisions of an
    /// instance-tick, not one each (a lock, a wake-up of the writer and a queue slot each).
    Decisions(Vec<DecisionEntry>),
    Admin(Box<AdminAction>),
    Stop(ActorStop),
    /// A value that must survive restarts; `None` deletes it.
    State {
        key: String,
        value: Option<String>,
    },
}

impl Entry {
    /// The `kind` label of the journal's metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Order { .. } => "order",
            Self::Fill(_) => "fill",
            Self::Decisions(_) => "decision",
            Self::Admin(_) => "admin",
            Self::Stop(_) => "stop",
            Self::State { .. } => "state",
        }
    }

    /// The rows it writes: what the queue's depth and a batch's size count.
    pub fn rows(&self) -> usize {
        match self {
            Self::Decisions(ds) => ds.len(),
            _ => 1,
        }
    }
}

/// The part of an order that filled since it was last read, and the instance's holding after
/// it.
#[derive(Debug, Clone)]
pub struct Fill {
    pub client_order_id: String,
    pub instance: InstanceId,
    pub symbol: Symbol,
    /// Signed: + bought, − sold.
    pub qty: Decimal,
    pub price: Decimal,
    /// The order's cumulative filled quantity after this part.
    pub filled_total: Decimal,
    /// The P&L this part realized (closing shares), in USD.
    pub realized: Decimal,
    /// When it filled, in venue time.
    pub at: DateTime<Utc>,
    pub holding: Holding,
}

#[derive(Debug, Clone)]
pub struct DecisionEntry {
    pub at: DateTime<Utc>,
    pub instance: InstanceId,
    pub symbol: Symbol,
    /// `order`, `hold` or `no_data`.
    pub action: &'static str,
    pub side: Option<&'static str>,
    pub qty: Option<Decimal>,
    pub signal: Option<f64>,
    pub decided_on: Option<DateTime<Utc>>,
    /// Most reasons are a core's fixed words: borrowed, not copied, for each decision.
    pub reason: Option<Cow<'static, str>>,
    /// The whole decision as JSON, as the instance's status shows it (see [`decision_detail`]);
    /// `None` when the other columns hold all of it: stored empty, and `herd journal export`
    /// writes it out again ([`rebuilt_detail`]).
    pub detail: Option<String>,
}

impl DecisionEntry {
    /// A hold of the deciding instance's own: every value but its time, instance, symbol,
    /// signal and reason is the same for all of them (no side, quantity, bar or detail), so a
    /// tick's are journaled as one row (`hold_ticks`).
    pub(super) fn is_bare_hold(&self) -> bool {
        self.action == "hold"
            && self.reason.is_some()
            && self.detail.is_none()
            && self.side.is_none()
            && self.qty.is_none()
            && self.decided_on.is_none()
    }
}

/// What a decision's `detail` column keeps: `None` for a hold of the deciding instance's own,
/// whose every field (symbol, signal, reason) has its own column; otherwise the decision as
/// JSON, serialized straight to text (a `serde_json::Value` first, a map per decision, was a
/// visible share of herd's allocations).
///
/// Holds are nearly every decision (five a tick for a momentum instance on five symbols) and
/// their JSON was over half of each row's bytes: SQLite copies every bound text twice and
/// writes it to the WAL and the table, sqlx's `Any` driver copies it once more.
pub fn decision_detail(d: &Decision) -> Option<String> {
    match d.action {
        Action::Hold { .. } if d.instance.is_none() => None,
        _ => Some(serde_json::to_string(d).unwrap_or_default()),
    }
}

/// The JSON [`decision_detail`] left out for a hold, from its columns: what serializing the
/// [`Decision`] gives (its fields in their order; a signal that is not finite is `null`, as
/// it is stored).
pub(super) fn rebuilt_detail(symbol: &str, signal: Option<f64>, reason: &str) -> String {
    #[derive(serde::Serialize)]
    struct Hold<'a> {
        symbol: &'a str,
        signal: Option<f64>,
        action: &'static str,
        reason: &'a str,
    }
    serde_json::to_string(&Hold {
        symbol,
        signal,
        action: "hold",
        reason,
    })
    .unwrap_or_default()
}

#[derive(Debug, Clone)]
pub struct AdminAction {
    pub at: DateTime<Utc>,
    pub request_id: String,
    pub client: String,
    pub action: String,
    pub subject: String,
    pub status: u16,
    pub result: &'static str,
    pub error: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ActorStop {
    pub at: DateTime<Utc>,
    pub child: String,
    pub incarnation: u64,
    pub reason: String,
    pub abnormal: bool,
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn seq_value(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

/// The venue status as stored: Alpaca's spelling.
pub(super) fn venue_status_text(record: &OrderRecord) -> Option<String> {
    record
        .venue_status
        .and_then(|s| serde_json::to_value(s).ok())
        .and_then(|v| v.as_str().map(str::to_owned))
}

impl Entry {
    pub(super) async fn write(
        &self,
        tx: &mut Transaction<'static, Any>,
    ) -> Result<(), sqlx::Error> {
        match self {
            Self::Order {
                seq,
                record,
                changed,
            } => write_order(tx, *seq, record, *changed).await,
            Self::Fill(fill) => write_fill(tx, fill).await,
            // The writer groups decisions across entries; alone they are a group of their own
            // (`$N` works on either database).
            Self::Decisions(ds) => {
                let rows: Vec<&DecisionEntry> = ds.iter().collect();
                for rows in rows.chunks(ROWS_PER_INSERT) {
                    write_decisions(tx, rows, Dialect::Postgres).await?;
                }
                Ok(())
            }
            Self::Admin(a) => {
                sqlx::query(
                    "INSERT INTO admin_actions (at, request_id, client, action, subject, status, \
                     result, error) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(ms(a.at))
                .bind(a.request_id.clone())
                .bind(a.client.clone())
                .bind(a.action.clone())
                .bind(a.subject.clone())
                .bind(i32::from(a.status))
                .bind(a.result)
                .bind(a.error.clone())
                .execute(&mut **tx)
                .await?;
                Ok(())
            }
            // Written in groups by the writer (`write_stops`); one alone is a group of one.
            Self::Stop(s) => write_stops(tx, &[s], Dialect::Postgres).await,
            Self::State { key, value } => {
                match value {
                    Some(value) => {
                        sqlx::query(
                            "INSERT INTO herd_state (key, value, updated_at) VALUES ($1, $2, $3) \
                             ON CONFLICT (key) DO UPDATE SET value = excluded.value, \
                             updated_at = excluded.updated_at",
                        )
                        .bind(key.clone())
                        .bind(value.clone())
                        .bind(ms(Utc::now()))
                        .execute(&mut **tx)
                        .await?;
                    }
                    None => {
                        sqlx::query("DELETE FROM herd_state WHERE key = $1")
                            .bind(key.clone())
                            .execute(&mut **tx)
                            .await?;
                    }
                }
                Ok(())
            }
        }
    }
}

/// Several decisions in one multi-row INSERT (at most [`ROWS_PER_INSERT`]).
///
/// Tried and measured: on SQLite, the rows as one JSON parameter unpacked by `jsonb_each`
/// (one bind instead of ten a row). It moved the cost from sqlx's binding to SQLite's JSON
/// extraction and saved nothing measurable at 1,000 instances (BENCHMARKS.md).
pub(super) async fn write_decisions(
    tx: &mut Transaction<'static, Any>,
    decisions: &[&DecisionEntry],
    dialect: Dialect,
) -> Result<(), sqlx::Error> {
    if decisions.is_empty() {
        return Ok(());
    }
    let sql = insert_sql(Rows::Decisions, decisions.len(), dialect);
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for d in decisions {
        query = query
            .bind(ms(d.at))
            .bind(d.instance.as_str())
            .bind(d.symbol.as_str())
            .bind(d.action)
            .bind(d.side)
            .bind(d.qty.map(|q| q.to_string()))
            .bind(d.signal.filter(|s| s.is_finite()))
            .bind(d.decided_on.map(ms))
            .bind(d.reason.as_deref())
            .bind(d.detail.as_deref().unwrap_or(""));
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

/// An instance-tick's [bare holds](DecisionEntry::is_bare_hold), journaled as one row of
/// `hold_ticks`: SQLite's cost is mostly per row, and these are nearly every decision.
#[derive(Debug)]
pub(super) struct HoldTick<'a> {
    at: DateTime<Utc>,
    instance: &'a InstanceId,
    /// Symbol, signal (finite, or none) and reason of each hold, in the tick's order.
    holds: Vec<(&'a str, Option<f64>, &'a str)>,
}

impl<'a> HoldTick<'a> {
    pub(super) fn new(first: &'a DecisionEntry) -> Self {
        let mut tick = Self {
            at: first.at,
            instance: &first.instance,
            holds: Vec::with_capacity(8),
        };
        tick.holds.push(Self::hold(first));
        tick
    }

    /// Adds `d` when it is a hold of this tick (same instance and time); false, and nothing
    /// added, otherwise.
    pub(super) fn add(&mut self, d: &'a DecisionEntry) -> bool {
        if d.at != self.at || d.instance != *self.instance {
            return false;
        }
        self.holds.push(Self::hold(d));
        true
    }

    fn hold(d: &'a DecisionEntry) -> (&'a str, Option<f64>, &'a str) {
        (
            d.symbol.as_str(),
            d.signal.filter(|s| s.is_finite()),
            d.reason.as_deref().unwrap_or_default(),
        )
    }
}

/// The holds of a `hold_ticks` row, as [`HoldTick`] wrote them (`herd journal export` reads them).
pub(super) fn unpack_holds(
    json: &str,
) -> Result<Vec<(String, Option<f64>, String)>, serde_json::Error> {
    serde_json::from_str(json)
}

/// Several ticks' bare holds in one multi-row INSERT (at most [`ROWS_PER_INSERT`] ticks).
pub(super) async fn write_hold_ticks(
    tx: &mut Transaction<'static, Any>,
    ticks: &[HoldTick<'_>],
    dialect: Dialect,
) -> Result<(), sqlx::Error> {
    if ticks.is_empty() {
        return Ok(());
    }
    let sql = insert_sql(Rows::HoldTicks, ticks.len(), dialect);
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for t in ticks {
        let holds = serde_json::to_string(&t.holds).map_err(|e| sqlx::Error::Encode(e.into()))?;
        query = query.bind(ms(t.at)).bind(t.instance.as_str()).bind(holds);
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

/// Several actor stops in one multi-row INSERT (at most [`ROWS_PER_INSERT`]): at the drain
/// every instance stops at once.
pub(super) async fn write_stops(
    tx: &mut Transaction<'static, Any>,
    stops: &[&ActorStop],
    dialect: Dialect,
) -> Result<(), sqlx::Error> {
    if stops.is_empty() {
        return Ok(());
    }
    let sql = insert_sql(Rows::Stops, stops.len(), dialect);
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for s in stops {
        query = query
            .bind(ms(s.at))
            .bind(s.child.as_str())
            .bind(seq_value(s.incarnation))
            .bind(s.reason.as_str())
            .bind(i32::from(s.abnormal));
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

async fn write_order(
    tx: &mut Transaction<'static, Any>,
    seq: u64,
    r: &OrderRecord,
    changed: bool,
) -> Result<(), sqlx::Error> {
    let status = venue_status_text(r);
    sqlx::query(
        "INSERT INTO orders (client_order_id, seq, instance, symbol, side, qty, state, \
         venue_status, order_id, submitted_at, filled_qty, filled_avg_price, decided_on, reason, \
         error, created_at, updated_at, lease_epoch) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) \
         ON CONFLICT (client_order_id) DO UPDATE SET qty = excluded.qty, state = excluded.state, \
         venue_status = excluded.venue_status, order_id = excluded.order_id, \
         submitted_at = excluded.submitted_at, filled_qty = excluded.filled_qty, \
         filled_avg_price = excluded.filled_avg_price, reason = excluded.reason, \
         error = excluded.error, updated_at = excluded.updated_at",
    )
    .bind(r.client_order_id.as_str().to_owned())
    .bind(seq_value(seq))
    .bind(r.instance.as_str().to_owned())
    .bind(r.symbol.as_str().to_owned())
    .bind(r.side.as_str())
    .bind(r.qty.to_string())
    .bind(r.state.as_str())
    .bind(status.clone())
    .bind(r.order_id.clone())
    .bind(r.submitted_at.map(ms))
    .bind(r.filled_qty.to_string())
    .bind(r.filled_avg_price.map(|p| p.to_string()))
    .bind(ms(r.decided_on))
    .bind(r.reason.clone())
    .bind(r.error.clone())
    .bind(ms(r.created_at))
    .bind(ms(r.updated_at))
    .bind(r.lease_epoch.and_then(|e| i64::try_from(e).ok()))
    .execute(&mut **tx)
    .await?;
    if changed {
        sqlx::query(
            "INSERT INTO order_events (client_order_id, at, state, venue_status, filled_qty, error) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(r.client_order_id.as_str().to_owned())
        .bind(ms(r.updated_at))
        .bind(r.state.as_str())
        .bind(status)
        .bind(r.filled_qty.to_string())
        .bind(r.error.clone())
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

async fn write_fill(tx: &mut Transaction<'static, Any>, f: &Fill) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO fills (client_order_id, filled_total, instance, symbol, qty, price, at, \
         realized_pnl) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (client_order_id, filled_total) DO NOTHING",
    )
    .bind(f.client_order_id.clone())
    .bind(f.filled_total.normalize().to_string())
    .bind(f.instance.as_str().to_owned())
    .bind(f.symbol.as_str().to_owned())
    .bind(f.qty.to_string())
    .bind(f.price.to_string())
    .bind(ms(f.at))
    .bind(f.realized.to_string())
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO ledger (instance, symbol, qty, avg_price, realized_pnl, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (instance, symbol) DO UPDATE SET \
         qty = excluded.qty, avg_price = excluded.avg_price, realized_pnl = excluded.realized_pnl, \
         updated_at = excluded.updated_at",
    )
    .bind(f.instance.as_str().to_owned())
    .bind(f.symbol.as_str().to_owned())
    .bind(f.holding.qty.normalize().to_string())
    .bind(f.holding.avg_price.to_string())
    .bind(f.holding.realized_pnl.to_string())
    .bind(ms(f.at))
    .execute(&mut **tx)
    .await?;
    Ok(())
}
