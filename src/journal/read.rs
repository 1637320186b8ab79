//! Reading the journal back: what herd restores at start, and the pages of `/orders`.
//!
//! Invariant: a row herd cannot read back (a state it does not know, a quantity that is not a
//! number) is an error naming the row, never skipped: a skipped order could be placed again.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::Decimal;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::keys;

use crate::domain::{
    ClientOrderId, Holding, InstanceId, OrderRecord, OrderState, OrderStatus, Side, Symbol,
};

/// Final orders restored into the book besides every order still working: enough for the
/// book's duplicate check on recent decisions; `/orders` reads older ones from the journal.
const RESTORE_FINAL: i64 = 10_000;

/// An order read back, with its place in herd's order.
#[derive(Debug, Clone)]
pub struct RestoredOrder {
    pub seq: u64,
    pub record: OrderRecord,
}

/// What herd restores at start.
#[derive(Debug, Clone, Default)]
pub struct Restored {
    /// Every order not final, and the newest final ones; oldest first.
    pub orders: Vec<RestoredOrder>,
    /// Each instance's position per symbol.
    pub ledger: Vec<(InstanceId, Symbol, Holding)>,
    /// `herd_state`: the trading state, paused instances, positions herd did not make.
    pub state: BTreeMap<String, String>,
    /// The P&L each fill of the last days realized (instance, venue time, USD): today's
    /// realized loss feeds the risk gate.
    pub realized: Vec<(InstanceId, DateTime<Utc>, Decimal)>,
    /// The next insertion sequence (one past the largest ever recorded).
    pub next_seq: u64,
}

impl Restored {
    /// A new or lost journal: no order, no position, and no reading of the account was ever
    /// recorded. (Retention may delete every old order of a journal whose positions are all
    /// flat; its record of the account's first reading stays, so it is not taken for new and
    /// rebuilt from the venue over its own ledgers.)
    pub fn is_empty(&self) -> bool {
        self.next_seq == 0 && self.ledger.is_empty() && !self.state.contains_key(keys::EXTERNAL)
    }

    /// [`Restored::is_empty`] for one account of several: none of its instances (`owns`) has
    /// an order or a position, and its first reading (`external_key`) was never recorded. An
    /// account added to a journal that other accounts already use is rebuilt from the venue.
    pub fn is_empty_for(&self, external_key: &str, owns: &dyn Fn(&InstanceId) -> bool) -> bool {
        !self.state.contains_key(external_key)
            && !self.orders.iter().any(|o| owns(&o.record.instance))
            && !self.ledger.iter().any(|(i, _, _)| owns(i))
    }
}

/// Which orders a page of `/orders` lists; every field set must match.
#[derive(Debug, Clone, Default)]
pub struct OrderQuery {
    pub instance: Option<String>,
    pub symbol: Option<String>,
    pub state: Option<&'static str>,
    pub limit: usize,
    /// Only orders older than this sequence (the previous page's cursor).
    pub before: Option<u64>,
}

const ORDER_COLUMNS: &str = "seq, client_order_id, instance, symbol, side, qty, state, \
    venue_status, order_id, submitted_at, filled_qty, filled_avg_price, decided_on, reason, \
    error, created_at, updated_at, lease_epoch";

pub(super) async fn restore(pool: &AnyPool) -> Result<Restored, String> {
    let finals: Vec<&str> = OrderState::ALL
        .iter()
        .filter(|s| s.is_final())
        .map(|s| s.as_str())
        .collect();
    let final_list = finals
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE state NOT IN ({final_list}) \
         UNION ALL SELECT * FROM (SELECT {ORDER_COLUMNS} FROM orders WHERE state IN ({final_list}) \
         ORDER BY seq DESC LIMIT {RESTORE_FINAL}) AS recent"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(pool)
        .await
        .map_err(|e| e.to_string())?;
    let mut orders = rows
        .iter()
        .map(order_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    orders.sort_by_key(|o| o.seq);
    let next_seq: i64 = sqlx::query("SELECT COALESCE(MAX(seq) + 1, 0) AS next FROM orders")
        .fetch_one(pool)
        .await
        .and_then(|r| r.try_get("next"))
        .map_err(|e| e.to_string())?;
    let ledger = sqlx::query("SELECT instance, symbol, qty, avg_price, realized_pnl FROM ledger")
        .fetch_all(pool)
        .await
        .map_err(|e| e.to_string())?
        .iter()
        .map(ledger_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let state = sqlx::query("SELECT key, value FROM herd_state")
        .fetch_all(pool)
        .await
        .map_err(|e| e.to_string())?
        .iter()
        .map(|r| Ok((text(r, "key")?, text(r, "value")?)))
        .collect::<Result<BTreeMap<_, _>, String>>()?;
    // Three days back from the newest fill (venue time, which a simulator may run in the past).
    let realized = sqlx::query(
        "SELECT instance, at, realized_pnl FROM fills \
         WHERE at >= (SELECT MAX(at) FROM fills) - 259200000 AND realized_pnl <> '0'",
    )
    .fetch_all(pool)
    .await
    .map_err(|e| e.to_string())?
    .iter()
    .map(|r| {
        Ok((
            InstanceId::parse(&text(r, "instance")?)?,
            time(r, "at")?,
            decimal(r, "realized_pnl")?,
        ))
    })
    .collect::<Result<Vec<_>, String>>()?;
    Ok(Restored {
        orders,
        ledger,
        state,
        realized,
        next_seq: u64::try_from(next_seq).unwrap_or_default(),
    })
}

/// One page of orders, newest first, and the cursor of the next page when there is one.
pub(super) async fn page(
    pool: &AnyPool,
    q: &OrderQuery,
) -> Result<(Vec<OrderRecord>, Option<u64>), sqlx::Error> {
    let mut conditions = vec!["seq < $1".to_owned()];
    let mut values: Vec<String> = Vec::new();
    for (column, value) in [
        ("instance", q.instance.clone()),
        ("symbol", q.symbol.clone()),
        ("state", q.state.map(str::to_owned)),
    ] {
        if let Some(v) = value {
            values.push(v);
            conditions.push(format!("{column} = ${}", values.len() + 1));
        }
    }
    let sql = format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE {} ORDER BY seq DESC LIMIT {}",
        conditions.join(" AND "),
        q.limit + 1
    );
    let before = q
        .before
        .and_then(|b| i64::try_from(b).ok())
        .unwrap_or(i64::MAX);
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(before);
    for v in values {
        query = query.bind(v);
    }
    let rows = query.fetch_all(pool).await?;
    let mut orders = rows
        .iter()
        .map(order_from_row)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| sqlx::Error::Decode(e.into()))?;
    let more = orders.len() > q.limit;
    orders.truncate(q.limit);
    let next = orders.last().map(|o| o.seq).filter(|_| more);
    Ok((orders.into_iter().map(|o| o.record).collect(), next))
}

