//! The MetricsActor: owns the registry built from the shared handles and renders `/metrics`.
//!
//! Invariant: rendering reads the handles; it never resets or changes a value, so a restart of
//! this actor loses no counts.

use actix::prelude::*;
use prometheus_client::registry::Registry;

use super::Metrics;
use crate::domain::{Drain, DrainAck, ExitNotifier, ExitReason};

/// Owns the registry; renders it on request.
pub struct MetricsActor {
    /// Built fresh by every incarnation from the shared handles, so a restart loses no counts.
    registry: Registry,
    /// Tells the Supervisor why this incarnation ended.
    exit: ExitNotifier,
    /// The size of the last rendering: the next one starts with room for it (with 1,000
    /// instances the text is ~700 KB; grown by doubling from a few KB, it is copied over and
    /// over on the way).
    last_len: usize,
}

impl MetricsActor {
    pub fn new(metrics: &Metrics, exit: ExitNotifier) -> Self {
        Self {
            registry: metrics.registry(),
            exit,
            last_len: 4096,
        }
    }
}

impl Actor for MetricsActor {
    type Context = Context<Self>;
}

/// Renders the registry as OpenMetrics text (ends with `# EOF`).
#[derive(Message)]
#[rtype(result = "Result<String, std::fmt::Error>")]
pub struct RenderMetrics;

impl Handler<RenderMetrics> for MetricsActor {
    type Result = Result<String, std::fmt::Error>;

    fn handle(&mut self, _: RenderMetrics, _: &mut Self::Context) -> Self::Result {
        let mut out = String::with_capacity(self.last_len + self.last_len / 8);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        self.last_len = out.len();
        Ok(out)
    }
}

impl Handler<Drain> for MetricsActor {
    type Result = DrainAck;

    fn handle(&mut self, _: Drain, ctx: &mut Self::Context) -> DrainAck {
        self.exit.set(ExitReason::Drained);
        ctx.stop();
        DrainAck::default()
    }
}
