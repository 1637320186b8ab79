//! The exchange against a real (seeded) market: lifecycle, checks, positions.

use super::*;
use crate::sim::config::SimConfig;
use crate::sim::market::Replay;
use chrono::Duration;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("valid time")
        .with_timezone(&Utc)
}

fn dec(s: &str) -> Decimal {
    s.parse().expect("decimal")
}

fn setup(cfg: SimConfig, start: DateTime<Utc>) -> (Exchange, Market) {
    let market = Market::new(cfg.market(), start, Replay::default());
    (Exchange::new(cfg.exchange()), market)
}

fn market_order(symbol: &str, side: Side, qty: &str) -> NewOrder {
    NewOrder::market(symbol, side, dec(qty))
}

const T0: &str = "2024-05-08T15:17:00Z";

#[test]
fn market_order_is_new_then_filled_after_the_fill_delay() {
    let now = utc(T0);
    let (mut ex, mut m) = setup(SimConfig::default(), now);
    let o = ex
        .submit("k", market_order("SPY", Side::Buy, "10"), &mut m, now)
        .expect("accepted");
    assert_eq!(o.status, Status::New);
    assert_eq!(o.filled_qty, Decimal::ZERO);
    let later = now + Duration::seconds(3);
    let o = ex.order("k", o.id, &mut m, later).expect("known");
    assert_eq!(o.status, Status::Filled);
    assert_eq!(o.filled_qty, dec("10"));
    // Filled at the sim time it happened (submit + 2 s fill delay), not at the request.
    assert_eq!(o.filled_at, Some(order::ts(now + Duration::seconds(2))));
    let price = o.filled_avg_price.expect("price");
    let account = ex.account("k", &mut m, later);
    assert_eq!(account.cash, dec("100000") - price * dec("10"));
    assert_eq!(account.positions["SPY"].qty, dec("10"));
}

#[test]
fn orders_placed_while_closed_are_accepted_then_work_from_the_open() {
    let cfg = SimConfig {
        market_hours: MarketHours::Regular,
        ..SimConfig::default()
    };
    let sat = utc("2024-05-11T15:00:00Z");
    let (mut ex, mut m) = setup(cfg, sat);
    let o = ex
        .submit("k", market_order("QQQ", Side::Buy, "5"), &mut m, sat)
        .expect("accepted");
    assert_eq!(o.status, Status::Accepted);
    let sunday = ex
        .order("k", o.id, &mut m, utc("2024-05-12T15:00:00Z"))
        .expect("known");
    assert_eq!(sunday.status, Status::Accepted);
    let monday = ex
        .order("k", o.id, &mut m, utc("2024-05-13T13:31:00Z"))
        .expect("known");
    assert_eq!(monday.status, Status::Filled);
    assert_eq!(
        monday.filled_at,
        Some(order::ts(utc("2024-05-13T13:30:02Z")))
    );
}

#[test]
fn unfilled_day_orders_expire_at_the_close_and_gtc_orders_do_not() {
    let cfg = SimConfig {
        market_hours: MarketHours::Regular,
        ..SimConfig::default()
    };
    let now = utc("2024-05-08T15:00:00Z");
    let (mut ex, mut m) = setup(cfg, now);
    let far = |tif| NewOrder {
        order_type: OrderType::Limit,
        limit_price: Some(dec("1.00")),
        time_in_force: tif,
        ..market_order("SPY", Side::Buy, "1")
    };
    let day = ex
        .submit("k", far(TimeInForce::Day), &mut m, now)
        .expect("ok");
    let gtc = ex
        .submit("k", far(TimeInForce::Gtc), &mut m, now)
        .expect("ok");
    let after_close = utc("2024-05-08T20:30:00Z");
    let day = ex.order("k", day.id, &mut m, after_close).expect("known");
    assert_eq!(day.status, Status::Expired);
    assert_eq!(day.expired_at, Some(order::ts(utc("2024-05-08T20:00:00Z"))));
    assert_eq!(
        ex.order("k", gtc.id, &mut m, after_close)
            .expect("known")
            .status,
        Status::New
    );
}

#[test]
fn buying_power_and_quantity_are_checked() {
    let now = utc(T0);
    let cfg = SimConfig {
        margin_multiplier: 1,
        ..SimConfig::default()
    };
    let (mut ex, mut m) = setup(cfg, now);
    let err = ex
        .submit("k", market_order("SPY", Side::Buy, "100000"), &mut m, now)
        .expect_err("too expensive");
    assert!(matches!(err, ExchangeError::InsufficientBuyingPower { .. }));
    // Cash account: no shorting.
    let err = ex
        .submit("k", market_order("SPY", Side::Sell, "1"), &mut m, now)
        .expect_err("no shares");
    assert!(matches!(err, ExchangeError::InsufficientQty { .. }));
    ex.submit("k", market_order("SPY", Side::Buy, "10"), &mut m, now)
        .expect("affordable");
    let later = now + Duration::seconds(5);
    // Shares held by an open sell order are not available to another one.
    let hold = NewOrder {
        order_type: OrderType::Limit,
        limit_price: Some(dec("99999")),
        time_in_force: TimeInForce::Gtc,
        ..market_order("SPY", Side::Sell, "6")
    };
    ex.submit("k", hold, &mut m, later).expect("held");
    let err = ex
        .submit("k", market_order("SPY", Side::Sell, "5"), &mut m, later)
        .expect_err("only 4 available");
    assert_eq!(
        err.to_string(),
        "insufficient qty available for order (requested: 5, available: 4)"
    );
}

