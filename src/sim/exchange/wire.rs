//! The account and position documents as Alpaca serialises them, valued at current prices.
//!
//! Invariants:
//! - Money and quantities are decimal strings; counters and flags are JSON numbers and booleans.
//! - Every field alpaca-py requires is present; `exchange` is a value alpaca-py accepts.
//! - `equity = cash + long_market_value + short_market_value`, `portfolio_value = equity`.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use uuid::Uuid;

use super::account::{self, Position};
use super::order::ts;
use super::{Exchange, ExchangeError, reservation_price, to_decimal};
use crate::sim::market::Market;

#[derive(Debug, Serialize)]
pub struct AccountJson {
    pub id: Uuid,
    pub account_number: String,
    pub status: &'static str,
    pub crypto_status: &'static str,
    pub currency: &'static str,
    pub buying_power: Decimal,
    pub regt_buying_power: Decimal,
    pub daytrading_buying_power: Decimal,
    pub effective_buying_power: Decimal,
    pub non_marginable_buying_power: Decimal,
    pub options_buying_power: Decimal,
    pub bod_dtbp: Decimal,
    pub cash: Decimal,
    pub accrued_fees: Decimal,
    pub pending_transfer_in: Decimal,
    pub pending_transfer_out: Decimal,
    pub portfolio_value: Decimal,
    pub pattern_day_trader: bool,
    pub trading_blocked: bool,
    pub transfers_blocked: bool,
    pub account_blocked: bool,
    pub created_at: String,
    pub trade_suspended_by_user: bool,
    pub multiplier: String,
    pub shorting_enabled: bool,
    pub equity: Decimal,
    pub last_equity: Decimal,
    pub long_market_value: Decimal,
    pub short_market_value: Decimal,
    pub position_market_value: Decimal,
    pub initial_margin: Decimal,
    pub maintenance_margin: Decimal,
    pub last_maintenance_margin: Decimal,
    pub sma: Decimal,
    pub daytrade_count: u32,
    pub balance_asof: String,
    pub options_approved_level: u32,
    pub options_trading_level: u32,
}

#[derive(Debug, Serialize)]
pub struct PositionJson {
    pub asset_id: Uuid,
    pub symbol: String,
    pub exchange: String,
    pub asset_class: &'static str,
    pub asset_marginable: bool,
    pub qty: Decimal,
    pub qty_available: Decimal,
    pub avg_entry_price: Decimal,
    pub side: &'static str,
    pub market_value: Decimal,
    pub cost_basis: Decimal,
    pub unrealized_pl: Decimal,
    pub unrealized_plpc: Decimal,
    pub unrealized_intraday_pl: Decimal,
    pub unrealized_intraday_plpc: Decimal,
    pub current_price: Decimal,
    pub lastday_price: Decimal,
    pub change_today: Decimal,
}

/// Dollars: cents, without trailing zeros.
fn money(d: Decimal) -> Decimal {
    d.round_dp(2).normalize()
}

fn ratio(num: Decimal, den: Decimal) -> Decimal {
    if den.is_zero() {
        Decimal::ZERO
    } else {
        (num / den).round_dp(10).normalize()
    }
}

