//! Matching against hand-made price paths.

use super::*;
use crate::sim::exchange::order::Amount;
use chrono::TimeZone;
use uuid::Uuid;

const S: i64 = 1_000_000;

fn costs() -> Costs {
    Costs {
        spread_bps: 0.0,
        slippage_bps: 0.0,
        max_fill_share: 0.1,
    }
}

fn dec(s: &str) -> Decimal {
    s.parse().expect("decimal")
}

fn order(side: Side, kind: OrderType, tif: TimeInForce, qty: &str) -> Order {
    let t = Utc.timestamp_opt(0, 0).single().expect("epoch");
    Order {
        id: Uuid::nil(),
        client_order_id: "c".into(),
        seq: 1,
        symbol: "X".into(),
        asset_id: Uuid::nil(),
        side,
        order_type: kind,
        time_in_force: tif,
        amount: Amount::Qty(dec(qty)),
        limit_price: None,
        stop_price: None,
        extended_hours: false,
        status: Status::New,
        created_at: t,
        updated_at: t,
        submitted_at: t,
        filled_at: None,
        canceled_at: None,
        expired_at: None,
        failed_at: None,
        expires_at: None,
        filled_qty: Decimal::ZERO,
        filled_value: Decimal::ZERO,
        active_at: t,
        eligible_at: t,
        matched_until: t,
        arrived: false,
        triggered: false,
        minute_used: (0, Decimal::ZERO),
        resolved_qty: None,
    }
}

/// A point at `secs` seconds with `price`, in the minute starting at `minute` seconds.
fn pt(secs: i64, price: f64, volume: u64) -> PathPoint {
    PathPoint {
        t: secs * S,
        price,
        minute: secs.div_euclid(60) * 60,
        volume,
        jump: false,
    }
}

#[test]
fn market_orders_fill_at_arrival_at_the_ask_plus_slippage() {
    let mut o = order(Side::Buy, OrderType::Market, TimeInForce::Day, "10");
    let c = Costs {
        spread_bps: 20.0,
        slippage_bps: 10.0,
        ..costs()
    };
    let fills = run(&mut o, Some(pt(0, 100.0, 10_000)), &[], &c);
    assert_eq!(fills.len(), 1);
    // Ask 100.10, plus 0.1 % slippage = 100.2001, rounded up to the cent.
    assert_eq!(fills[0].price, dec("100.21"));
    assert_eq!(o.status, Status::Filled);
    assert_eq!(o.filled_qty, dec("10"));
    let mut s = order(Side::Sell, OrderType::Market, TimeInForce::Day, "10");
    let fills = run(&mut s, Some(pt(0, 100.0, 10_000)), &[], &c);
    assert_eq!(fills[0].price, dec("99.8"));
}

#[test]
fn limit_orders_wait_then_fill_at_the_limit_where_the_path_crosses() {
    let mut o = order(Side::Buy, OrderType::Limit, TimeInForce::Gtc, "10");
    o.limit_price = Some(dec("99"));
    let path = [pt(0, 100.0, 1000), pt(20, 100.5, 1000), pt(40, 98.0, 1000)];
    let fills = run(&mut o, Some(path[0]), &path, &costs());
    assert_eq!(fills.len(), 1);
    assert_eq!(fills[0].price, dec("99"));
    // Crossing 99 between 100.5 (t=20) and 98 (t=40): 60 % of the way, at t=32.
    assert_eq!(fills[0].at.timestamp(), 32);
    assert_eq!(o.status, Status::Filled);
}

#[test]
fn a_gap_through_the_limit_fills_at_the_better_open() {
    let mut o = order(Side::Buy, OrderType::Limit, TimeInForce::Gtc, "1");
    o.limit_price = Some(dec("99"));
    let mut open = pt(600, 95.0, 1000);
    open.jump = true;
    let path = [pt(0, 100.0, 0), open];
    let fills = run(&mut o, Some(path[0]), &path, &costs());
    assert_eq!(fills[0].price, dec("95"));
}

#[test]
fn sell_limits_never_fill_below_the_limit() {
    let mut o = order(Side::Sell, OrderType::Limit, TimeInForce::Day, "5");
    o.limit_price = Some(dec("101"));
    let path = [pt(0, 100.0, 1000), pt(20, 100.9, 1000), pt(40, 100.2, 1000)];
    assert!(run(&mut o, Some(path[0]), &path, &costs()).is_empty());
    assert_eq!(o.status, Status::New);
}

