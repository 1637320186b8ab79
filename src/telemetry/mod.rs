//! Logging and traces. Logs: one JSON object per line on stdout (timestamp, level, target,
//! message, fields, and the trace and span ids when traced), or readable text for a terminal;
//! `RUST_LOG` overrides the configured level. Traces: herd's spans over OTLP, configured by the
//! standard OpenTelemetry environment (`traces.rs`).
//!
//! Invariant: a panic is written as one plain line to stderr first, then logged as a structured
//! event (log pipelines cannot parse the plain line). The plain line comes first because the
//! structured log can itself panic on a thread whose thread-locals are being destroyed (the log
//! layer keeps per-thread state), and a panic inside the hook aborts the process: the line says
//! what happened before that can.

mod log_ids;
mod traces;

use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt;
use tracing_subscriber::fmt::format::JsonFields;
use tracing_subscriber::prelude::*;
use tracing_subscriber::{EnvFilter, Layer};

pub use traces::{OtlpProtocol, TraceConfig, TraceError, Traces};

use serde::{Deserialize, Serialize};

use crate::domain::{InvalidSetting, panic_message};
use crate::metrics::TraceMetrics;
use log_ids::WithTraceIds;

/// `[log]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// A tracing filter (`info`, `herd=debug,info`); `RUST_LOG` overrides it.
    pub level: String,
    pub format: LogFormat,
}

impl LogSettings {
    pub fn check(&self) -> Result<(), InvalidSetting> {
        EnvFilter::try_new(&self.level).map(|_| ()).map_err(|e| {
            InvalidSetting::new(
                "log.level",
                format!("{:?}", self.level),
                format!("not a log filter ({e}); use e.g. \"info\" or \"herd=debug,info\""),
            )
        })
    }
}

/// How log lines are written. Parsed from text so that a wrong value is answered with the
/// allowed ones (serde's enum error from the config crate names neither).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum LogFormat {
    /// One JSON object per line: for log pipelines.
    Json,
    /// Human-readable lines: for a terminal.
    Text,
}

impl TryFrom<String> for LogFormat {
    type Error = String;

    fn try_from(raw: String) -> Result<Self, String> {
        match raw.trim() {
            "json" => Ok(Self::Json),
            "text" => Ok(Self::Text),
            _ => Err(format!("{raw:?} is not a log format; allowed: json, text")),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("log filter {filter:?} is invalid: {reason}")]
    Filter { filter: String, reason: String },
    #[error("a global logger is already installed")]
    AlreadyInstalled,
    #[error(transparent)]
    Traces(#[from] TraceError),
}

/// Installs the global subscriber: log lines filtered by the log level, and, when `traces`
/// is given, herd's spans exported over OTLP (filtered by their own level, so a quiet log
/// level keeps the traces). `rust_log` is the value of `RUST_LOG`, if set. The returned
/// [`Traces`] is flushed by the drain.
pub fn init(
    settings: &LogSettings,
    rust_log: Option<&str>,
    traces: Option<&TraceConfig>,
    metrics: TraceMetrics,
) -> Result<Option<Traces>, TelemetryError> {
    let filter = rust_log
        .filter(|f| !f.trim().is_empty())
        .unwrap_or(&settings.level);
    let env_filter = EnvFilter::try_new(filter).map_err(|e| TelemetryError::Filter {
        filter: filter.to_owned(),
        reason: e.to_string(),
    })?;
    let pipeline = traces
        .map(|config| Traces::start(config, metrics))
        .transpose()?;
    let traced = pipeline.is_some();
    let (traces, otel_layer) = match pipeline {
        Some((traces, tracer)) => {
            // Only herd's own spans: the exporter's HTTP/gRPC stack traces through `tracing`
            // too, and exporting its spans would feed the exporter its own work.
            let spans = Targets::new().with_target("herd", Level::INFO);
            let layer = tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(spans);
            opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
            (Some(traces), Some(layer))
        }
        None => (None, None),
    };
    let log_layer = match settings.format {
        LogFormat::Json => {
            let json = fmt::format()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false);
            let layer = fmt::layer().fmt_fields(JsonFields::new());
            if traced {
                layer.event_format(WithTraceIds(json)).boxed()
            } else {
                layer.event_format(json).boxed()
            }
        }
        LogFormat::Text => fmt::layer().boxed(),
    };
    tracing_subscriber::registry()
        .with(otel_layer)
        .with(log_layer.with_filter(env_filter))
        .try_init()
        .map_err(|_| TelemetryError::AlreadyInstalled)?;
    install_panic_hook();
    Ok(traces)
}

fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let payload = panic_message(info.payload());
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()));
        let thread = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_owned();
        let at = location.as_deref().unwrap_or("an unknown location");
        // One write of one line, with no thread-local state of its own: the line is whole even
        // when other threads write to stderr.
        let line = format!("herd: thread '{thread}' panicked at {at}: {payload}\n");
        let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
        tracing::error!(event = "panic", panic = %payload, location = ?location, thread = %thread, "panic");
    }));
}