impl Exchange {
    pub fn account_json(
        &mut self,
        key: &str,
        market: &mut Market,
        now: DateTime<Utc>,
    ) -> AccountJson {
        let multiplier = self.settings.multiplier;
        let shorting = self.settings.shorting;
        let account = self.account(key, market, now);
        let v = account.valuation(|s| to_decimal(market.price(s, now)));
        let reserved = account.reserved(|o| reservation_price(o, market, now));
        let raw = account::buying_power_raw(&v, multiplier);
        let buying_power = (raw - reserved).max(Decimal::ZERO);
        let gross = v.gross();
        let initial_margin = gross / Decimal::from(multiplier);
        let maintenance = v.long_market_value * Decimal::new(25, 2)
            + (-v.short_market_value) * Decimal::new(30, 2);
        let non_marginable = (account.cash - reserved).max(Decimal::ZERO);
        AccountJson {
            id: account.id,
            account_number: account.number.clone(),
            status: "ACTIVE",
            crypto_status: "INACTIVE",
            currency: "USD",
            buying_power: money(buying_power),
            regt_buying_power: money(buying_power),
            daytrading_buying_power: Decimal::ZERO,
            effective_buying_power: money(buying_power),
            non_marginable_buying_power: money(non_marginable),
            options_buying_power: Decimal::ZERO,
            bod_dtbp: Decimal::ZERO,
            cash: money(account.cash),
            accrued_fees: Decimal::ZERO,
            pending_transfer_in: Decimal::ZERO,
            pending_transfer_out: Decimal::ZERO,
            portfolio_value: money(v.equity),
            pattern_day_trader: false,
            trading_blocked: false,
            transfers_blocked: false,
            account_blocked: false,
            created_at: ts(account.created_at),
            trade_suspended_by_user: false,
            multiplier: multiplier.to_string(),
            shorting_enabled: shorting,
            equity: money(v.equity),
            last_equity: money(account.last_equity),
            long_market_value: money(v.long_market_value),
            short_market_value: money(v.short_market_value),
            position_market_value: money(v.long_market_value - v.short_market_value),
            initial_margin: money(initial_margin),
            maintenance_margin: money(maintenance),
            last_maintenance_margin: money(maintenance),
            sma: money(account.last_equity),
            daytrade_count: 0,
            balance_asof: account.equity_day.to_string(),
            options_approved_level: 0,
            options_trading_level: 0,
        }
    }

    pub fn positions_json(
        &mut self,
        key: &str,
        market: &mut Market,
        now: DateTime<Utc>,
    ) -> Vec<PositionJson> {
        let account = self.account(key, market, now);
        let positions: Vec<(Position, Decimal)> = account
            .positions
            .values()
            .map(|p| (p.clone(), account.qty_available(&p.symbol)))
            .collect();
        positions
            .into_iter()
            .map(|(p, available)| position_json(&p, available, market, now))
            .collect()
    }

    pub fn position_json(
        &mut self,
        key: &str,
        symbol: &str,
        market: &mut Market,
        now: DateTime<Utc>,
    ) -> Result<PositionJson, ExchangeError> {
        let account = self.account(key, market, now);
        let p = account
            .positions
            .get(symbol)
            .cloned()
            .ok_or(ExchangeError::PositionNotFound)?;
        let available = account.qty_available(symbol);
        Ok(position_json(&p, available, market, now))
    }
}

fn position_json(
    p: &Position,
    available: Decimal,
    market: &mut Market,
    now: DateTime<Utc>,
) -> PositionJson {
    let price = to_decimal(market.price(&p.symbol, now));
    let last = to_decimal(market.last_day_close(&p.symbol, now));
    let market_value = p.qty * price;
    let cost_basis = p.qty * p.avg_entry_price;
    let unrealized = market_value - cost_basis;
    let intraday = p.qty * (price - last);
    PositionJson {
        asset_id: p.asset_id,
        symbol: p.symbol.clone(),
        exchange: market.params(&p.symbol).exchange,
        asset_class: "us_equity",
        asset_marginable: true,
        qty: p.qty.normalize(),
        qty_available: if p.qty < Decimal::ZERO {
            -available.normalize()
        } else {
            available.normalize()
        },
        avg_entry_price: p.avg_entry_price.normalize(),
        side: if p.qty < Decimal::ZERO {
            "short"
        } else {
            "long"
        },
        market_value: money(market_value),
        cost_basis: money(cost_basis),
        unrealized_pl: money(unrealized),
        unrealized_plpc: ratio(unrealized, cost_basis.abs()),
        unrealized_intraday_pl: money(intraday),
        unrealized_intraday_plpc: ratio(intraday, (p.qty * last).abs()),
        current_price: price.normalize(),
        lastday_price: last.normalize(),
        change_today: ratio(price - last, last),
    }
}
