//! The order book: one record per decision, fills counted once, pages of `/orders`, per-instance
//! positions and realized P&L by venue day, and what a restore brings back.

use super::*;
use crate::domain::{OrderStatus, Side};
use chrono::TimeZone;

fn intent(side: Side, qty: i64) -> OrderIntent {
    OrderIntent {
        symbol: Symbol::parse("SPY").unwrap(),
        side,
        qty: Decimal::from(qty),
        decided_on: Utc.with_ymd_and_hms(2026, 3, 2, 15, 0, 0).unwrap(),
        reference_price: Some(100.0),
        reason: "test".into(),
    }
}

/// The venue's view of an order: `filled` shares so far at an average of `avg`.
fn venue(cid: &str, status: OrderStatus, filled: i64, avg: &str) -> Order {
    serde_json::from_value(serde_json::json!({
        "id": "6f1c1f4e-0000-4000-8000-000000000001", "client_order_id": cid, "symbol": "SPY",
        "qty": "10", "filled_qty": filled.to_string(), "filled_avg_price": avg, "side": "buy",
        "type": "market", "status": status, "created_at": "2026-03-02T15:00:00Z"
    }))
    .unwrap()
}

#[test]
fn the_same_decision_is_never_sent_twice() {
    let book = OrderBook::new();
    let id = InstanceId::parse("m").unwrap();
    let cid = ClientOrderId::new("cid-1".into());
    assert!(matches!(
        book.begin(&id, &intent(Side::Buy, 10), cid.clone(), None),
        Begin::New(..)
    ));
    assert!(matches!(
        book.begin(&id, &intent(Side::Buy, 10), cid, None),
        Begin::Existing(_)
    ));
}

#[test]
fn fills_move_the_position_once_and_pending_shrinks() {
    let book = OrderBook::new();
    let id = InstanceId::parse("m").unwrap();
    let spy = Symbol::parse("SPY").unwrap();
    let cid = ClientOrderId::new("cid-1".into());
    book.begin(&id, &intent(Side::Buy, 10), cid.clone(), None);
    let (_, pending) = book.instance_view(&id, std::slice::from_ref(&spy));
    assert_eq!(pending[&spy], Decimal::from(10));
    book.apply_venue(
        &cid,
        &venue("cid-1", OrderStatus::PartiallyFilled, 4, "100"),
    );
    book.apply_venue(
        &cid,
        &venue("cid-1", OrderStatus::PartiallyFilled, 4, "100"),
    );
    let (pos, pending) = book.instance_view(&id, std::slice::from_ref(&spy));
    assert_eq!(
        (pos[&spy].qty, pos[&spy].avg_price, pending[&spy]),
        (Decimal::from(4), Decimal::from(100), Decimal::from(6))
    );
    // 6 more at 101.6: the venue's cumulative average becomes (4·100 + 6·101.6)/10 = 100.96.
    book.apply_venue(&cid, &venue("cid-1", OrderStatus::Filled, 10, "100.96"));
    let (pos, pending) = book.instance_view(&id, std::slice::from_ref(&spy));
    assert_eq!(pos[&spy].qty, Decimal::from(10));
    assert_eq!(pos[&spy].avg_price, "100.96".parse::<Decimal>().unwrap());
    assert!(pending.is_empty());
}

#[test]
fn a_reading_older_than_the_venues_final_word_changes_nothing() {
    let book = OrderBook::new();
    let id = InstanceId::parse("m").unwrap();
    let spy = Symbol::parse("SPY").unwrap();
    let cid = ClientOrderId::new("cid-1".into());
    book.begin(&id, &intent(Side::Buy, 10), cid.clone(), None);
    book.apply_venue(&cid, &venue("cid-1", OrderStatus::Filled, 10, "100"));
    let stale = book.apply_venue(&cid, &venue("cid-1", OrderStatus::Accepted, 0, "0"));
    assert_eq!(
        stale.map(|(r, filled)| (r.state, filled)),
        Some((OrderState::Filled, Decimal::ZERO))
    );
    let record = book.get(&cid).unwrap();
    assert_eq!(
        (record.state, record.venue_status),
        (OrderState::Filled, Some(OrderStatus::Filled))
    );
    assert!(book.unsettled().is_empty());
    let (pos, pending) = book.instance_view(&id, std::slice::from_ref(&spy));
    assert_eq!(pos[&spy].qty, Decimal::from(10));
    assert!(pending.is_empty());
}

#[test]
fn pages_of_orders_filter_and_continue_where_the_last_ended() {
    let book = OrderBook::new();
    for n in 0..5 {
        let who = InstanceId::parse(if n % 2 == 0 { "even" } else { "odd" }).unwrap();
        let cid = ClientOrderId::new(format!("cid-{n}"));
        book.begin(&who, &intent(Side::Buy, n + 1), cid, None);
    }
    let cids = |page: &OrdersPage| -> Vec<String> {
        page.orders
            .iter()
            .map(|r| r.client_order_id.as_str().to_owned())
            .collect()
    };
    let even = OrderFilter {
        instance: Some(InstanceId::parse("even").unwrap()),
        ..OrderFilter::default()
    };
    let first = book.page(&even, 2, None);
    assert_eq!(cids(&first), ["cid-4", "cid-2"], "newest first");
    let second = book.page(&even, 2, first.next);
    assert_eq!(cids(&second), ["cid-0"]);
    assert_eq!(second.next, None, "the last page says so");
    let submitting = OrderFilter {
        state: Some(OrderState::Submitting),
        symbol: Some(Symbol::parse("SPY").unwrap()),
        ..OrderFilter::default()
    };
    assert_eq!(book.page(&submitting, 10, None).orders.len(), 5);
    let filled = OrderFilter {
        state: Some(OrderState::Filled),
        ..OrderFilter::default()
    };
    assert!(book.page(&filled, 10, None).orders.is_empty());
}

