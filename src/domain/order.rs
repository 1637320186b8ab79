//! Orders as herd records them: herd's state of an order ([`OrderState`]), the venue's own
//! status ([`OrderStatus`], Alpaca's spelling) and the record of one order placed for one
//! instance ([`OrderRecord`]), which the order book keeps and the journal stores.
//!
//! Invariant: `OrderState::as_str` and `OrderStatus`'s serde names are the stored spellings;
//! they never change between versions (journals outlive binaries).

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::ids::{ClientOrderId, InstanceId, Symbol};
use super::market::Side;

/// The venue's status of an order, in Alpaca's spelling. An unknown status maps to `Other`, so
/// a new Alpaca status never breaks a running herd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    New,
    PartiallyFilled,
    Filled,
    DoneForDay,
    Canceled,
    Expired,
    Replaced,
    PendingCancel,
    PendingReplace,
    PendingNew,
    Accepted,
    AcceptedForBidding,
    Stopped,
    Rejected,
    Suspended,
    Calculated,
    Held,
    #[serde(other)]
    Other,
}

impl OrderStatus {
    /// The order will not change any more.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Filled | Self::Canceled | Self::Expired | Self::Replaced | Self::Rejected
        )
    }
}

/// herd's view of where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderState {
    /// Being sent; the venue's answer is not in yet.
    Submitting,
    /// The venue has it and it may still fill.
    Open,
    Filled,
    Canceled,
    Expired,
    /// The venue refused it.
    Rejected,
    /// herd refused it before sending (risk gate, halt).
    Refused,
    /// Sent, but whether the venue has it is not known yet; resolved by client id lookup.
    Unknown,
}

impl OrderState {
    pub const ALL: &[OrderState] = &[
        Self::Submitting,
        Self::Open,
        Self::Filled,
        Self::Canceled,
        Self::Expired,
        Self::Rejected,
        Self::Refused,
        Self::Unknown,
    ];

    /// The state whose [`as_str`](Self::as_str) is `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|s| s.as_str() == name)
    }

    /// The same spelling as the JSON of `/orders`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Submitting => "submitting",
            Self::Open => "open",
            Self::Filled => "filled",
            Self::Canceled => "canceled",
            Self::Expired => "expired",
            Self::Rejected => "rejected",
            Self::Refused => "refused",
            Self::Unknown => "unknown",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Filled | Self::Canceled | Self::Expired | Self::Rejected | Self::Refused
        )
    }

    /// herd's state for an order the venue reports in `status`.
    pub fn from_venue(status: OrderStatus) -> Self {
        match status {
            OrderStatus::Filled => Self::Filled,
            OrderStatus::Canceled | OrderStatus::Replaced => Self::Canceled,
            OrderStatus::Expired => Self::Expired,
            OrderStatus::Rejected => Self::Rejected,
            _ => Self::Open,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OrderRecord {
    pub instance: InstanceId,
    pub client_order_id: ClientOrderId,
    /// The venue's order id, once known.
    pub order_id: Option<String>,
    pub symbol: Symbol,
    pub side: Side,
    pub qty: Decimal,
    pub state: OrderState,
    /// The venue's own status string, when it has the order.
    pub venue_status: Option<OrderStatus>,
    /// When the venue received it (venue time), once known.
    pub submitted_at: Option<DateTime<Utc>>,
    pub filled_qty: Decimal,
    pub filled_avg_price: Option<Decimal>,
    /// Start of the bar the decision was made on.
    pub decided_on: DateTime<Utc>,
    pub reason: String,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The epoch of the account lease it was sent under (`None` without leases).
    pub lease_epoch: Option<u64>,
}

impl OrderRecord {
    /// `qty` signed by the order's side: + bought, − sold.
    pub fn signed(&self, qty: Decimal) -> Decimal {
        if self.side == Side::Buy { qty } else { -qty }
    }
}
