//! `cargo bench --bench journal`: what the journal costs. Two figures, on SQLite in a temporary
//! directory (and on PostgreSQL when `HERD_TEST_POSTGRES` names a server):
//! - throughput: entries per second the one writer commits with a full queue (order snapshots
//!   and fills, as a busy herd records them);
//! - latency added to an order: from recording its intent to the intent being durable, with the
//!   writer idle — the wait an order has before its POST when nothing else is queued;
//! - what a decision costs: the process's CPU time (every thread: the writer, the database's)
//!   per decision, recorded as 1,000 momentum instances on 5 symbols record a cycle's holds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::time::{Duration, Instant};

use chrono::Utc;
use rust_decimal::Decimal;

use herd::domain::{
    Action, ClientOrderId, Decision, Holding, HumanDuration, InstanceId, OrderRecord, OrderState,
    Secret, Side, Symbol,
};
use herd::journal::{DecisionEntry, Entry, Fill, Journal, JournalSettings, decision_detail};
use herd::metrics::JournalMetrics;

const THROUGHPUT_ENTRIES: u64 = 50_000;
const LATENCY_ORDERS: usize = 500;
/// A cycle of 1,000 instances deciding on 5 symbols each, and how many cycles are measured.
const CYCLE_DECISIONS: usize = 5_000;
const DECISION_CYCLES: usize = 60;

fn settings(url: &str) -> JournalSettings {
    JournalSettings {
        url: Secret::new(url),
        retention: HumanDuration(Duration::from_secs(86_400 * 365)),
        queue: 10_000,
        commit_timeout: HumanDuration(Duration::from_secs(30)),
    }
}

fn order(n: u64) -> Entry {
    let now = Utc::now();
    Entry::Order {
        seq: n,
        record: Box::new(OrderRecord {
            instance: InstanceId::parse("bench").unwrap(),
            client_order_id: ClientOrderId::new(format!("bench-{n:024x}")),
            order_id: Some(format!("venue-{n}")),
            symbol: Symbol::parse("SPY").unwrap(),
            side: Side::Buy,
            qty: Decimal::from(10),
            state: OrderState::Filled,
            venue_status: None,
            submitted_at: Some(now),
            filled_qty: Decimal::from(10),
            filled_avg_price: Some("512.34".parse().unwrap()),
            decided_on: now,
            reason: "momentum 0.0312 > 0.02".into(),
            error: None,
            created_at: now,
            updated_at: now,
            lease_epoch: None,
        }),
        changed: true,
    }
}

fn fill(n: u64) -> Entry {
    Entry::Fill(Box::new(Fill {
        client_order_id: format!("bench-{n:024x}"),
        instance: InstanceId::parse("bench").unwrap(),
        symbol: Symbol::parse("SPY").unwrap(),
        qty: Decimal::from(10),
        price: "512.34".parse().unwrap(),
        filled_total: Decimal::from(10),
        realized: Decimal::ZERO,
        at: Utc::now(),
        holding: Holding {
            qty: Decimal::from(10 * (n + 1)),
            avg_price: "512.34".parse().unwrap(),
            realized_pnl: Decimal::ZERO,
        },
    }))
}

async fn measure(name: &str, url: &str, dir: &std::path::Path) {
    let (journal, _) = Journal::open(&settings(url), dir, JournalMetrics::default())
        .await
        .unwrap();
    // Throughput: the queue is filled at once, then drained by the writer.
    let started = Instant::now();
    for n in 0..THROUGHPUT_ENTRIES / 2 {
        journal.record(order(n));
        journal.record(fill(n));
    }
    journal.flush(Duration::from_secs(600)).await.unwrap();
    let elapsed = started.elapsed();
    let per_second = THROUGHPUT_ENTRIES as f64 / elapsed.as_secs_f64();
    // Latency: one intent at a time, each waited for.
    let mut waits = Vec::with_capacity(LATENCY_ORDERS);
    for n in 0..LATENCY_ORDERS as u64 {
        let started = Instant::now();
        let ticket = journal.record(order(1_000_000 + n));
        journal.durable(ticket).await.unwrap();
        waits.push(started.elapsed());
    }
    waits.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let at = |q: f64| waits[((waits.len() as f64 * q) as usize).min(waits.len() - 1)];
    println!(
        "| {name} | {THROUGHPUT_ENTRIES} | {:.2} | {:.0} | {:.2} | {:.2} | {:.2} |",
        elapsed.as_secs_f64(),
        per_second,
        ms(at(0.5)),
        ms(at(0.99)),
        ms(waits[waits.len() - 1]),
    );
}

