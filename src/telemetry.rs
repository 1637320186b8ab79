//! Logging: one JSON object per line on stdout (timestamp, level, target, message, fields),
//! or readable text for a terminal; `RUST_LOG` overrides the configured level.
//!
//! Invariant: panics are logged as structured events too (the default hook writes plain text to
//! stderr, which log pipelines cannot parse).

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt;
use tracing_subscriber::prelude::*;

use serde::{Deserialize, Serialize};

use crate::domain::{InvalidSetting, panic_message};

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
}

/// Installs the global subscriber. `rust_log` is the value of `RUST_LOG`, if set.
pub fn init(settings: &LogSettings, rust_log: Option<&str>) -> Result<(), TelemetryError> {
    let filter = rust_log
        .filter(|f| !f.trim().is_empty())
        .unwrap_or(&settings.level);
    let env_filter = EnvFilter::try_new(filter).map_err(|e| TelemetryError::Filter {
        filter: filter.to_owned(),
        reason: e.to_string(),
    })?;
    let registry = tracing_subscriber::registry().with(env_filter);
    let installed = match settings.format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false),
            )
            .try_init(),
        LogFormat::Text => registry.with(fmt::layer()).try_init(),
    };
    installed.map_err(|_| TelemetryError::AlreadyInstalled)?;
    install_panic_hook();
    Ok(())
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
        tracing::error!(event = "panic", panic = %payload, location = ?location, thread = %thread, "panic");
    }));
}