#[test]
fn a_loss_is_realized_on_the_venue_day_of_its_fill_and_per_instance() {
    let book = OrderBook::new();
    let (a, b) = (
        InstanceId::parse("a").unwrap(),
        InstanceId::parse("b").unwrap(),
    );
    let (buy, sell) = (
        ClientOrderId::new("cid-buy".into()),
        ClientOrderId::new("cid-sell".into()),
    );
    book.begin(&a, &intent(Side::Buy, 10), buy.clone(), None);
    book.apply_venue(&buy, &venue("cid-buy", OrderStatus::Filled, 10, "100"));
    book.begin(&a, &intent(Side::Sell, 10), sell.clone(), None);
    // Sold at 90 at 15:00 UTC on 2026-03-02: 10:00 in New York, the same venue day.
    book.apply_venue(&sell, &venue("cid-sell", OrderStatus::Filled, 10, "90"));
    let day = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
    assert_eq!(
        book.realized_on(&a, day),
        (Decimal::from(-100), Decimal::from(-100))
    );
    assert_eq!(
        book.realized_on(&b, day),
        (Decimal::ZERO, Decimal::from(-100))
    );
    assert_eq!(
        book.realized_on(&a, day.succ_opt().unwrap()),
        (Decimal::ZERO, Decimal::ZERO)
    );
}

#[test]
fn realized_pnl_sums_every_instance_per_day_and_keeps_recent_days_only() {
    let mut b = BookInner::default();
    let (a, c) = (
        InstanceId::parse("a").unwrap(),
        InstanceId::parse("c").unwrap(),
    );
    // 15:00 UTC is 10:00 in New York: each fill is on the venue day of its UTC date.
    let at = |day: u32| Utc.with_ymd_and_hms(2026, 3, day, 15, 0, 0).unwrap();
    let day = |d: u32| NaiveDate::from_ymd_opt(2026, 3, d).unwrap();
    b.add_realized(&a, at(2), Decimal::from(-40));
    b.add_realized(&c, at(2), Decimal::from(15));
    b.add_realized(&a, at(2), Decimal::from(-5));
    let book = OrderBook::new();
    *book.lock() = b;
    assert_eq!(
        book.realized_on(&a, day(2)),
        (Decimal::from(-45), Decimal::from(-30))
    );
    assert_eq!(
        book.realized_on(&c, day(2)),
        (Decimal::from(15), Decimal::from(-30))
    );
    // A fill three days later drops the 2nd (only the last REALIZED_DAYS are read); a late
    // fill of an older day keeps the newer ones.
    book.lock().add_realized(&c, at(5), Decimal::from(7));
    book.lock().add_realized(&a, at(3), Decimal::from(1));
    assert_eq!(book.realized_on(&a, day(2)), (Decimal::ZERO, Decimal::ZERO));
    assert_eq!(
        book.realized_on(&c, day(5)),
        (Decimal::from(7), Decimal::from(7))
    );
    assert_eq!(
        book.realized_on(&a, day(3)),
        (Decimal::from(1), Decimal::from(1))
    );
}

#[test]
fn a_restored_book_remembers_todays_realized_loss_and_holdings() {
    let a = InstanceId::parse("a").unwrap();
    let spy = Symbol::parse("SPY").unwrap();
    let fill_at = Utc.with_ymd_and_hms(2026, 3, 2, 20, 0, 0).unwrap();
    let held = Holding {
        qty: Decimal::from(5),
        avg_price: Decimal::from(100),
        realized_pnl: Decimal::from(-40),
    };
    let restored = Restored {
        ledger: vec![(a.clone(), spy.clone(), held)],
        realized: vec![(a.clone(), fill_at, Decimal::from(-40))],
        next_seq: 7,
        ..Restored::default()
    };
    let book = OrderBook::new();
    book.restore(&restored, &|_| true);
    let day = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
    assert_eq!(book.realized_on(&a, day).0, Decimal::from(-40));
    assert_eq!(
        book.instance_view(&a, std::slice::from_ref(&spy)).0[&spy],
        held
    );
}

#[test]
fn positions_are_per_instance() {
    let book = OrderBook::new();
    let (a, b) = (
        InstanceId::parse("a").unwrap(),
        InstanceId::parse("b").unwrap(),
    );
    let spy = Symbol::parse("SPY").unwrap();
    let cid = ClientOrderId::new("cid-a".into());
    book.begin(&a, &intent(Side::Buy, 10), cid.clone(), None);
    book.apply_venue(&cid, &venue("cid-a", OrderStatus::Filled, 10, "100"));
    assert!(
        book.instance_view(&b, std::slice::from_ref(&spy))
            .0
            .is_empty()
    );
}

#[test]
fn a_reading_of_the_account_is_compared_once_however_many_views_share_it() {
    let book = OrderBook::new();
    let reading = |qty: &str| -> Arc<[Position]> {
        serde_json::from_value::<Vec<Position>>(serde_json::json!([
            {"symbol": "SPY", "qty": qty, "avg_entry_price": "100"}
        ]))
        .unwrap()
        .into()
    };
    let first = reading("4");
    assert!(book.first_sight(&first));
    assert!(!book.first_sight(&Arc::clone(&first)), "the same reading");
    // A new reading is compared even when it says the same: the book may have changed.
    let second = reading("4");
    assert!(book.first_sight(&second));
    assert!(
        book.first_sight(&first),
        "an older reading again is not the last one seen"
    );
}
