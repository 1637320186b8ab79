//! The journal's own health: entries written by kind, entries dropped (decisions only, when the
//! queue is full), failed commits, and how many entries wait for the writer.
//!
//! Invariant: an entry is counted once, as written when its transaction commits or as dropped
//! when it is refused at the queue; order records are never dropped, so `dropped` has only the
//! `decision` kind.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

/// Cheap to clone: the handles are shared.
#[derive(Clone, Debug, Default)]
pub struct JournalMetrics {
    written: Family<KindLabels, Counter>,
    dropped: Family<KindLabels, Counter>,
    write_errors: Counter,
    queued: Gauge,
}

impl JournalMetrics {
    pub(super) fn register(&self, r: &mut Registry) {
        r.register(
            "journal_entries_written",
            "Journal entries committed, by kind (order, fill, decision, admin, stop, state)",
            self.written.clone(),
        );
        r.register(
            "journal_entries_dropped",
            "Journal entries refused because the queue was full (decisions only; order records wait)",
            self.dropped.clone(),
        );
        r.register(
            "journal_write_errors",
            "Journal transactions that failed and are being retried",
            self.write_errors.clone(),
        );
        r.register(
            "journal_queue_depth",
            "Journal entries waiting for the writer",
            self.queued.clone(),
        );
        // The drop a user alerts on exists before the first one happens.
        let _ = self.dropped.get_or_create(&KindLabels { kind: "decision" });
    }

    pub fn written(&self, kind: &'static str, n: u64) {
        self.written.get_or_create(&KindLabels { kind }).inc_by(n);
    }

    /// Entries of `kind` counted as written (tests read it without rendering a registry).
    #[cfg(test)]
    pub fn written_count(&self, kind: &'static str) -> u64 {
        self.written.get_or_create(&KindLabels { kind }).get()
    }

    /// Rows of `kind` counted as dropped (tests read it without rendering a registry).
    #[cfg(test)]
    pub fn dropped_count(&self, kind: &'static str) -> u64 {
        self.dropped.get_or_create(&KindLabels { kind }).get()
    }

    pub fn dropped(&self, kind: &'static str, n: u64) {
        self.dropped.get_or_create(&KindLabels { kind }).inc_by(n);
    }

    pub fn write_error(&self) {
        self.write_errors.inc();
    }

    /// Failed transactions so far, each retried (read by tests without rendering a registry).
    pub fn write_errors(&self) -> u64 {
        self.write_errors.get()
    }

    pub fn queued(&self, depth: usize) {
        self.queued.set(depth as i64);
    }
}
