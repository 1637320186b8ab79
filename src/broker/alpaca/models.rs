//! Alpaca's JSON shapes, as herd reads and writes them.
//!
//! Money and quantities arrive as JSON strings in the trading API (`"qty":"5"`); `Decimal`
//! reads both strings and numbers. Unknown fields are ignored and unknown enum values map to
//! `Other`, so a new Alpaca field or status never breaks a running herd.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};

pub use crate::domain::OrderStatus;
use crate::domain::{Bar, Side};

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Clock {
    pub timestamp: DateTime<Utc>,
    pub is_open: bool,
    pub next_open: DateTime<Utc>,
    pub next_close: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Account {
    pub id: String,
    #[serde(default)]
    pub account_number: Option<String>,
    pub status: String,
    #[serde(default)]
    pub currency: Option<String>,
    pub cash: Decimal,
    pub equity: Decimal,
    /// Equity at the previous close: today's P&L is `equity - last_equity`.
    #[serde(default)]
    pub last_equity: Option<Decimal>,
    pub buying_power: Decimal,
    #[serde(default)]
    pub trading_blocked: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
pub struct Position {
    pub symbol: String,
    /// Signed: negative when short.
    pub qty: Decimal,
    #[serde(default)]
    pub qty_available: Option<Decimal>,
    pub avg_entry_price: Decimal,
    #[serde(default)]
    pub market_value: Option<Decimal>,
    #[serde(default)]
    pub current_price: Option<Decimal>,
    #[serde(default)]
    pub unrealized_pl: Option<Decimal>,
}

/// An order as the venue lists it. A multi-leg parent has no symbol, side or type of its own:
/// Alpaca sends empty strings there (alpaca-py 0.44.0 maps them to None in
/// `alpaca/trading/models.py`, `Order.__init__`), so those fields are lenient here too.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Order {
    pub id: String,
    pub client_order_id: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub symbol: String,
    #[serde(default)]
    pub qty: Option<Decimal>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub filled_qty: Decimal,
    #[serde(default)]
    pub filled_avg_price: Option<Decimal>,
    /// `None` for a multi-leg parent (`""` on the wire) or a side herd does not know.
    #[serde(default, deserialize_with = "lenient_side")]
    pub side: Option<Side>,
    #[serde(rename = "type", default)]
    pub order_type: Option<String>,
    pub status: OrderStatus,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub filled_at: Option<DateTime<Utc>>,
}

/// One trading day of `GET /v2/calendar`: its regular session in New York time ("09:30",
/// "16:00"; "13:00" on an early close).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct CalendarDay {
    pub date: chrono::NaiveDate,
    pub open: String,
    pub close: String,
}

/// `POST /v2/orders` body for the market orders herd places.
#[derive(Debug, Clone, Serialize)]
pub struct OrderRequest {
    pub symbol: String,
    #[serde(with = "rust_decimal::serde::str")]
    pub qty: Decimal,
    pub side: Side,
    #[serde(rename = "type")]
    pub order_type: &'static str,
    pub time_in_force: &'static str,
    pub client_order_id: String,
}

/// One page of `GET /v2/stocks/bars`.
#[derive(Debug, Clone, Deserialize)]
pub struct BarsPage {
    #[serde(default, deserialize_with = "null_as_default")]
    pub bars: HashMap<String, Vec<Bar>>,
    #[serde(default)]
    pub next_page_token: Option<String>,
}

/// `buy` or `sell`; anything else (`""` on a multi-leg parent) is no side.
fn lenient_side<'de, D>(d: D) -> Result<Option<Side>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(match Option::<String>::deserialize(d)?.as_deref() {
        Some("buy") => Some(Side::Buy),
        Some("sell") => Some(Side::Sell),
        _ => None,
    })
}

/// Alpaca sends `null` for some collections and numbers that are "empty".
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_reads_decimal_strings_and_tolerates_unknown_status() {
        let json = r#"{"id":"61e69015-8549-4bfd-b9c3-01e75843f47d","client_order_id":"x","symbol":"SPY",
            "qty":"10","filled_qty":"2.5","filled_avg_price":"101.25","side":"buy","type":"market",
            "status":"some_future_status","created_at":"2026-03-02T15:00:00.123456789Z",
            "updated_at":null,"extra":{"ignored":true}}"#;
        let o: Order = serde_json::from_str(json).unwrap();
        assert_eq!(o.qty, Some(Decimal::from(10)));
        assert_eq!(o.filled_qty, Decimal::new(25, 1));
        assert_eq!(o.status, OrderStatus::Other);
        assert!(!o.status.is_final());
    }

    #[test]
    fn a_multi_leg_parent_with_empty_fields_reads_as_an_order_without_side() {
        let json = r#"{"id":"a1","client_order_id":"other-app-1","symbol":"","asset_class":"",
            "qty":"1","filled_qty":"0","side":"","type":"","order_type":"","order_class":"mleg",
            "position_intent":"","status":"new","created_at":"2026-03-02T15:00:00Z",
            "legs":[{"id":"l1","symbol":"SPY261218C00600000","side":"buy"}]}"#;
        let o: Order = serde_json::from_str(json).unwrap();
        assert_eq!(o.side, None);
        assert_eq!(o.symbol, "");
        assert_eq!(o.status, OrderStatus::New);
    }

    #[test]
    fn order_request_sends_quantity_as_a_string() {
        let r = OrderRequest {
            symbol: "SPY".into(),
            qty: Decimal::from(10),
            side: Side::Buy,
            order_type: "market",
            time_in_force: "day",
            client_order_id: "c".into(),
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["qty"], "10");
        assert_eq!(v["type"], "market");
    }

    #[test]
    fn bars_page_accepts_null_bars_and_missing_token() {
        let p: BarsPage = serde_json::from_str(r#"{"bars":null}"#).unwrap();
        assert!(p.bars.is_empty() && p.next_page_token.is_none());
    }
}
