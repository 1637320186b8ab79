//! What herd knows about the venue it talks to: which one, its operations, the state of the
//! breaker guarding each, and the share of the request quota a call draws on.
//!
//! Invariant: every `as_str` is a bounded label value, spelled as the JSON of `/health`.

use std::fmt;

use serde::Serialize;

/// Which venue the broker talks to, derived from the credentials and base URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Venue {
    /// No credentials: the embedded simulator, started in-process.
    Simulator,
    AlpacaPaper,
    AlpacaLive,
}

impl Venue {
    pub fn as_str(self) -> &'static str {
        match self {
            Venue::Simulator => "simulator",
            Venue::AlpacaPaper => "alpaca_paper",
            Venue::AlpacaLive => "alpaca_live",
        }
    }
}

/// One kind of upstream call; the unit of metrics (and of circuit breakers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Clock,
    Account,
    Positions,
    Bars,
    SubmitOrder,
    GetOrder,
    OrderByClientId,
    ListOrders,
    Calendar,
}

impl Operation {
    pub const ALL: &[Operation] = &[
        Operation::Clock,
        Operation::Account,
        Operation::Positions,
        Operation::Bars,
        Operation::SubmitOrder,
        Operation::GetOrder,
        Operation::OrderByClientId,
        Operation::ListOrders,
        Operation::Calendar,
    ];

    /// The operation whose [`as_str`](Self::as_str) is `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|op| op.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Clock => "clock",
            Operation::Account => "account",
            Operation::Positions => "positions",
            Operation::Bars => "bars",
            Operation::SubmitOrder => "submit_order",
            Operation::GetOrder => "get_order",
            Operation::OrderByClientId => "order_by_client_id",
            Operation::ListOrders => "list_orders",
            Operation::Calendar => "calendar",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state of one operation's circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
    /// Set by an operator; every call is refused until a reset.
    ForcedOpen,
}

impl BreakerState {
    pub const ALL: &[BreakerState] = &[Self::Closed, Self::Open, Self::HalfOpen, Self::ForcedOpen];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
            Self::ForcedOpen => "forced_open",
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which share of the quota a request draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestClass {
    /// Any GET (and cancels' lookups): queues briefly, then fails.
    Read,
    /// Submits and cancels: draws on the whole quota, including the share reads cannot take.
    Order,
}

impl RequestClass {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Order => "order",
        }
    }
}

impl fmt::Display for RequestClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
