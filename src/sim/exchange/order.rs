//! Orders: their terms, their lifecycle state, and their wire form.
//!
//! Lifecycle: `accepted` (placed while the market is closed) → `new` (working) →
//! `partially_filled`* → `filled`; or `canceled` (by the client, or IOC/FOK leftovers),
//! `expired` (a `day` order at the end of its session) or `rejected` (no longer affordable when
//! it became active).
//!
//! Invariants:
//! - Only the values alpaca-py's enums know are ever serialised.
//! - `created_at`, `updated_at` and `submitted_at` are always set; `updated_at` moves with every
//!   change; terminal statuses never change again.
//! - `filled_qty` only grows, and never beyond `qty` (or the quantity a notional order bought).

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    /// +1 for buys, −1 for sells: the sign of the position change.
    pub fn sign(self) -> Decimal {
        match self {
            Side::Buy => Decimal::ONE,
            Side::Sell => Decimal::NEGATIVE_ONE,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderType {
    Market,
    Limit,
    Stop,
    StopLimit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeInForce {
    Day,
    Gtc,
    Ioc,
    Fok,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Accepted,
    New,
    PartiallyFilled,
    Filled,
    Canceled,
    Expired,
    Rejected,
}

impl Status {
    /// Not yet in a final state: may still fill, and may be cancelled.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            Status::Accepted | Status::New | Status::PartiallyFilled
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Accepted => "accepted",
            Status::New => "new",
            Status::PartiallyFilled => "partially_filled",
            Status::Filled => "filled",
            Status::Canceled => "canceled",
            Status::Expired => "expired",
            Status::Rejected => "rejected",
        }
    }
}

/// How much an order asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Amount {
    /// A number of shares (possibly fractional for market day orders).
    Qty(Decimal),
    /// A dollar amount (market day orders only); shares are fixed at the first fill.
    Notional(Decimal),
}

/// One order and its matching state.
#[derive(Debug, Clone)]
pub struct Order {
    pub id: Uuid,
    pub client_order_id: String,
    /// Submission rank within the account: the tie-breaker of equal timestamps.
    pub seq: u64,
    pub symbol: String,
    pub asset_id: Uuid,
    pub side: Side,
    pub order_type: OrderType,
    pub time_in_force: TimeInForce,
    pub amount: Amount,
    pub limit_price: Option<Decimal>,
    pub stop_price: Option<Decimal>,
    pub extended_hours: bool,
    pub status: Status,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub submitted_at: DateTime<Utc>,
    pub filled_at: Option<DateTime<Utc>>,
    pub canceled_at: Option<DateTime<Utc>>,
    pub expired_at: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
    /// When a `day` order expires (close of its session); None for other TIFs.
    pub expires_at: Option<DateTime<Utc>>,
    pub filled_qty: Decimal,
    /// Σ qty × price of fills, for the average price.
    pub filled_value: Decimal,
    /// Matching state: when the order starts working (`accepted` → `new`).
    pub active_at: DateTime<Utc>,
    /// Matching state: first fill chance (`active_at + fill_delay`).
    pub eligible_at: DateTime<Utc>,
    /// Matching state: the price path has been matched up to here.
    pub matched_until: DateTime<Utc>,
    /// Matching state: the first fill chance has been evaluated.
    pub arrived: bool,
    /// Matching state: a stop or stop-limit order has triggered.
    pub triggered: bool,
    /// Matching state: shares filled in the minute starting at `.0` (volume cap).
    pub minute_used: (i64, Decimal),
    /// Shares a notional order resolved to at its first fill.
    pub resolved_qty: Option<Decimal>,
}

impl Order {
    /// Shares still to fill, if known (a notional order's shares are known after a fill).
    pub fn remaining(&self) -> Option<Decimal> {
        match self.amount {
            Amount::Qty(q) => Some(q - self.filled_qty),
            Amount::Notional(_) => self.resolved_qty.map(|q| q - self.filled_qty),
        }
    }

    pub fn filled_avg_price(&self) -> Option<Decimal> {
        (self.filled_qty > Decimal::ZERO).then(|| {
            (self.filled_value / self.filled_qty)
                .round_dp(6)
                .normalize()
        })
    }

    /// Whether shares may be fractional (Alpaca allows them for market day orders).
    pub fn fractional(&self) -> bool {
        match self.amount {
            Amount::Notional(_) => true,
            Amount::Qty(q) => q.fract() != Decimal::ZERO,
        }
    }

    /// The wire form.
    pub fn to_json(&self) -> OrderJson {
        let (qty, notional) = match self.amount {
            Amount::Qty(q) => (Some(q.normalize()), None),
            Amount::Notional(n) => (None, Some(n.normalize())),
        };
        OrderJson {
            id: self.id,
            client_order_id: self.client_order_id.clone(),
            created_at: ts(self.created_at),
            updated_at: ts(self.updated_at),
            submitted_at: ts(self.submitted_at),
            filled_at: self.filled_at.map(ts),
            expired_at: self.expired_at.map(ts),
            expires_at: self.expires_at.map(ts),
            canceled_at: self.canceled_at.map(ts),
            failed_at: self.failed_at.map(ts),
            replaced_at: None,
            replaced_by: None,
            replaces: None,
            asset_id: self.asset_id,
            symbol: self.symbol.clone(),
            asset_class: "us_equity",
            notional,
            qty,
            filled_qty: self.filled_qty.normalize(),
            filled_avg_price: self.filled_avg_price(),
            order_class: "simple",
            order_type: self.order_type,
            r#type: self.order_type,
            side: self.side,
            position_intent: None,
            time_in_force: self.time_in_force,
            limit_price: self.limit_price.map(|p| p.normalize()),
            stop_price: self.stop_price.map(|p| p.normalize()),
            status: self.status,
            extended_hours: self.extended_hours,
            legs: None,
            trail_percent: None,
            trail_price: None,
            hwm: None,
        }
    }
}

pub use crate::sim::clock::rfc3339_micros as ts;

/// An order as Alpaca serialises it. Decimals are JSON strings.
#[derive(Debug, Serialize)]
pub struct OrderJson {
    pub id: Uuid,
    pub client_order_id: String,
    pub created_at: String,
    pub updated_at: String,
    pub submitted_at: String,
    pub filled_at: Option<String>,
    pub expired_at: Option<String>,
    pub expires_at: Option<String>,
    pub canceled_at: Option<String>,
    pub failed_at: Option<String>,
    pub replaced_at: Option<String>,
    pub replaced_by: Option<Uuid>,
    pub replaces: Option<Uuid>,
    pub asset_id: Uuid,
    pub symbol: String,
    pub asset_class: &'static str,
    pub notional: Option<Decimal>,
    pub qty: Option<Decimal>,
    pub filled_qty: Decimal,
    pub filled_avg_price: Option<Decimal>,
    pub order_class: &'static str,
    pub order_type: OrderType,
    pub r#type: OrderType,
    pub side: Side,
    pub position_intent: Option<&'static str>,
    pub time_in_force: TimeInForce,
    pub limit_price: Option<Decimal>,
    pub stop_price: Option<Decimal>,
    pub status: Status,
    pub extended_hours: bool,
    pub legs: Option<Vec<OrderJson>>,
    pub trail_percent: Option<Decimal>,
    pub trail_price: Option<Decimal>,
    pub hwm: Option<Decimal>,
}
