//! What the journal keeps of an instance's decision.

use std::borrow::Cow;

use chrono::{DateTime, Utc};

use crate::domain::{Action, Decision, InstanceId};
use crate::journal::{DecisionEntry, decision_detail};

/// What the journal keeps of one decision made at `at`: the instance it is about, its action,
/// and the whole decision (signal, reference price, reason) as JSON where the columns do not
/// already hold it.
pub(super) fn decision_entry(own: &InstanceId, d: &Decision, at: DateTime<Utc>) -> DecisionEntry {
    let (action, side, qty, decided_on, reason) = match &d.action {
        Action::Order(i) => (
            "order",
            Some(i.side.as_str()),
            Some(i.qty),
            Some(i.decided_on),
            Some(Cow::Owned(i.reason.clone())),
        ),
        Action::Hold { reason } => ("hold", None, None, None, Some(Cow::Borrowed(*reason))),
        Action::NoData { have, need } => (
            "no_data",
            None,
            None,
            None,
            Some(Cow::Owned(format!("{have} of {need} bars"))),
        ),
    };
    DecisionEntry {
        at,
        instance: d.instance.clone().unwrap_or_else(|| own.clone()),
        symbol: d.symbol.clone(),
        action,
        side,
        qty,
        signal: d.signal,
        decided_on,
        reason,
        detail: decision_detail(d),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::TimeZone;
    use rust_decimal::Decimal;

    use super::*;
    use crate::domain::{HumanDuration, OrderIntent, Secret, Side, Symbol};
    use crate::journal::{ExportFormat, ExportKind, Journal, JournalSettings, export};
    use crate::metrics::JournalMetrics;

    fn hold(symbol: &str, signal: Option<f64>, reason: &'static str) -> Decision {
        Decision {
            instance: None,
            symbol: Symbol::parse(symbol).unwrap(),
            signal,
            action: Action::Hold { reason },
        }
    }

    /// A hold is stored without its JSON, yet the export gives every decision's JSON exactly
    /// as serializing it does: the one promise of the `detail` column.
    #[tokio::test]
    async fn a_holds_json_is_not_stored_and_the_export_gives_every_decisions_json_as_made() {
        let dir = tempfile::tempdir().unwrap();
        let settings = JournalSettings {
            url: Secret::new(""),
            retention: HumanDuration(Duration::from_secs(86_400 * 365)),
            queue: 100,
            commit_timeout: HumanDuration(Duration::from_secs(5)),
        };
        let (journal, _) = Journal::open(&settings, dir.path(), JournalMetrics::default())
            .await
            .unwrap();
        let own = InstanceId::parse("momentum-1").unwrap();
        let t = Utc.with_ymd_and_hms(2026, 3, 2, 15, 0, 0).unwrap();
        let decisions = [
            hold("SPY", Some(0.001_234_567_890_123), "no signal"),
            hold("QQQ", None, "buy signal, but already holding"),
            // Not finite: serialized `null`, stored NULL.
            hold("IWM", Some(f64::NAN), "invalid price in bars"),
            hold("DIA", Some(-1e-300), "say \"no\" — ✓ \\ /"),
            // About another instance: the `instance` column alone cannot tell, so kept whole.
            Decision {
                instance: Some(InstanceId::parse("guarded").unwrap()),
                ..hold("SPY", Some(2.5), "no signal")
            },
            Decision {
                instance: None,
                symbol: Symbol::parse("SPY").unwrap(),
                signal: Some(0.03),
                action: Action::Order(OrderIntent {
                    symbol: Symbol::parse("SPY").unwrap(),
                    side: Side::Buy,
                    qty: Decimal::from(3),
                    decided_on: t,
                    reference_price: Some(412.5),
                    reason: "momentum 0.03 > 0.02".into(),
                }),
            },
            Decision {
                instance: None,
                symbol: Symbol::parse("QQQ").unwrap(),
                signal: None,
                action: Action::NoData { have: 3, need: 20 },
            },
        ];
        for (i, d) in decisions.iter().enumerate() {
            let at = t + chrono::Duration::milliseconds(i as i64);
            assert!(journal.record_decisions(vec![decision_entry(&own, d, at)]));
        }
        journal.flush(Duration::from_secs(5)).await.unwrap();

        use sqlx::Row;
        let stored: Vec<String> = sqlx::query("SELECT detail FROM decisions ORDER BY at")
            .fetch_all(journal.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<String, _>("detail"))
            .collect();
        // The four holds of its own went to `hold_ticks` (symbol, signal, reason: no JSON of
        // the decision); the rest keep theirs.
        assert_eq!(stored.len(), 3);
        assert!(stored.iter().all(|d| !d.is_empty()));
        let holds: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM hold_ticks")
            .fetch_one(journal.pool())
            .await
            .unwrap();
        assert_eq!(holds, 4);

        let mut out = Vec::new();
        let n = export(
            journal.pool(),
            ExportKind::Decisions,
            t,
            t + chrono::Duration::seconds(1),
            ExportFormat::Jsonl,
            &mut out,
        )
        .await
        .unwrap();
        assert_eq!(n, decisions.len() as u64);
        let lines: Vec<serde_json::Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        for (line, d) in lines.iter().zip(&decisions) {
            assert_eq!(
                line["detail"].as_str().unwrap(),
                serde_json::to_string(d).unwrap(),
                "{line}"
            );
        }
    }
}
