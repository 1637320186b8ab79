//! The journal against a real SQLite file: what is recorded is what a reopened journal
//! restores, in order; pages and export read it back; decisions past the queue are dropped and
//! counted, order records never.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use rust_decimal::Decimal;

use super::statements::ROWS_PER_INSERT;
use super::*;
use crate::domain::{
    ClientOrderId, Holding, InstanceId, OrderRecord, OrderState, OrderStatus, Side, Symbol,
};

fn settings(queue: usize) -> JournalSettings {
    JournalSettings {
        url: crate::domain::Secret::new(""),
        retention: crate::domain::HumanDuration(Duration::from_secs(86_400 * 365)),
        queue,
        commit_timeout: crate::domain::HumanDuration(Duration::from_secs(5)),
    }
}

pub(super) fn record(cid: &str, state: OrderState) -> OrderRecord {
    let t = Utc.with_ymd_and_hms(2026, 3, 2, 15, 0, 0).unwrap();
    OrderRecord {
        instance: InstanceId::parse("m").unwrap(),
        client_order_id: ClientOrderId::new(cid.into()),
        order_id: Some("v-1".into()),
        symbol: Symbol::parse("SPY").unwrap(),
        side: Side::Buy,
        qty: Decimal::from(10),
        state,
        venue_status: Some(OrderStatus::PartiallyFilled),
        submitted_at: Some(t),
        filled_qty: Decimal::from(4),
        filled_avg_price: Some("100.25".parse().unwrap()),
        decided_on: t,
        reason: "momentum 0.03 > 0.02".into(),
        error: None,
        created_at: t,
        updated_at: t,
        lease_epoch: Some(3),
    }
}

/// A bare hold of instance `m` on SPY.
pub(super) fn hold() -> DecisionEntry {
    DecisionEntry {
        at: Utc::now(),
        instance: InstanceId::parse("m").unwrap(),
        symbol: Symbol::parse("SPY").unwrap(),
        action: "hold",
        side: None,
        qty: None,
        signal: Some(0.01),
        decided_on: None,
        reason: Some("within threshold".into()),
        detail: None,
    }
}

