//! The trace exporter's own health: spans exported, and spans dropped with the reason.
//!
//! Invariant: a span that ends is counted exactly once, as exported or as dropped (queue full,
//! export failed), once its batch is settled; spans still queued are in neither count.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// Why a finished span never reached the collector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpanDrop {
    /// The export queue was full (the collector is slow or down).
    QueueFull,
    /// The collector refused the batch or could not be reached.
    ExportFailed,
}

impl SpanDrop {
    fn as_str(self) -> &'static str {
        match self {
            Self::QueueFull => "queue_full",
            Self::ExportFailed => "export_failed",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DropLabels {
    reason: &'static str,
}

/// Cheap to clone: the counters are shared.
#[derive(Clone, Debug, Default)]
pub struct TraceMetrics {
    exported: Counter,
    dropped: Family<DropLabels, Counter>,
}

impl TraceMetrics {
    pub(super) fn register(&self, r: &mut Registry) {
        r.register(
            "trace_spans_exported",
            "Spans delivered to the OTLP collector",
            self.exported.clone(),
        );
        r.register(
            "trace_spans_dropped",
            "Spans that never reached the OTLP collector, by reason",
            self.dropped.clone(),
        );
        // Both reasons exist from the start, so an alert on a rate sees the first drop.
        for reason in [SpanDrop::QueueFull, SpanDrop::ExportFailed] {
            self.dropped(reason, 0);
        }
    }

    pub fn exported(&self, spans: u64) {
        self.exported.inc_by(spans);
    }

    pub fn dropped(&self, reason: SpanDrop, spans: u64) {
        self.dropped
            .get_or_create(&DropLabels {
                reason: reason.as_str(),
            })
            .inc_by(spans);
    }
}
