//! A tick's bare holds in one `hold_ticks` row: written as one row per instance-tick, exported
//! as the decisions they were, pruned by time; a row that cannot be read fails the export.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use rust_decimal::Decimal;

use super::*;

#[tokio::test]
async fn a_ticks_bare_holds_are_one_row_and_export_as_the_decisions_they_were() {
    let dir = tempfile::tempdir().unwrap();
    let journal = roomy(&dir).await;
    // More ticks than a statement holds, each of one instance at one time: four holds, then
    // an order decision, then a fifth hold (it joins the tick's row, not a new one).
    let ticks = ROWS_PER_INSERT + 20;
    let symbols = ["AAPL", "MSFT", "SPY", "QQQ", "TSLA"];
    for t in 0..ticks {
        let instance = InstanceId::parse(&format!("momentum-{t}")).unwrap();
        let hold = |s: usize| DecisionEntry {
            at: nth_ms(t),
            instance: instance.clone(),
            symbol: Symbol::parse(symbols[s]).unwrap(),
            signal: match s {
                0 => Some(f64::INFINITY),
                1 => None,
                _ => Some((t * 10 + s) as f64 / 1000.0),
            },
            // Reasons that need escaping in JSON.
            reason: Some(format!("no \"signal\"\t{s}").into()),
            ..hold()
        };
        let mut tick: Vec<DecisionEntry> = (0..4).map(hold).collect();
        tick.push(DecisionEntry {
            action: "order",
            side: Some("buy"),
            qty: Some(Decimal::ONE),
            decided_on: Some(nth_ms(t)),
            detail: Some("{}".into()),
            ..hold(4)
        });
        tick.push(hold(4));
        assert!(journal.record_decisions(tick));
    }
    // Two ticks of the same instance at the same time are still two rows.
    assert!(journal.record_decisions(vec![hold()]));
    let again = journal.record_decisions(vec![DecisionEntry {
        at: Utc::now(),
        ..hold()
    }]);
    assert!(again);
    journal.flush(Duration::from_secs(5)).await.unwrap();

    assert_eq!(count_rows(&journal, "hold_ticks").await, ticks as i64 + 2);
    assert_eq!(count_rows(&journal, "decisions").await, ticks as i64);
    // A hold as journals before `hold_ticks` stored it: a row of its own, its detail empty.
    let legacy = format!(
        "INSERT INTO decisions (at, instance, symbol, action, signal, reason, detail) \
         VALUES ({}, 'legacy', 'SPY', 'hold', 0.5, 'no signal', '')",
        FIRST_MS - 1
    );
    sqlx::query(sqlx::AssertSqlSafe(legacy))
        .execute(journal.pool())
        .await
        .unwrap();
    let mut rows = exported_decisions(&journal).await;
    assert_eq!(rows.len(), ticks * 6 + 3);
    let first = rows.remove(0);
    assert_eq!(first["instance"], "legacy");
    assert_eq!(
        first["detail"],
        crate::journal::entry::rebuilt_detail("SPY", Some(0.5), "no signal")
    );
    for (t, tick) in rows.chunks(6).take(ticks).enumerate() {
        // The order decision (from `decisions`) comes first at its time, then the holds in
        // the tick's order.
        assert_eq!(tick[0]["action"], "order");
        assert_eq!(tick[0]["symbol"], "TSLA");
        for (k, row) in tick[1..].iter().enumerate() {
            let s = if k == 4 { 4 } else { k };
            let signal = (s > 1).then(|| (t * 10 + s) as f64 / 1000.0);
            let reason = format!("no \"signal\"\t{s}");
            assert_eq!(row["instance"], format!("momentum-{t}"));
            assert_eq!(row["symbol"], symbols[s]);
            assert_eq!(row["action"], "hold");
            assert_eq!(row["signal"].as_f64(), signal);
            assert_eq!(row["reason"], reason);
            assert!(row["side"].is_null() && row["qty"].is_null());
            assert!(row["decided_on"].is_null());
            assert_eq!(
                row["detail"],
                crate::journal::entry::rebuilt_detail(symbols[s], signal, &reason)
            );
        }
    }
    // Retention deletes them by time like every other decision.
    let pruned = crate::journal::retention::prune(journal.pool(), Duration::ZERO)
        .await
        .unwrap();
    assert!(pruned >= ticks as u64 * 2 + 3);
    assert_eq!(count_rows(&journal, "hold_ticks").await, 0);
}

#[tokio::test]
async fn a_hold_ticks_row_that_is_not_a_list_of_holds_fails_the_export_naming_the_row() {
    let dir = tempfile::tempdir().unwrap();
    let journal = roomy(&dir).await;
    execute(
        &journal,
        "INSERT INTO hold_ticks (at, instance, holds) VALUES (1772463600000, 'm7', '{\"no\": 1}')",
    )
    .await;
    let mut out = Vec::new();
    let failed = crate::journal::export(
        journal.pool(),
        crate::journal::ExportKind::Decisions,
        Utc.timestamp_millis_opt(0).unwrap(),
        Utc::now(),
        crate::journal::ExportFormat::Csv,
        &mut out,
    )
    .await
    .unwrap_err();
    let message = failed.to_string();
    assert!(
        matches!(failed, crate::journal::ExportError::Holds { .. }),
        "{message}"
    );
    assert!(
        message.contains("hold_ticks row of m7 at 1772463600000 ms"),
        "{message}"
    );
    assert!(out.is_empty(), "nothing half-written");
}
