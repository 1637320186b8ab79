//! What a monitoring core's report becomes: the instance's status, alert events and counts,
//! gauges, and a request to the risk gate.
//!
//! Invariant: an alert is a log event and a count once, when the core raises it; the core
//! decides what is new (see `risk_manager.rs`), so a standing breach is not a log storm.

use crate::broker::TightenTrading;

use super::StrategyActor;
use crate::strategy::CoreReport;

impl StrategyActor {
    pub(super) fn on_report(&mut self, report: CoreReport) {
        let id = self.id.as_ref();
        for (alert, subject) in &report.raised {
            self.deps.metrics.risk_alert(id, *alert);
            tracing::warn!(
                event = "risk_alert", instance = %self.id, alert = alert.as_str(),
                subject = %subject, "risk alert raised"
            );
        }
        if let Some((var_usd, drawdown)) = report.gauges {
            self.deps.metrics.risk_figures(id, var_usd, drawdown);
        }
        if let Some((state, reason)) = report.trading
            && let Some(broker) = self.deps.broker.get()
        {
            // Fire and forget: the gate only tightens, and the next tick asks again if the
            // breach stands.
            broker.do_send(TightenTrading {
                state,
                reason,
                by: self.deps.spec.id.clone(),
            });
        }
        self.status.report = report.details;
    }
}