pub(super) fn text(row: &AnyRow, column: &str) -> Result<String, String> {
    row.try_get::<String, _>(column)
        .map_err(|e| format!("column {column}: {e}"))
}

fn opt_text(row: &AnyRow, column: &str) -> Result<Option<String>, String> {
    row.try_get::<Option<String>, _>(column)
        .map_err(|e| format!("column {column}: {e}"))
}

fn decimal(row: &AnyRow, column: &str) -> Result<Decimal, String> {
    let t = text(row, column)?;
    t.parse()
        .map_err(|e| format!("column {column}: {t:?} is not a number: {e}"))
}

fn time(row: &AnyRow, column: &str) -> Result<DateTime<Utc>, String> {
    let ms: i64 = row
        .try_get(column)
        .map_err(|e| format!("column {column}: {e}"))?;
    from_ms(ms).ok_or_else(|| format!("column {column}: {ms} is not a time"))
}

fn opt_time(row: &AnyRow, column: &str) -> Result<Option<DateTime<Utc>>, String> {
    let ms: Option<i64> = row
        .try_get(column)
        .map_err(|e| format!("column {column}: {e}"))?;
    Ok(ms.and_then(from_ms))
}

pub(super) fn from_ms(ms: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms).single()
}

fn order_from_row(row: &AnyRow) -> Result<RestoredOrder, String> {
    let cid = text(row, "client_order_id")?;
    let read = || -> Result<RestoredOrder, String> {
        let seq: i64 = row.try_get("seq").map_err(|e| format!("column seq: {e}"))?;
        let state_text = text(row, "state")?;
        let state = OrderState::parse(&state_text)
            .ok_or_else(|| format!("unknown state {state_text:?}"))?;
        let side = match text(row, "side")?.as_str() {
            "buy" => Side::Buy,
            "sell" => Side::Sell,
            other => return Err(format!("unknown side {other:?}")),
        };
        let venue_status = opt_text(row, "venue_status")?
            .map(|s| serde_json::from_value::<OrderStatus>(serde_json::Value::String(s)))
            .transpose()
            .map_err(|e| format!("column venue_status: {e}"))?;
        let record = OrderRecord {
            instance: InstanceId::parse(&text(row, "instance")?)?,
            client_order_id: ClientOrderId::new(cid.clone()),
            order_id: opt_text(row, "order_id")?,
            symbol: Symbol::parse(&text(row, "symbol")?)?,
            side,
            qty: decimal(row, "qty")?,
            state,
            venue_status,
            submitted_at: opt_time(row, "submitted_at")?,
            filled_qty: decimal(row, "filled_qty")?,
            filled_avg_price: opt_text(row, "filled_avg_price")?
                .map(|p| p.parse::<Decimal>())
                .transpose()
                .map_err(|e| format!("column filled_avg_price: {e}"))?,
            decided_on: time(row, "decided_on")?,
            reason: text(row, "reason")?,
            error: opt_text(row, "error")?,
            created_at: time(row, "created_at")?,
            updated_at: time(row, "updated_at")?,
            lease_epoch: row
                .try_get::<Option<i64>, _>("lease_epoch")
                .map_err(|e| format!("column lease_epoch: {e}"))?
                .and_then(|e| u64::try_from(e).ok()),
        };
        Ok(RestoredOrder {
            seq: u64::try_from(seq).map_err(|_| format!("negative seq {seq}"))?,
            record,
        })
    };
    read().map_err(|e| format!("order {cid}: {e}"))
}

fn ledger_from_row(row: &AnyRow) -> Result<(InstanceId, Symbol, Holding), String> {
    let instance = text(row, "instance")?;
    let symbol = text(row, "symbol")?;
    let read = || -> Result<(InstanceId, Symbol, Holding), String> {
        Ok((
            InstanceId::parse(&instance)?,
            Symbol::parse(&symbol)?,
            Holding {
                qty: decimal(row, "qty")?,
                avg_price: decimal(row, "avg_price")?,
                realized_pnl: decimal(row, "realized_pnl")?,
            },
        ))
    };
    read().map_err(|e| format!("ledger row {instance}/{symbol}: {e}"))
}
