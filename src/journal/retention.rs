//! Retention: records older than `journal.retention` are deleted, at open and once a day.
//!
//! Invariant: nothing that restores herd's state is deleted — orders still working, and the
//! ledger rows of positions still held, are kept whatever their age (a ledger row is the
//! position itself, so the fills that built it are not needed to rebuild it).

use std::time::Duration;

use sqlx::AnyPool;

use crate::domain::OrderState;

const EVERY: Duration = Duration::from_secs(24 * 3600);

pub(super) async fn prune(pool: &AnyPool, keep: Duration) -> Result<u64, sqlx::Error> {
    let keep = chrono::TimeDelta::from_std(keep).unwrap_or(chrono::TimeDelta::MAX);
    let cutoff = chrono::Utc::now()
        .checked_sub_signed(keep)
        .map_or(i64::MIN, |t| t.timestamp_millis());
    let finals = OrderState::ALL
        .iter()
        .filter(|s| s.is_final())
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    let statements = [
        "DELETE FROM decisions WHERE at < $1".to_owned(),
        "DELETE FROM hold_ticks WHERE at < $1".to_owned(),
        "DELETE FROM fills WHERE at < $1".to_owned(),
        "DELETE FROM admin_actions WHERE at < $1".to_owned(),
        "DELETE FROM actor_stops WHERE at < $1".to_owned(),
        format!(
            "DELETE FROM order_events WHERE at < $1 AND client_order_id IN \
             (SELECT client_order_id FROM orders WHERE state IN ({finals}))"
        ),
        format!("DELETE FROM orders WHERE updated_at < $1 AND state IN ({finals})"),
        "DELETE FROM ledger WHERE updated_at < $1 AND qty IN ('0', '-0')".to_owned(),
    ];
    let mut deleted = 0;
    for sql in statements {
        deleted += sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(cutoff)
            .execute(pool)
            .await?
            .rows_affected();
    }
    if deleted > 0 {
        tracing::info!(
            event = "journal_pruned",
            deleted,
            "journal records past retention deleted"
        );
    }
    Ok(deleted)
}

/// Prunes once a day for the life of the process; a failure is logged and tried next day.
pub(super) async fn every_day(pool: AnyPool, keep: Duration) {
    loop {
        tokio::time::sleep(EVERY).await;
        if let Err(e) = prune(&pool, keep).await {
            tracing::warn!(event = "journal_prune_failed", error = %e, "journal retention failed; trying again tomorrow");
        }
    }
}