#[tokio::test]
async fn what_is_recorded_is_what_a_reopened_journal_restores() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = JournalMetrics::default();
    let (journal, restored) = Journal::open(&settings(10), dir.path(), metrics.clone())
        .await
        .unwrap();
    assert!(restored.is_empty());
    journal.record(Entry::Order {
        seq: 0,
        record: Box::new(record("m-1", OrderState::Submitting)),
        changed: true,
    });
    // The same order, later: the row is its latest state.
    journal.record(Entry::Order {
        seq: 0,
        record: Box::new(record("m-1", OrderState::Open)),
        changed: true,
    });
    journal.record(Entry::Order {
        seq: 1,
        record: Box::new(record("m-2", OrderState::Filled)),
        changed: true,
    });
    let holding = Holding {
        qty: Decimal::from(4),
        avg_price: "100.25".parse().unwrap(),
        realized_pnl: Decimal::from(-7),
    };
    let fill = Fill {
        client_order_id: "m-1".into(),
        instance: InstanceId::parse("m").unwrap(),
        symbol: Symbol::parse("SPY").unwrap(),
        qty: Decimal::from(4),
        price: "100.25".parse().unwrap(),
        filled_total: Decimal::from(4),
        realized: Decimal::from(-7),
        at: Utc.with_ymd_and_hms(2026, 3, 2, 15, 0, 1).unwrap(),
        holding,
    };
    journal.record(Entry::Fill(Box::new(fill.clone())));
    // Read twice from the venue: recorded once.
    journal.record(Entry::Fill(Box::new(fill)));
    let last = journal.record(Entry::State {
        key: keys::TRADING.into(),
        value: Some(r#"{"state":"halted","reason":"operator: test"}"#.into()),
    });
    journal.durable(last).await.unwrap();

    let (reopened, restored) = Journal::open(&settings(10), dir.path(), metrics)
        .await
        .unwrap();
    assert_eq!(restored.next_seq, 2);
    let states: Vec<_> = restored
        .orders
        .iter()
        .map(|o| {
            (
                o.seq,
                o.record.client_order_id.as_str().to_owned(),
                o.record.state,
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            (0, "m-1".to_owned(), OrderState::Open),
            (1, "m-2".to_owned(), OrderState::Filled)
        ]
    );
    assert_eq!(
        restored.orders[0].record.filled_avg_price,
        Some("100.25".parse().unwrap())
    );
    assert_eq!(
        restored.orders[0].record.venue_status,
        Some(OrderStatus::PartiallyFilled)
    );
    assert_eq!(restored.ledger.len(), 1);
    assert_eq!(restored.ledger[0].2, holding);
    assert_eq!(
        restored.realized.len(),
        1,
        "one fill, however often it was read"
    );
    assert_eq!(restored.realized[0].2, Decimal::from(-7));
    assert!(restored.state[keys::TRADING].contains("halted"));

    // /orders pages: newest first, filtered, with a cursor only when there is more.
    let (page, next) = reopened
        .page(&OrderQuery {
            limit: 1,
            ..OrderQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page[0].client_order_id.as_str(), "m-2");
    let (page, next) = reopened
        .page(&OrderQuery {
            limit: 1,
            before: next,
            ..OrderQuery::default()
        })
        .await
        .unwrap();
    assert_eq!((page[0].client_order_id.as_str(), next), ("m-1", None));
    let (open, _) = reopened
        .page(&OrderQuery {
            state: Some("open"),
            symbol: Some("SPY".into()),
            instance: Some("m".into()),
            limit: 10,
            before: None,
        })
        .await
        .unwrap();
    assert_eq!(open.len(), 1);

    // Export: the fill, with its venue time.
    let mut out = Vec::new();
    let from = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
    let to = Utc.with_ymd_and_hms(2026, 3, 3, 0, 0, 0).unwrap();
    let n = export(
        reopened.pool(),
        ExportKind::Fills,
        from,
        to,
        ExportFormat::Csv,
        &mut out,
    )
    .await
    .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(n, 1);
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        [
            "at,client_order_id,instance,symbol,qty,price,filled_total",
            "2026-03-02T15:00:01.000Z,m-1,m,SPY,4,100.25,4"
        ]
    );
}

#[tokio::test]
async fn decisions_past_the_queue_are_dropped_and_counted_order_records_never() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = JournalMetrics::default();
    let (journal, _) = Journal::open(&settings(2), dir.path(), metrics.clone())
        .await
        .unwrap();
    let tick = |n: usize| vec![hold(); n];
    // Recorded from this task, which the writer cannot interleave with: all queue at once.
    // A tick's decisions are kept or dropped together: the second tick is kept whole though
    // it takes the queue past its bound, and the ones after it are dropped whole.
    let queued: Vec<bool> = [1, 3, 1, 2]
        .into_iter()
        .map(|n| journal.record_decisions(tick(n)))
        .collect();
    assert_eq!(queued, [true, true, false, false]);
    assert_eq!(metrics.dropped_count("decision"), 3);
    for n in 0..5 {
        journal.record(Entry::Order {
            seq: n,
            record: Box::new(record(&format!("m-{n}"), OrderState::Filled)),
            changed: true,
        });
    }
    journal.flush(Duration::from_secs(5)).await.unwrap();
    // The two kept ticks: a row of holds each.
    assert_eq!(count_rows(&journal, "hold_ticks").await, 2);
    assert_eq!(exported_decisions(&journal).await.len(), 4);
    assert_eq!(count_rows(&journal, "orders").await, 5);
    // Once written, the queue has room again.
    assert!(journal.record_decisions(tick(1)));
}

/// A journal with room for a burst of entries, in `dir`.
async fn roomy(dir: &tempfile::TempDir) -> Journal {
    let (journal, _) = Journal::open(&settings(10_000), dir.path(), JournalMetrics::default())
        .await
        .unwrap();
    journal
}

/// The `i`th millisecond of the grouped-rows tests: row `i`'s time, and its order.
const FIRST_MS: i64 = 1_772_463_600_000;

fn nth_ms(i: usize) -> chrono::DateTime<Utc> {
    Utc.timestamp_millis_opt(FIRST_MS + i as i64).unwrap()
}

