//! Signals and the drain, bounded by `shutdown.grace`.
//!
//! 1. `/readyz` turns 503 at once (the process phase becomes Draining).
//! 2. The Supervisor drains every child in order: strategies finish their tick in flight,
//!    the broker waits for orders in flight to reach a known state, then cache and metrics.
//! 3. The journal commits what is still queued (the actors' last records), within what is left
//!    of the grace period.
//! 4. The HTTP server stops (last, so probes and `/metrics` answer throughout), then the
//!    embedded simulator.
//! 5. Queued spans are exported, within what is left of the grace period (at most
//!    [`TRACE_FLUSH`]), on a blocking thread: the exporter must not wait on an actix thread.
//! 6. One summary event: each phase's duration, orders completed, who missed the deadline.
//!
//! Invariants: a second SIGTERM/SIGINT during the drain exits at once with code 130; missing the
//! deadline exits non-zero after naming the children that did not finish; the process ends
//! through [`exit_process`], never by running thread-local destructors.

use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use actix_web::dev::ServerHandle;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::domain::{HumanDuration, InvalidSetting, positive};
use crate::journal::Journal;
use crate::process::{Phase, ProcessState};
use crate::sim::SimServer;
use crate::supervisor::{DrainAll, Supervisor};
use crate::telemetry::Traces;

/// `[shutdown]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownSettings {
    /// The whole drain must finish within this; keep it under Kubernetes' 30 s grace period.
    pub grace: HumanDuration,
}

impl ShutdownSettings {
    pub fn check(&self) -> Result<(), InvalidSetting> {
        positive("shutdown.grace", self.grace)
    }
}

/// The actors' drain ends this much before the grace period (at most a tenth of it), so the
/// Supervisor can still report which actors missed it.
const REPORT_MARGIN: Duration = Duration::from_millis(250);

/// The longest the drain waits for the collector to take the last spans.
pub const TRACE_FLUSH: Duration = Duration::from_secs(2);

/// Exit code when the drain missed its deadline.
pub const EXIT_DRAIN_TIMEOUT: u8 = 1;
/// Exit code of a forced exit (second signal), as shells report SIGINT.
pub const EXIT_FORCED: u8 = 130;