#[test]
fn client_order_ids_are_unique_for_all_time() {
    let now = utc(T0);
    let (mut ex, mut m) = setup(SimConfig::default(), now);
    let req = NewOrder {
        client_order_id: Some("strategy-1".into()),
        order_type: OrderType::Limit,
        limit_price: Some(dec("1")),
        time_in_force: TimeInForce::Gtc,
        ..market_order("SPY", Side::Buy, "1")
    };
    let o = ex.submit("k", req.clone(), &mut m, now).expect("first");
    ex.cancel("k", o.id, &mut m, now).expect("cancelable");
    assert_eq!(
        ex.submit("k", req.clone(), &mut m, now).map(|_| ()),
        Err(ExchangeError::DuplicateClientOrderId)
    );
    // Another account may use it.
    assert!(ex.submit("other", req, &mut m, now).is_ok());
    // A cancelled order cannot be cancelled again.
    assert_eq!(
        ex.cancel("k", o.id, &mut m, now).map(|_| ()),
        Err(ExchangeError::NotCancelable("canceled"))
    );
}

#[test]
fn shorts_and_partial_closes() {
    let now = utc(T0);
    let (mut ex, mut m) = setup(SimConfig::default(), now);
    ex.submit("k", market_order("IWM", Side::Sell, "10"), &mut m, now)
        .expect("short allowed at multiplier 2");
    let later = now + Duration::seconds(5);
    let pos = ex.position_json("k", "IWM", &mut m, later).expect("short");
    assert_eq!(pos.side, "short");
    assert_eq!(pos.qty, dec("-10"));
    let close = ex
        .close_position("k", "IWM", None, Some(dec("40")), &mut m, later)
        .expect("partial close");
    assert_eq!(close.side, Side::Buy);
    assert_eq!(close.qty, Some(dec("4")));
    let pos = ex
        .position_json("k", "IWM", &mut m, later + Duration::seconds(5))
        .expect("still short");
    assert_eq!(pos.qty, dec("-6"));
    ex.close_position("k", "IWM", None, None, &mut m, later + Duration::seconds(5))
        .expect("close rest");
    assert_eq!(
        ex.position_json("k", "IWM", &mut m, later + Duration::seconds(10))
            .map(|_| ()),
        Err(ExchangeError::PositionNotFound)
    );
}

#[test]
fn accepted_orders_that_no_longer_fit_are_rejected_at_the_open() {
    let cfg = SimConfig {
        market_hours: MarketHours::Regular,
        margin_multiplier: 1,
        initial_cash: 10_000.0,
        ..SimConfig::default()
    };
    let sat = utc("2024-05-11T15:00:00Z");
    let open = utc("2024-05-13T13:30:00Z");
    let (mut ex, mut m) = setup(cfg, sat);
    // All the cash at Friday's close: fits now, not at Monday's higher open. The seed fixes
    // which symbol gaps up enough.
    let qty_for = |m: &mut Market, s: &str| (dec("10000") / to_decimal(m.price(s, sat))).floor();
    let symbol = [
        "SPY", "QQQ", "IWM", "DIA", "AAPL", "MSFT", "AMZN", "JPM", "XOM", "GLD",
    ]
    .into_iter()
    .find(|s| qty_for(&mut m, s) * to_decimal(m.price(s, open)) > dec("10000"))
    .expect("some symbol gaps up enough");
    let qty = qty_for(&mut m, symbol);
    let o = ex
        .submit(
            "k",
            market_order(symbol, Side::Buy, &qty.to_string()),
            &mut m,
            sat,
        )
        .expect("fits at Friday's close");
    assert_eq!(o.status, Status::Accepted);
    // A second order is refused up front: the first reserves the buying power.
    assert!(matches!(
        ex.submit("k", market_order(symbol, Side::Buy, "1"), &mut m, sat),
        Err(ExchangeError::InsufficientBuyingPower { .. })
    ));
    let o = ex
        .order("k", o.id, &mut m, open + Duration::minutes(1))
        .expect("known");
    assert_eq!(o.status, Status::Rejected);
    assert_eq!(o.failed_at, Some(order::ts(open)));
}

#[test]
fn account_values_move_with_fills_and_prices() {
    let now = utc(T0);
    let (mut ex, mut m) = setup(SimConfig::default(), now);
    ex.submit("k", market_order("QQQ", Side::Buy, "20"), &mut m, now)
        .expect("ok");
    let t1 = now + Duration::seconds(5);
    let a1 = ex.account_json("k", &mut m, t1);
    let t2 = now + Duration::hours(2);
    let a2 = ex.account_json("k", &mut m, t2);
    assert_eq!(a1.cash, a2.cash);
    assert_ne!(a1.equity, a2.equity, "equity follows the price");
    assert_eq!(a2.equity, a2.cash + a2.long_market_value);
    assert_eq!(a2.portfolio_value, a2.equity);
}
