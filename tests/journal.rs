//! The journal end to end: herd killed with `kill -9` at every point of the order path against a
//! simulator that outlives it (with slow and lost order responses), restarted, and checked
//! against the venue — on SQLite and on PostgreSQL. Also: a journal herd cannot use stops it
//! with exit 2, a halted or paused herd restarts so, an empty journal is rebuilt from the
//! venue, `herd journal export` writes what was recorded, and decisions with and without a
//! signal commit at the first try on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::path::Path;

use common::pg::PgDatabase;
use common::{ADMIN_TOKEN, Herd};
use serde_json::{Value, json};

const SYMBOLS: [&str; 3] = ["SPY", "QQQ", "IWM"];
const POSITION_SIZE: i64 = 10;

/// One momentum instance that buys `POSITION_SIZE` shares on almost any rise and sells them on
/// almost any fall, on minute bars; at the simulator's 600× it ticks every half second and a
/// bar closes every 0.1 s: an order every few ticks.
fn crash_config() -> String {
    format!(
        r#"
[[strategies]]
id = "crash"
kind = "momentum"
symbols = ["SPY", "QQQ", "IWM"]
every = "5m"
[strategies.params]
threshold = 0.0001
position_size = {POSITION_SIZE}
timeframe = "1Min"
lookback = 3
"#
    )
}

fn venue_env<'a>(
    sim: &'a str,
    key: &'a str,
    journal_url: Option<&'a str>,
) -> Vec<(&'a str, &'a str)> {
    let mut env = common::venue_env(sim, key);
    env.push(("HERD_ADMIN_TOKEN", ADMIN_TOKEN));
    if let Some(url) = journal_url {
        env.push(("HERD__JOURNAL__URL", url));
    }
    env
}