/// SIGTERM and SIGINT, listened for from the moment this is built: a signal that arrives
/// during start-up waits here for the drain instead of killing the process (the default action).
pub struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers; call it first thing, inside the runtime.
    pub fn install() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Self {})
        }
    }

    /// Resolves on the next SIGTERM or SIGINT (received since `install`), naming it.
    pub async fn next(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => "SIGTERM",
                _ = self.int.recv() => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

/// What the drain stops, in order.
pub struct Running {
    pub process: Arc<ProcessState>,
    pub supervisor: Addr<Supervisor>,
    pub http: ServerHandle,
    pub sim: Option<SimServer>,
    /// The trace pipeline, flushed last.
    pub traces: Option<Traces>,
    /// Flushed once the actors have drained.
    pub journal: Option<Journal>,
    /// The lease keeper: told once the actors have drained (no order in flight), it gives
    /// the leases back so a standby replica takes over at once; awaited within the grace.
    pub leases: Option<(CancellationToken, tokio::task::JoinHandle<()>)>,
}

/// Runs the drain; returns the process exit code.
pub async fn drain(running: Running, grace: Duration, signal: &str, mut signals: Signals) -> u8 {
    let started = Instant::now();
    let deadline = started + grace;
    running.process.advance(Phase::Draining);
    tracing::info!(
        signal,
        grace_ms = grace.as_millis() as u64,
        "shutdown: draining"
    );
    actix::spawn(async move {
        let second = signals.next().await;
        tracing::warn!(signal = second, "second signal: exiting immediately");
        exit_process(EXIT_FORCED);
    });
    let actors_deadline = deadline - REPORT_MARGIN.min(grace / 10);
    let drain = running.supervisor.send(DrainAll {
        deadline: actors_deadline,
    });
    let report = tokio::time::timeout_at(deadline, drain).await;
    let actors_ms = started.elapsed().as_millis() as u64;
    let journal_started = Instant::now();
    let journal_flushed = match &running.journal {
        Some(journal) => {
            let left = deadline.saturating_duration_since(Instant::now());
            journal.flush(left).await.map_err(|e| e.to_string())
        }
        None => Ok(()),
    };
    let journal_ms = journal_started.elapsed().as_millis() as u64;
    if let Some((release, keeper)) = running.leases {
        release.cancel();
        let _ = tokio::time::timeout_at(deadline, keeper).await;
    }
    let http_started = Instant::now();
    running.http.stop(true).await;
    if let Some(sim) = running.sim {
        sim.stop().await;
    }
    let http_ms = http_started.elapsed().as_millis() as u64;
    let traces_ms = flush_traces(running.traces, deadline).await;
    let total_ms = started.elapsed().as_millis() as u64;
    let phases = |r: &crate::supervisor::DrainReport| {
        r.phases
            .iter()
            .map(|(p, ms)| format!("{p}={ms}ms"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    if let Err(e) = &journal_flushed {
        tracing::error!(event = "journal_not_flushed", error = %e, "the journal did not commit every record before exit");
    }
    match report {
        Ok(Ok(report)) if report.unfinished.is_empty() && journal_flushed.is_ok() => {
            tracing::info!(
                event = "shutdown_summary", total_ms, actors_ms, journal_ms, http_ms, traces_ms, phases = %phases(&report),
                orders_completed = report.orders_completed, "shutdown complete"
            );
            0
        }
        Ok(Ok(report)) => {
            tracing::error!(
                event = "shutdown_summary", total_ms, actors_ms, journal_ms, http_ms, traces_ms, phases = %phases(&report),
                orders_completed = report.orders_completed, unfinished = %report.unfinished.join(","),
                journal_flushed = journal_flushed.is_ok(),
                "shutdown incomplete: actors unfinished by the deadline, or the journal not committed"
            );
            EXIT_DRAIN_TIMEOUT
        }
        Ok(Err(e)) => {
            tracing::error!(event = "shutdown_summary", total_ms, error = %e, "the supervisor is gone; drain incomplete");
            EXIT_DRAIN_TIMEOUT
        }
        Err(_) => {
            tracing::error!(
                event = "shutdown_summary",
                total_ms,
                "shutdown deadline passed before the supervisor answered"
            );
            EXIT_DRAIN_TIMEOUT
        }
    }
}

/// Ends the process with `code` at once, from any thread, once the drain has settled what
/// matters (or a second signal said not to wait).
///
/// Not `std::process::exit`: glibc's `exit` runs the calling thread's thread-local destructors
/// while the other threads (HTTP workers, the blocking pool, SQLite's worker) run on. Those
/// destructors drop the runtime's per-thread handles and the log layer's per-thread state, and
/// whatever runs or logs during them can reach thread-locals already destroyed: a panic in a
/// destructor aborts the process, and the drain's exit code is lost to a signal. Once the drain
/// is over nothing needs a destructor: the journal is committed and the spans exported. Only
/// standard output and error are flushed here.
pub fn exit_process(code: u8) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().lock().flush();
    let _ = std::io::stderr().lock().flush();
    // SAFETY: `_exit` takes no pointer and does not return; skipping every destructor and
    // `atexit` handler is its purpose, and the callers have nothing left to clean up.
    unsafe { libc::_exit(i32::from(code)) }
}

/// Exports the spans still queued; returns how long it took (ms).
async fn flush_traces(traces: Option<Traces>, deadline: Instant) -> u64 {
    let Some(traces) = traces else { return 0 };
    let started = Instant::now();
    let budget = deadline
        .saturating_duration_since(started)
        .min(TRACE_FLUSH)
        .max(Duration::from_millis(100));
    match tokio::task::spawn_blocking(move || traces.shutdown(budget)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "traces: the last spans were not all exported"),
        Err(e) => tracing::warn!(error = %e, "traces: the exporter's shutdown failed"),
    }
    started.elapsed().as_millis() as u64
}
