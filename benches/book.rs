//! What the order book costs a trading instance's view, in a book as full as a busy day leaves
//! it: 1,000 instances holding 5 symbols each, the 10,000 final orders the book keeps, and some
//! orders still working.
//!
//! `cargo bench --bench book`.
//!
//! A view asks the book for the instance's holdings and working quantities
//! (`instance_view`) and, for each symbol it holds, what the account should hold
//! (`expected_position`); an order asks `instance_view` once more. `one cycle` is every
//! instance's view once: what the book adds to a scheduling cycle.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use chrono::{TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use rust_decimal::Decimal;

use herd::broker::OrderBook;
use herd::broker::alpaca::models::Order;
use herd::domain::{ClientOrderId, InstanceId, OrderIntent, Side, Symbol};

const INSTANCES: usize = 1_000;
const SYMBOLS_EACH: usize = 5;
/// Final orders: the book keeps this many, so a day's trading fills it.
const FINAL: usize = 10_000;
/// Orders still working (e.g. queued behind the rate limiter).
const WORKING: usize = 100;

fn instance(n: usize) -> InstanceId {
    InstanceId::parse(&format!("momentum-{n}")).unwrap()
}

/// One of 500 two-letter symbols.
fn symbol(n: usize) -> Symbol {
    let letter = |k: usize| char::from(b'A' + k as u8);
    Symbol::parse(&format!("{}{}", letter(n / 26), letter(n % 26))).unwrap()
}

/// The symbols of instance `n`: 5 of 500, overlapping with its neighbours'.
fn symbols_of(n: usize) -> Vec<Symbol> {
    (0..SYMBOLS_EACH)
        .map(|k| symbol((n * SYMBOLS_EACH / 10 + k) % 500))
        .collect()
}

fn filled(cid: &ClientOrderId, symbol: &Symbol, qty: i64) -> Order {
    serde_json::from_value(serde_json::json!({
        "id": format!("venue-{cid}"), "client_order_id": cid.as_str(), "symbol": symbol.as_str(),
        "qty": qty.to_string(), "filled_qty": qty.to_string(), "filled_avg_price": "100",
        "side": "buy", "type": "market", "status": "filled",
        "created_at": "2026-03-02T15:00:00Z"
    }))
    .unwrap()
}

/// Orders `count` of `qty` for instance `n` (cycling through its symbols), filled if `fill`.
fn place(book: &OrderBook, n: usize, first: usize, count: usize, fill: bool) {
    let decided = Utc.with_ymd_and_hms(2026, 3, 2, 15, 0, 0).unwrap();
    let symbols = symbols_of(n);
    for k in first..first + count {
        let symbol = &symbols[k % SYMBOLS_EACH];
        let intent = OrderIntent {
            symbol: symbol.clone(),
            side: Side::Buy,
            qty: Decimal::ONE,
            decided_on: decided + chrono::Duration::minutes(k as i64),
            reference_price: Some(100.0),
            reason: "bench".into(),
        };
        let cid = ClientOrderId::new(format!("{n}-{k}"));
        let _ = book.begin(&instance(n), &intent, cid.clone(), None);
        if fill {
            book.apply_venue(&cid, &filled(&cid, symbol, 1));
        }
    }
}

fn full_book() -> OrderBook {
    let book = OrderBook::new();
    for n in 0..INSTANCES {
        place(&book, n, 0, FINAL / INSTANCES, true);
    }
    for w in 0..WORKING {
        place(&book, w * (INSTANCES / WORKING), FINAL, 1, false);
    }
    book
}

fn views(c: &mut Criterion) {
    let book = full_book();
    let who: Vec<(InstanceId, Vec<Symbol>)> = (0..INSTANCES)
        .map(|n| (instance(n), symbols_of(n)))
        .collect();
    let mut g = c.benchmark_group("book");
    g.bench_function("instance_view", |b| {
        let mut n = 0;
        b.iter(|| {
            n = (n + 1) % INSTANCES;
            let (id, symbols) = &who[n];
            black_box(book.instance_view(id, symbols))
        })
    });
    g.bench_function("expected_position", |b| {
        let mut n = 0;
        b.iter(|| {
            n = (n + 1) % 500;
            black_box(book.expected_position(&symbol(n)))
        })
    });
    g.sample_size(10);
    g.bench_function("one cycle", |b| {
        b.iter(|| {
            for (id, symbols) in &who {
                let (held, pending) = book.instance_view(id, symbols);
                for s in held.keys() {
                    black_box(book.expected_position(s));
                }
                black_box(pending);
            }
        })
    });
    g.finish();
}

criterion_group!(benches, views);
criterion_main!(benches);