/// A point of the order path, and the log line that shows herd is there.
type KillPoint = (&'static str, fn(&Value) -> bool);

/// Where each round's `kill -9` lands.
fn kill_points() -> Vec<KillPoint> {
    vec![
        ("after a decision, before or while its order is sent", |v| {
            v["message"] == "signal"
        }),
        (
            "with a submit whose response was lost, before the lookup",
            |v| {
                v["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("order submit answered an error"))
            },
        ),
        ("right after the venue's answer", |v| v["event"] == "order"),
        ("while a fill is being applied", |v| {
            v["event"] == "order_fill"
        }),
        (
            "as the instance starts, just after start-up reconciliation",
            |v| v["message"] == "strategy instance started",
        ),
        ("after a second decision", |v| v["message"] == "signal"),
    ]
}

async fn post_admin(herd: &Herd, path: &str, reason: &str) -> reqwest::StatusCode {
    reqwest::Client::new()
        .post(format!("{}{path}", herd.http))
        .header("x-admin-token", ADMIN_TOKEN)
        .json(&json!({ "reason": reason }))
        .send()
        .await
        .unwrap()
        .status()
}

async fn venue_positions(sim: &str, key: &str) -> HashMap<String, i64> {
    let rows: Vec<Value> = reqwest::Client::new()
        .get(format!("{sim}/v2/positions"))
        .header("APCA-API-KEY-ID", key)
        .header("APCA-API-SECRET-KEY", "secret")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    rows.iter()
        .map(|p| {
            let qty: f64 = p["qty"].as_str().unwrap().parse().unwrap();
            (p["symbol"].as_str().unwrap().to_owned(), qty as i64)
        })
        .collect()
}

/// Runs the crash rounds against a simulator of its own and checks the venue against the
/// journal at the end.
async fn crash_rounds(key: &str, journal_url: Option<&str>) {
    let venue = Herd::start_sim(&["--speed", "600", "--start", common::BUYING_MINUTE]);
    let sim = venue.sim.clone().unwrap();
    // Slow order answers (a kill lands while one is in flight), half of them lost after they
    // took effect (the order is at the venue, herd does not know), and slow account reads (a
    // kill lands between the decision and the POST).
    common::set_faults(
        &sim,
        json!({
            "orders": {"latency": "150ms", "lost_response_rate": 0.5, "methods": ["POST"]},
            "trading": {"latency": "50ms"}
        }),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let env = venue_env(&sim, key, journal_url);
    for (round, (point, seen)) in kill_points().into_iter().enumerate() {
        // Started means recovered: herd listens only after start-up reconciliation.
        let mut herd = Herd::start_in(dir.path(), &crash_config(), &env);
        herd.wait_log(seen);
        herd.signal("KILL");
        herd.wait_exit();
        eprintln!("round {round}: killed {point}");
    }
    common::clear_faults(&sim).await;

    let mut herd = Herd::start_in(dir.path(), &crash_config(), &env);
    let recovered = herd.seen(|v| v["event"] == "recovered").unwrap();
    assert_eq!(recovered["errors"], "[]", "{}", herd.dump());
    let opened = herd.seen(|v| v["event"] == "journal_opened").unwrap();
    let location = opened["location"].as_str().unwrap();
    match journal_url {
        Some(_) => assert!(location.starts_with("postgres://"), "{location}"),
        None => assert!(location.ends_with("data/journal.sqlite"), "{location}"),
    }
    // Stop new orders, then wait for the book to settle, then for the journal to say so. In
    // that order: the journal's writer trails the book, so a journal whose rows are all final
    // may not hold yet an order the book has just begun (a tick that passed the halt's
    // moment), and the book may still be working it. Every order sent was on disk first.
    assert!(
        post_admin(&herd, "/admin/trading/halt", "crash test: settle")
            .await
            .is_success()
    );
    let report = common::eventually("no order of herd's working", &herd, || async {
        let report = common::get_json(&format!("{}/positions", herd.http)).await?;
        let settled = report["unsettled"].as_array().is_some_and(Vec::is_empty);
        settled.then_some(report)
    })
    .await;
    assert_eq!(report["reconciled"], true, "{report}");
    let orders = common::eventually("every journaled order final", &herd, || async {
        let orders = common::herd_orders(&herd).await;
        let unsettled = orders
            .iter()
            .filter(|o| {
                !["filled", "canceled", "expired", "rejected", "refused"]
                    .contains(&o["state"].as_str().unwrap())
            })
            .count();
        (unsettled == 0 && !orders.is_empty()).then_some(orders)
    })
    .await;

    let at_venue = common::venue_orders_of(&sim, key).await;
    let mut venue_by_cid: HashMap<&str, usize> = HashMap::new();
    for o in &at_venue {
        *venue_by_cid
            .entry(o["client_order_id"].as_str().unwrap())
            .or_default() += 1;
    }
    let journaled: HashMap<&str, &Value> = orders
        .iter()
        .map(|o| (o["client_order_id"].as_str().unwrap(), o))
        .collect();
    for (cid, n) in &venue_by_cid {
        assert_eq!(*n, 1, "{cid} is at the venue {n} times");
        assert!(
            journaled.contains_key(cid),
            "venue order {cid} is not in the journal\n{}",
            herd.dump()
        );
    }
    for (cid, o) in &journaled {
        let at = venue_by_cid.get(cid).copied().unwrap_or(0);
        match o["state"].as_str().unwrap() {
            "rejected" | "refused" => {
                assert_eq!(at, 0, "{cid} was never placed but is at the venue: {o}")
            }
            _ => assert_eq!(at, 1, "journaled order {cid} ({o}) is not at the venue"),
        }
    }
    let placed = journaled
        .values()
        .filter(|o| o["state"] == "filled")
        .count();
    assert!(
        placed >= 3,
        "the rounds placed too few orders to prove anything: {orders:?}"
    );

    let account = venue_positions(&sim, key).await;
    for symbol in SYMBOLS {
        let ledger: i64 = report["instances"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["symbol"] == symbol)
            .map(|h| h["qty"].as_str().unwrap().parse::<f64>().unwrap() as i64)
            .sum();
        let held = account.get(symbol).copied().unwrap_or(0);
        assert_eq!(
            ledger, held,
            "{symbol}: ledgers {ledger}, account {held}\n{report}"
        );
        assert!(
            held.abs() <= POSITION_SIZE,
            "{symbol}: {held} held; a restart forgot its holdings and traded again\n{report}"
        );
    }
    herd.signal("TERM");
    assert_eq!(herd.wait_exit().code(), Some(0), "{}", herd.dump());
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_anywhere_on_the_order_path_loses_nothing_and_places_nothing_twice() {
    crash_rounds("journal-crash-sqlite", None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_crash_rounds_on_postgresql() {
    let db = PgDatabase::create("crash").await;
    crash_rounds("journal-crash-postgres", Some(&db.url)).await;
}

/// A decision's signal may be missing (a core that has none, or one not finite) and the next
/// one's present: the writer binds both to the same statement, which PostgreSQL prepared for
/// the first. The driver once bound a missing `f64` as a 4-byte float, so the next present
/// signal (8 bytes) failed its commit ("incorrect binary data format in bind parameter 4")
/// until the writer's retry; seen in `herd run` with a PostgreSQL journal.
#[tokio::test(flavor = "multi_thread")]
async fn missing_and_present_signals_commit_at_the_first_try_on_postgresql() {
    use herd::domain::{HumanDuration, InstanceId, Secret, Symbol};
    use herd::journal::{DecisionEntry, Journal, JournalSettings};
    use sqlx::Row;
    use std::time::Duration;

    let db = PgDatabase::create("signals").await;
    let dir = tempfile::tempdir().unwrap();
    let settings = JournalSettings {
        url: Secret::new(&db.url),
        retention: HumanDuration(Duration::from_secs(86_400)),
        queue: 1_000,
        commit_timeout: HumanDuration(Duration::from_secs(5)),
    };
    let metrics = herd::metrics::JournalMetrics::default();
    let (journal, _) = Journal::open(&settings, dir.path(), metrics.clone())
        .await
        .unwrap();
    // Each tick a transaction of its own, on one of the pool's four connections in turn: a
    // missing signal every third tick, so that each connection prepares the statement for a
    // missing one and then binds present ones (every other tick would give each connection
    // only one kind).
    let signals: Vec<Option<f64>> = (0..24)
        .map(|i| (i % 3 != 0).then_some(f64::from(i) / 8.0))
        .collect();
    for (i, signal) in signals.iter().enumerate() {
        let hold = DecisionEntry {
            at: chrono::Utc::now(),
            instance: InstanceId::parse(&format!("m{i:02}")).unwrap(),
            symbol: Symbol::parse("SPY").unwrap(),
            // Not a bare hold, whose signal would go in its tick's JSON: a row of its own.
            action: "no_data",
            side: None,
            qty: None,
            signal: *signal,
            decided_on: None,
            reason: Some("3 of 20 bars".into()),
            detail: None,
        };
        assert!(journal.record_decisions(vec![hold]));
        journal.flush(Duration::from_secs(5)).await.unwrap();
    }
    assert_eq!(metrics.write_errors(), 0, "a commit failed and was retried");
    let rows = sqlx::query("SELECT signal FROM decisions ORDER BY instance")
        .fetch_all(journal.pool())
        .await
        .unwrap();
    let stored: Vec<Option<f64>> = rows.iter().map(|r| r.get("signal")).collect();
    assert_eq!(stored, signals);

    // A tick's bare holds, one row on PostgreSQL too, export as the decisions they were.
    let t = chrono::Utc::now();
    let holds: Vec<DecisionEntry> = signals[..3]
        .iter()
        .enumerate()
        .map(|(i, signal)| DecisionEntry {
            at: t,
            instance: InstanceId::parse("m99").unwrap(),
            symbol: Symbol::parse(["SPY", "QQQ", "IWM"][i]).unwrap(),
            action: "hold",
            side: None,
            qty: None,
            signal: *signal,
            decided_on: None,
            reason: Some("within threshold".into()),
            detail: None,
        })
        .collect();
    assert!(journal.record_decisions(holds));
    journal.flush(Duration::from_secs(5)).await.unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM hold_ticks")
        .fetch_one(journal.pool())
        .await
        .unwrap();
    assert_eq!(rows, 1);
    let mut out = Vec::new();
    let exported = herd::journal::export(
        journal.pool(),
        herd::journal::ExportKind::Decisions,
        t - chrono::TimeDelta::seconds(1),
        t + chrono::TimeDelta::seconds(1),
        herd::journal::ExportFormat::Jsonl,
        &mut out,
    )
    .await
    .unwrap();
    let holds: Vec<serde_json::Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["instance"] == "m99")
        .collect();
    assert!(exported >= 3);
    let symbols: Vec<&str> = holds
        .iter()
        .map(|v| v["symbol"].as_str().unwrap())
        .collect();
    assert_eq!(symbols, ["SPY", "QQQ", "IWM"]);
    let exported_signals: Vec<Option<f64>> = holds.iter().map(|v| v["signal"].as_f64()).collect();
    assert_eq!(exported_signals, signals[..3]);
}

/// `herd run` in `dir` against the embedded simulator; returns its exit code and stderr.
fn run_expecting_failure(dir: &Path, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut herd = Herd::launch_in_dir(dir, &["run"], common::ONE_QUIET_INSTANCE, env);
    let status = herd.wait_exit();
    (status.code(), herd.dump())
}

#[test]
fn a_journal_that_is_not_a_database_stops_herd_with_exit_2_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let file = dir.path().join("data/journal.sqlite");
    std::fs::write(
        &file,
        b"these are not the orders you are looking for, not a database at all",
    )
    .unwrap();
    let (code, log) = run_expecting_failure(dir.path(), &[]);
    assert_eq!(code, Some(2), "{log}");
    assert!(
        log.contains("data/journal.sqlite") && log.contains("not a database"),
        "{log}"
    );
    assert_eq!(
        std::fs::read(&file).unwrap(),
        b"these are not the orders you are looking for, not a database at all",
        "the file is left as it was"
    );
}

#[test]
fn a_journal_from_a_newer_herd_stops_herd_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    // A first run creates the journal; then a newer schema version is recorded in it.
    let mut herd = Herd::start_in(dir.path(), common::ONE_QUIET_INSTANCE, &[]);
    herd.signal("TERM");
    assert_eq!(herd.wait_exit().code(), Some(0), "{}", herd.dump());
    let file = dir.path().join("data/journal.sqlite");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use sqlx::{Connection, Executor};
        let url = format!("sqlite://{}", file.display());
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        conn.execute(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (99, 'from the future', 1, X'00', 0)",
        )
        .await
        .unwrap();
    });
    let (code, log) = run_expecting_failure(dir.path(), &[]);
    assert_eq!(code, Some(2), "{log}");
    assert!(
        log.contains("schema version 99") && log.contains("journal.sqlite"),
        "{log}"
    );
}

#[test]
fn an_unwritable_journal_stops_herd_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    // The data directory is a file: the journal cannot be created under it.
    std::fs::write(
        dir.path().join("data"),
        b"a file where the data directory should be",
    )
    .unwrap();
    let (code, log) = run_expecting_failure(dir.path(), &[]);
    assert_eq!(code, Some(2), "{log}");
    assert!(log.contains("data/journal.sqlite"), "{log}");
}

