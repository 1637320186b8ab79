//! What the journal keeps of an instance's decision.

use chrono::Utc;

use crate::domain::{Action, Decision, InstanceId};
use crate::journal::DecisionEntry;

/// What the journal keeps of one decision: the instance it is about, its action, and the whole
/// decision (signal, reference price, reason) as JSON.
pub(super) fn decision_entry(own: &InstanceId, d: &Decision) -> DecisionEntry {
    let (action, side, qty, decided_on, reason) = match &d.action {
        Action::Order(i) => (
            "order",
            Some(i.side.as_str()),
            Some(i.qty),
            Some(i.decided_on),
            Some(i.reason.clone()),
        ),
        Action::Hold { reason } => ("hold", None, None, None, Some((*reason).to_owned())),
        Action::NoData { have, need } => (
            "no_data",
            None,
            None,
            None,
            Some(format!("{have} of {need} bars")),
        ),
    };
    DecisionEntry {
        at: Utc::now(),
        instance: d.instance.clone().unwrap_or_else(|| own.clone()),
        symbol: d.symbol.clone(),
        action,
        side,
        qty,
        signal: d.signal,
        decided_on,
        reason,
        detail: serde_json::to_string(d).unwrap_or_default(),
    }
}