#[tokio::test]
async fn decisions_in_several_multi_row_inserts_keep_each_rows_values() {
    let dir = tempfile::tempdir().unwrap();
    let journal = roomy(&dir).await;
    // Five statements' worth, recorded at once so the writer batches them; every fourth is a
    // bare hold (more than a statement's worth of them), written by statements of its own.
    // Recorded as ticks of one to seven decisions, so ticks straddle the statements.
    let n = ROWS_PER_INSERT * 5;
    let mut all: Vec<DecisionEntry> = (0..n)
        .map(|i| DecisionEntry {
            at: nth_ms(i),
            instance: InstanceId::parse(&format!("m{i}")).unwrap(),
            symbol: Symbol::parse("SPY").unwrap(),
            action: if i % 2 == 0 { "hold" } else { "order" },
            side: (i % 2 == 1).then_some("buy"),
            qty: (i % 2 == 1).then(|| Decimal::from(i)),
            // Not finite (stored as NULL), none, or a value.
            signal: match i % 5 {
                0 => Some(f64::NAN),
                1 => None,
                _ => Some(i as f64 / 1000.0),
            },
            decided_on: (i % 2 == 1).then(|| nth_ms(i + 1)),
            reason: Some(format!("reason \"{i}\" — ok").into()),
            // Every fourth a bare hold, grouped into statements of its own.
            detail: (i % 4 != 0).then(|| serde_json::json!({ "i": i }).to_string()),
        })
        .collect();
    for size in (1..=7).cycle() {
        if all.is_empty() {
            break;
        }
        let tick: Vec<DecisionEntry> = all.drain(..size.min(all.len())).collect();
        assert!(journal.record_decisions(tick));
    }
    journal.flush(Duration::from_secs(5)).await.unwrap();
    let rows = exported_decisions(&journal).await;
    assert_eq!(rows.len(), n);
    let time = |ms: i64| {
        Utc.timestamp_millis_opt(ms)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    for (i, row) in rows.iter().enumerate() {
        let odd = i % 2 == 1;
        assert_eq!(row["at"], time(FIRST_MS + i as i64));
        assert_eq!(row["instance"], format!("m{i}"));
        assert_eq!(row["action"], if odd { "order" } else { "hold" });
        assert_eq!(row["side"].as_str(), odd.then_some("buy"));
        assert_eq!(row["qty"].as_str(), odd.then(|| i.to_string()).as_deref());
        assert_eq!(row["symbol"], "SPY");
        let signal = (i % 5 > 1).then(|| i as f64 / 1000.0);
        assert_eq!(row["signal"].as_f64(), signal);
        assert_eq!(
            row["decided_on"].as_str(),
            odd.then(|| time(FIRST_MS + i as i64 + 1)).as_deref()
        );
        let reason = format!("reason \"{i}\" — ok");
        assert_eq!(row["reason"], reason);
        // A bare hold's detail is rebuilt by the export from its columns.
        let detail = if i % 4 == 0 {
            super::entry::rebuilt_detail("SPY", signal, &reason)
        } else {
            format!("{{\"i\":{i}}}")
        };
        assert_eq!(row["detail"], detail);
    }
}

/// Every decision `journal` holds, as `herd journal export` writes them (JSON lines), oldest
/// first.
async fn exported_decisions(journal: &Journal) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let (from, to) = (Utc.timestamp_millis_opt(0).unwrap(), Utc::now());
    super::export(
        journal.pool(),
        super::ExportKind::Decisions,
        from,
        to + chrono::TimeDelta::days(1),
        super::ExportFormat::Jsonl,
        &mut out,
    )
    .await
    .unwrap();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

async fn count_rows(journal: &Journal, table: &str) -> i64 {
    use sqlx::Row;
    let sql = format!("SELECT COUNT(*) AS n FROM {table}");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_one(journal.pool())
        .await
        .unwrap()
        .try_get::<i64, _>("n")
        .unwrap()
}

#[tokio::test]
async fn stops_grouped_among_other_entries_keep_each_rows_values_and_the_order_of_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let journal = roomy(&dir).await;
    // A drain's burst: two and a half statements' worth of stops, with state writes to the
    // same key in between whose order must survive the grouping.
    let n = ROWS_PER_INSERT * 5 / 2;
    for i in 0..n {
        journal.record(Entry::Stop(ActorStop {
            at: nth_ms(i),
            child: format!("m{i}"),
            incarnation: i as u64 + 1,
            reason: if i % 3 == 0 {
                "panicked: boom"
            } else {
                "drained"
            }
            .to_owned(),
            abnormal: i % 3 == 0,
        }));
        if i % 40 == 0 {
            journal.record(Entry::State {
                key: "test:last".to_owned(),
                value: Some(i.to_string()),
            });
        }
    }
    journal.flush(Duration::from_secs(5)).await.unwrap();
    use sqlx::Row;
    let rows =
        sqlx::query("SELECT at, child, incarnation, reason, abnormal FROM actor_stops ORDER BY at")
            .fetch_all(journal.pool())
            .await
            .unwrap();
    assert_eq!(rows.len(), n);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row.get::<i64, _>("at"), FIRST_MS + i as i64);
        assert_eq!(row.get::<String, _>("child"), format!("m{i}"));
        assert_eq!(row.get::<i64, _>("incarnation"), i as i64 + 1);
        let abnormal = i % 3 == 0;
        assert_eq!(
            row.get::<String, _>("reason"),
            if abnormal {
                "panicked: boom"
            } else {
                "drained"
            }
        );
        assert_eq!(row.get::<i32, _>("abnormal"), i32::from(abnormal));
    }
    let last: String = sqlx::query_scalar("SELECT value FROM herd_state WHERE key = 'test:last'")
        .fetch_one(journal.pool())
        .await
        .unwrap();
    assert_eq!(last, ((n - 1) / 40 * 40).to_string());
    // Counted by kind as their batches commit.
    let metrics = &journal.shared.metrics;
    assert_eq!(metrics.written_count("stop"), n as u64);
    assert_eq!(metrics.written_count("state"), ((n - 1) / 40 + 1) as u64);
}

