//! Reading orders back: by id, by client order id, and `GET /v2/orders` with its filters.
//!
//! Invariant: listing never changes state beyond the lazy advance every request makes.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::order::{Order, OrderJson, Side};
use super::{Exchange, ExchangeError};
use crate::sim::market::Market;

/// `status` of `GET /v2/orders`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    Open,
    Closed,
    All,
}

/// Filters of `GET /v2/orders`, already parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderFilter {
    pub status: StatusFilter,
    /// 1 to 500.
    pub limit: usize,
    /// Exclusive bounds on `submitted_at`.
    pub after: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Newest first (Alpaca's default).
    pub desc: bool,
    pub symbols: Option<Vec<String>>,
    pub side: Option<Side>,
}

impl Default for OrderFilter {
    fn default() -> Self {
        Self {
            status: StatusFilter::Open,
            limit: 50,
            after: None,
            until: None,
            desc: true,
            symbols: None,
            side: None,
        }
    }
}

impl Exchange {
    pub fn order(
        &mut self,
        key: &str,
        id: Uuid,
        market: &mut Market,
        now: DateTime<Utc>,
    ) -> Result<OrderJson, ExchangeError> {
        self.account(key, market, now)
            .order(id)
            .map(Order::to_json)
            .ok_or(ExchangeError::OrderNotFound)
    }

    pub fn order_by_client_id(
        &mut self,
        key: &str,
        client_order_id: &str,
        market: &mut Market,
        now: DateTime<Utc>,
    ) -> Result<OrderJson, ExchangeError> {
        self.account(key, market, now)
            .order_by_client(client_order_id)
            .map(Order::to_json)
            .ok_or(ExchangeError::OrderNotFound)
    }

    pub fn orders(
        &mut self,
        key: &str,
        filter: &OrderFilter,
        market: &mut Market,
        now: DateTime<Utc>,
    ) -> Vec<OrderJson> {
        let account = self.account(key, market, now);
        let mut picked: Vec<_> = account
            .orders
            .iter()
            .filter(|o| match filter.status {
                StatusFilter::Open => o.status.is_open(),
                StatusFilter::Closed => !o.status.is_open(),
                StatusFilter::All => true,
            })
            .filter(|o| filter.after.is_none_or(|t| o.submitted_at > t))
            .filter(|o| filter.until.is_none_or(|t| o.submitted_at < t))
            .filter(|o| filter.side.is_none_or(|s| o.side == s))
            .filter(|o| {
                filter
                    .symbols
                    .as_ref()
                    .is_none_or(|syms| syms.contains(&o.symbol))
            })
            .collect();
        // Submission order is `seq` order; ties in time keep it.
        picked.sort_by(|a, b| a.submitted_at.cmp(&b.submitted_at).then(a.seq.cmp(&b.seq)));
        if filter.desc {
            picked.reverse();
        }
        picked
            .into_iter()
            .take(filter.limit)
            .map(|o| o.to_json())
            .collect()
    }
}