/// A momentum hold, recorded as an instance records it (`strategy/actor/record.rs`).
fn hold(instance: &InstanceId, symbol: &Symbol, signal: f64) -> DecisionEntry {
    let decision = Decision {
        instance: None,
        symbol: symbol.clone(),
        signal: Some(signal),
        action: Action::Hold {
            reason: "no signal",
        },
    };
    DecisionEntry {
        at: Utc::now(),
        instance: instance.clone(),
        symbol: symbol.clone(),
        action: "hold",
        side: None,
        qty: None,
        signal: decision.signal,
        decided_on: None,
        reason: Some("no signal".into()),
        detail: decision_detail(&decision),
    }
}

/// CPU µs per decision: cycles of holds, each queued at once and waited for, as at 1,000
/// instances a cycle's decisions come together.
async fn decisions(name: &str, url: &str, dir: &std::path::Path) {
    let (journal, _) = Journal::open(&settings(url), dir, JournalMetrics::default())
        .await
        .unwrap();
    let instances: Vec<InstanceId> = (0..CYCLE_DECISIONS / 5)
        .map(|i| InstanceId::parse(&format!("momentum-{i:04}")).unwrap())
        .collect();
    let symbols: Vec<Symbol> = (0..500)
        .map(|i| Symbol::parse(&support::symbol(i)).unwrap())
        .collect();
    let (cpu0, _) = support::usage(std::process::id());
    let started = Instant::now();
    for cycle in 0..DECISION_CYCLES {
        for (i, instance) in instances.iter().enumerate() {
            let tick = (0..5)
                .map(|k| {
                    let symbol = &symbols[(i * 5 + k) % symbols.len()];
                    let signal = ((cycle * 7 + i + k) % 1000) as f64 * 1e-5 - 0.005;
                    hold(instance, symbol, signal)
                })
                .collect();
            assert!(journal.record_decisions(tick));
        }
        journal.flush(Duration::from_secs(60)).await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (cpu1, _) = support::usage(std::process::id());
    let n = (CYCLE_DECISIONS * DECISION_CYCLES) as f64;
    println!(
        "| {name} | {n:.0} | {elapsed:.2} | {:.0} | {:.2} |",
        n / elapsed,
        (cpu1 - cpu0) * 1e6 / n
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "| journal | entries | seconds | entries/s | intent durable p50 ms | p99 ms | max ms |"
    );
    println!("|---|---|---|---|---|---|---|");
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        measure("SQLite (WAL, synchronous=FULL)", "", dir.path()).await;
        if let Ok(admin) = std::env::var("HERD_TEST_POSTGRES") {
            use sqlx::{Connection, Executor};
            let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
            conn.execute("DROP DATABASE IF EXISTS herd_bench_journal")
                .await
                .unwrap();
            conn.execute("CREATE DATABASE herd_bench_journal")
                .await
                .unwrap();
            let (base, _) = admin.rsplit_once('/').unwrap();
            let url = format!("{base}/herd_bench_journal");
            measure("PostgreSQL (loopback)", &url, dir.path()).await;
            conn.execute("DROP DATABASE herd_bench_journal WITH (FORCE)")
                .await
                .unwrap();
        }
        println!();
        println!("| journal | decisions | seconds | decisions/s | CPU µs per decision |");
        println!("|---|---|---|---|---|");
        let dir = tempfile::tempdir().unwrap();
        decisions("SQLite (WAL, synchronous=FULL)", "", dir.path()).await;
    });
}