async fn execute(journal: &Journal, sql: &'static str) {
    sqlx::query(sql).execute(journal.pool()).await.unwrap();
}

#[tokio::test]
async fn a_failing_write_is_retried_until_it_commits_and_its_waiters_hear_why() {
    let dir = tempfile::tempdir().unwrap();
    let mut fast = settings(10);
    fast.commit_timeout = crate::domain::HumanDuration(Duration::from_millis(300));
    let (journal, _) = Journal::open(&fast, dir.path(), JournalMetrics::default())
        .await
        .unwrap();
    // Pull the table from under the writer: every transaction with an order in it fails.
    execute(&journal, "ALTER TABLE orders RENAME TO orders_away").await;
    let ticket = journal.record(Entry::Order {
        seq: 0,
        record: Box::new(record("m-1", OrderState::Submitting)),
        changed: true,
    });
    let refused = journal.durable(ticket).await.unwrap_err();
    assert!(
        refused
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("orders")),
        "{refused}"
    );
    let status = journal.status();
    assert!(status.failing.is_some() && status.queued == 1, "{status:?}");
    // Back in place: the same entry commits (nothing was dropped) and the status clears.
    execute(&journal, "ALTER TABLE orders_away RENAME TO orders").await;
    journal.flush(Duration::from_secs(10)).await.unwrap();
    assert!(journal.status().failing.is_none());
    let (orders, _) = journal
        .page(&OrderQuery {
            limit: 10,
            ..OrderQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(orders.len(), 1);
}

#[tokio::test]
async fn retention_deletes_old_records_but_never_a_working_order_or_a_held_position() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = Journal::open(&settings(10), dir.path(), JournalMetrics::default())
        .await
        .unwrap();
    // Everything from 2026-03-02, far older than the 1-day retention below.
    journal.record(Entry::Order {
        seq: 0,
        record: Box::new(record("m-final", OrderState::Filled)),
        changed: true,
    });
    journal.record(Entry::Order {
        seq: 1,
        record: Box::new(record("m-working", OrderState::Open)),
        changed: true,
    });
    let held = Holding {
        qty: Decimal::from(4),
        avg_price: Decimal::from(100),
        realized_pnl: Decimal::ZERO,
    };
    for (cid, symbol, holding) in [
        ("m-final", "SPY", held),
        ("m-flat", "QQQ", Holding::default()),
    ] {
        journal.record(Entry::Fill(Box::new(Fill {
            client_order_id: cid.into(),
            instance: InstanceId::parse("m").unwrap(),
            symbol: Symbol::parse(symbol).unwrap(),
            qty: Decimal::from(4),
            price: Decimal::from(100),
            filled_total: Decimal::from(4),
            realized: Decimal::ZERO,
            at: Utc.with_ymd_and_hms(2026, 3, 2, 15, 0, 1).unwrap(),
            holding,
        })));
    }
    journal.flush(Duration::from_secs(5)).await.unwrap();
    let deleted = retention::prune(journal.pool(), Duration::from_secs(86_400))
        .await
        .unwrap();
    assert!(deleted >= 4, "{deleted}");
    let (_, restored) = Journal::open(&settings(10), dir.path(), JournalMetrics::default())
        .await
        .unwrap();
    let kept: Vec<_> = restored
        .orders
        .iter()
        .map(|o| o.record.client_order_id.as_str().to_owned())
        .collect();
    assert_eq!(kept, ["m-working"]);
    let ledger: Vec<_> = restored
        .ledger
        .iter()
        .map(|(_, s, h)| (s.as_str().to_owned(), *h))
        .collect();
    assert_eq!(
        ledger,
        [("SPY".to_owned(), held)],
        "the flat, old row goes; the position stays"
    );
    assert!(!restored.is_empty(), "a pruned journal is not a new one");
}

mod hold_ticks;