async fn strategy(herd: &Herd, id: &str) -> Value {
    let all = common::get_json(&format!("{}/strategies", herd.http))
        .await
        .unwrap();
    all.as_array()
        .or_else(|| all["strategies"].as_array())
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .cloned()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_halted_herd_restarts_halted_a_paused_instance_paused_and_both_are_journaled() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("HERD_ADMIN_TOKEN", ADMIN_TOKEN)];
    let mut herd = Herd::start_in(dir.path(), common::ONE_QUIET_INSTANCE, &env);
    herd.wait_log(|v| v["message"] == "strategy instance started");
    // Its first tick decided (and the decision was journaled) before anything else happens.
    common::eventually("the first tick", &herd, || async {
        (strategy(&herd, "mom").await["ticks"].as_u64()? >= 1).then_some(())
    })
    .await;
    assert!(
        post_admin(&herd, "/admin/trading/halt", "before the restart")
            .await
            .is_success()
    );
    assert!(
        post_admin(&herd, "/admin/strategies/mom/pause", "no reason needed")
            .await
            .is_success()
    );
    herd.signal("TERM");
    assert_eq!(herd.wait_exit().code(), Some(0), "{}", herd.dump());

    let mut herd = Herd::start_in(dir.path(), common::ONE_QUIET_INSTANCE, &env);
    let restored = herd
        .seen(|v| v["event"] == "trading_state_restored")
        .expect("restored before listening");
    assert_eq!(restored["state"], "halted", "{restored}");
    let h = common::health(&herd).await;
    assert_eq!(h["status"], "halted", "{h}");
    assert!(
        h["halted"].as_str().unwrap().contains("before the restart"),
        "{h}"
    );
    assert_eq!(strategy(&herd, "mom").await["paused"], true);
    // Resumed, and the next start is active and running again.
    assert!(
        post_admin(&herd, "/admin/trading/resume", "checked")
            .await
            .is_success()
    );
    assert!(
        post_admin(&herd, "/admin/strategies/mom/resume", "checked")
            .await
            .is_success()
    );
    herd.signal("TERM");
    assert_eq!(herd.wait_exit().code(), Some(0), "{}", herd.dump());
    let herd = Herd::start_in(dir.path(), common::ONE_QUIET_INSTANCE, &env);
    assert_eq!(common::health(&herd).await["halted"], Value::Null);
    assert_eq!(strategy(&herd, "mom").await["paused"], false);
    drop(herd);

    // Every admin call and every actor's stop is in the journal.
    let file = dir.path().join("data/journal.sqlite");
    let (admin, stops) = {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", file.display()))
            .await
            .unwrap();
        let count = |sql: &'static str| sqlx::query_scalar::<_, i64>(sql);
        (
            count("SELECT COUNT(*) FROM admin_actions WHERE result = 'done'")
                .fetch_one(&mut conn)
                .await
                .unwrap(),
            count("SELECT COUNT(*) FROM actor_stops WHERE reason = 'drained'")
                .fetch_one(&mut conn)
                .await
                .unwrap(),
        )
    };
    assert_eq!(admin, 4, "halt, pause, resume, resume");
    assert!(
        stops >= 8,
        "four actors stopped by each of two drains: {stops}"
    );

    // What the instance decided is exported, as JSON lines and as CSV.
    let (code, out, err) = common::journal_export(
        dir.path(),
        &[
            "--kind",
            "decisions",
            "--from",
            "2000-01-01",
            "--format",
            "jsonl",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let first: Value = serde_json::from_str(out.lines().next().expect(&err)).unwrap();
    assert_eq!(
        (first["instance"].as_str(), first["symbol"].as_str()),
        (Some("mom"), Some("SPY")),
        "{first}"
    );
    let (code, out, err) =
        common::journal_export(dir.path(), &["--kind", "orders", "--from", "2000-01-01"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.starts_with("created_at,client_order_id,instance,symbol"),
        "{out}"
    );
    let (code, _, err) =
        common::journal_export(dir.path(), &["--kind", "fills", "--from", "yesterday"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--from \"yesterday\""), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_journal_is_rebuilt_from_the_venues_order_history() {
    let venue = Herd::start_sim(&["--speed", "600", "--start", common::BUYING_MINUTE]);
    let sim = venue.sim.clone().unwrap();
    let key = "journal-rebuild";
    let env = venue_env(&sim, key, None);
    let first = tempfile::tempdir().unwrap();
    let mut herd = Herd::start_in(first.path(), &crash_config(), &env);
    herd.wait_log(|v| v["event"] == "order_fill");
    assert!(
        post_admin(&herd, "/admin/trading/halt", "settle")
            .await
            .is_success()
    );
    common::eventually("orders final", &herd, || async {
        let orders = common::herd_orders(&herd).await;
        orders
            .iter()
            .all(|o| {
                ["filled", "canceled", "expired", "rejected", "refused"]
                    .contains(&o["state"].as_str().unwrap())
            })
            .then_some(())
    })
    .await;
    herd.signal("TERM");
    assert_eq!(herd.wait_exit().code(), Some(0), "{}", herd.dump());
    let account = venue_positions(&sim, key).await;
    assert!(!account.is_empty(), "the first run left a position");

    // A new data directory: the journal is empty, the venue holds herd's orders.
    let second = tempfile::tempdir().unwrap();
    let mut herd = Herd::start_in(second.path(), &crash_config(), &env);
    let rebuilt = herd
        .seen(|v| v["event"] == "ledgers_rebuilt_from_venue")
        .expect("rebuilt");
    assert!(rebuilt["orders"].as_u64().unwrap() >= 1, "{rebuilt}");
    assert!(
        post_admin(&herd, "/admin/trading/halt", "compare")
            .await
            .is_success()
    );
    // The instance trades from the end of recovery until the halt: the orders it placed then
    // settle first, so the ledgers are compared with the account as it is once they have.
    let report = common::eventually("the ledgers explain the account", &herd, || async {
        let report = common::get_json(&format!("{}/positions", herd.http))
            .await
            .unwrap();
        if report["reconciled"] != true {
            return None;
        }
        let account = venue_positions(&sim, key).await;
        let explained = account.iter().all(|(symbol, held)| {
            let ledger: i64 = report["instances"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|h| h["symbol"] == symbol.as_str() && h["instance"] == "crash")
                .map(|h| h["qty"].as_str().unwrap().parse::<f64>().unwrap() as i64)
                .sum();
            ledger == *held
        });
        explained.then_some(report)
    })
    .await;
    assert_eq!(
        report["external"],
        json!([]),
        "herd's own positions are not 'external': {report}"
    );
    herd.signal("TERM");
    assert_eq!(herd.wait_exit().code(), Some(0), "{}", herd.dump());
}
