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
    ) -> Vec<serde_json::Value> {
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
        // Foreign orders are listed whatever the filters, first: the worst case for a client
        // that must read every row of a page.
        account
            .foreign
            .iter()
            .cloned()
            .chain(
                picked
                    .into_iter()
                    .map(|o| serde_json::to_value(o.to_json()).unwrap_or(serde_json::Value::Null)),
            )
            .take(filter.limit)
            .collect()
    }

    /// Puts a multi-leg options order on the account, as another client of the same account
    /// would: Alpaca lists a multi-leg parent with empty strings for its symbol, side, type and
    /// asset fields (alpaca-py 0.44.0, `alpaca/trading/models.py`, `Order.__init__`, maps them
    /// to None for that reason). This simulator does not trade options; the order only sits in
    /// the listings. Returns its id.
    pub fn place_foreign_mleg(
        &mut self,
        key: &str,
        market: &mut Market,
        now: DateTime<Utc>,
    ) -> Uuid {
        let id = Uuid::new_v4();
        let at = super::order::ts(now);
        let leg = |symbol: &str, side: &str| {
            serde_json::json!({
                "id": Uuid::new_v4(), "client_order_id": Uuid::new_v4().to_string(),
                "created_at": at, "updated_at": at, "submitted_at": at,
                "asset_id": Uuid::new_v4(), "symbol": symbol, "asset_class": "us_option",
                "qty": "1", "filled_qty": "0", "order_class": "mleg", "side": side,
                "position_intent": "buy_to_open", "ratio_qty": "1", "status": "new",
                "time_in_force": "day", "limit_price": null, "extended_hours": false,
            })
        };
        let parent = serde_json::json!({
            "id": id, "client_order_id": Uuid::new_v4().to_string(),
            "created_at": at, "updated_at": at, "submitted_at": at,
            "filled_at": null, "expired_at": null, "canceled_at": null, "failed_at": null,
            "replaced_at": null, "replaced_by": null, "replaces": null,
            "asset_id": "", "symbol": "", "asset_class": "",
            "notional": null, "qty": "1", "filled_qty": "0", "filled_avg_price": null,
            "order_class": "mleg", "order_type": "", "type": "", "side": "",
            "position_intent": "", "time_in_force": "day", "limit_price": "1.25",
            "stop_price": null, "status": "new", "extended_hours": false,
            "legs": [leg("SPY261218C00600000", "buy"), leg("SPY261218C00610000", "sell")],
            "trail_percent": null, "trail_price": null, "hwm": null, "ratio_qty": "1",
        });
        self.account(key, market, now).foreign.push(parent);
        id
    }
}