#[test]
fn stops_trigger_on_crossing_and_fill_like_market_orders() {
    let mut o = order(Side::Sell, OrderType::Stop, TimeInForce::Gtc, "10");
    o.stop_price = Some(dec("98"));
    let path = [pt(0, 100.0, 1000), pt(20, 99.0, 1000), pt(40, 97.0, 1000)];
    let fills = run(&mut o, Some(path[0]), &path, &costs());
    assert!(o.triggered);
    assert_eq!(fills.len(), 1);
    assert_eq!(fills[0].price, dec("98"));
    assert_eq!(fills[0].at.timestamp(), 30);
}

#[test]
fn stop_limits_rest_as_limits_after_triggering() {
    let mut o = order(Side::Buy, OrderType::StopLimit, TimeInForce::Gtc, "10");
    o.stop_price = Some(dec("101"));
    o.limit_price = Some(dec("100.5"));
    let mut gap = pt(600, 102.0, 1000);
    gap.jump = true;
    // Gaps above the stop and above the limit: triggered, not filled; fills when it comes back.
    let path = [pt(0, 100.0, 0), gap, pt(620, 100.2, 1000)];
    let fills = run(&mut o, Some(path[0]), &path, &costs());
    assert!(o.triggered);
    assert_eq!(fills.len(), 1);
    assert_eq!(fills[0].price, dec("100.5"));
}

#[test]
fn large_orders_fill_partially_over_several_minutes() {
    // 10 % of 100 shares a minute = 10 shares a minute.
    let mut o = order(Side::Buy, OrderType::Market, TimeInForce::Gtc, "25");
    let path = [
        pt(0, 100.0, 100),
        pt(30, 100.0, 100),
        pt(60, 101.0, 100),
        pt(90, 101.0, 100),
        pt(120, 102.0, 100),
    ];
    let fills = run(&mut o, Some(path[0]), &path[..2], &costs());
    assert_eq!(fills.len(), 1);
    assert_eq!(o.status, Status::PartiallyFilled);
    assert_eq!(o.filled_qty, dec("10"));
    let more = run(&mut o, None, &path[1..], &costs());
    assert_eq!(
        more.iter().map(|f| f.qty).collect::<Vec<_>>(),
        vec![dec("10"), dec("5")]
    );
    assert_eq!(o.status, Status::Filled);
    assert_eq!(o.filled_avg_price(), Some(dec("100.8")));
}

#[test]
fn ioc_fills_what_it_can_and_fok_all_or_nothing() {
    let mut ioc = order(Side::Buy, OrderType::Market, TimeInForce::Ioc, "25");
    run(&mut ioc, Some(pt(0, 100.0, 100)), &[], &costs());
    assert_eq!(ioc.filled_qty, dec("10"));
    assert_eq!(ioc.status, Status::Canceled);
    let mut fok = order(Side::Buy, OrderType::Market, TimeInForce::Fok, "25");
    let fills = run(&mut fok, Some(pt(0, 100.0, 100)), &[], &costs());
    assert!(fills.is_empty());
    assert_eq!(fok.status, Status::Canceled);
    let mut fok = order(Side::Buy, OrderType::Market, TimeInForce::Fok, "5");
    run(&mut fok, Some(pt(0, 100.0, 100)), &[], &costs());
    assert_eq!(fok.status, Status::Filled);
}

#[test]
fn market_orders_wait_for_trading_when_the_market_is_closed() {
    let mut o = order(Side::Buy, OrderType::Market, TimeInForce::Gtc, "1");
    let mut open = pt(3600, 103.0, 500);
    open.jump = true;
    let path = [pt(0, 100.0, 0), open];
    let fills = run(&mut o, Some(path[0]), &path, &costs());
    assert_eq!(fills.len(), 1);
    assert_eq!(fills[0].price, dec("103"));
    assert_eq!(fills[0].at.timestamp(), 3600);
}

#[test]
fn notional_orders_resolve_to_fractional_shares() {
    let mut o = order(Side::Buy, OrderType::Market, TimeInForce::Day, "1");
    o.amount = Amount::Notional(dec("250"));
    run(&mut o, Some(pt(0, 100.0, 10_000)), &[], &costs());
    assert_eq!(o.filled_qty, dec("2.5"));
    assert_eq!(o.status, Status::Filled);
}

#[test]
fn quotes_straddle_the_price_on_the_tick_grid() {
    assert_eq!(quote(100.0, 2.0), (99.99, 100.01));
    assert_eq!(quote(100.0, 0.0), (100.0, 100.0));
    assert_eq!(quote(0.5, 2.0), (0.4999, 0.5001));
}
