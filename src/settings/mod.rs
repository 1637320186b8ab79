//! Typed, validated configuration: the one place every configuration key is defined.
//!
//! Sources, later ones winning: the built-in defaults (`config/default.toml`, compiled in) →
//! `config/default.toml` in the working directory → `config/$HERD_ENV.toml` → `--config FILE` →
//! the seed systems' environment names (`ALPACA_API_KEY`, `PORT`, …, see [`sources`]) →
//! `HERD__SECTION__KEY` environment variables.
//!
//! Invariants:
//! - A [`Settings`] value has passed [`validate`]: every consumer may trust it.
//! - Every invalid input is reported as one line naming the key, the bad value and what is
//!   allowed ([`SettingsError`]); the process exits with code 2 on it.
//! - Secrets are [`Secret`]s and never printed.

mod duration;
mod secret;
mod sources;
mod validate;

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

pub use duration::HumanDuration;
pub use secret::Secret;
pub use sources::{EnvSnapshot, LoadOptions};
pub use validate::StrategySpec;

use crate::broker::breaker::BreakerConfig;
use crate::broker::limiter::LimiterConfig;
use crate::broker::retry::RetryConfig;
use crate::broker::risk::RiskLimits;
use crate::sim::SimConfig;

/// The whole configuration of one herd process.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub http: HttpSettings,
    pub broker: BrokerSettings,
    #[serde(default)]
    pub sim: SimConfig,
    pub supervisor: SupervisorSettings,
    pub shutdown: ShutdownSettings,
    pub log: LogSettings,
    #[serde(default)]
    pub strategies: Vec<StrategySettings>,
    /// The validated strategy instances, derived from `strategies` by [`validate`].
    #[serde(skip)]
    pub instances: Vec<StrategySpec>,
}

/// The ops/admin HTTP server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub bind: IpAddr,
    /// `PORT` (the seeds' name) or `HERD__HTTP__PORT`.
    pub port: u16,
    /// Worker threads; ops traffic is light, so a small number keeps the footprint small.
    pub workers: usize,
}

/// Where orders go and how herd talks to it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerSettings {
    /// Empty key and secret: herd runs against the embedded simulator.
    pub key_id: Secret,
    pub secret_key: Secret,
    pub base_url: String,
    pub data_url: String,
    /// Market-data feed (`iex` works on free plans; `sip` needs a subscription).
    pub feed: String,
    /// Every upstream HTTP call is cancelled after this long.
    pub call_timeout: HumanDuration,
    /// How often orders that are not yet final are looked up.
    pub order_poll: HumanDuration,
    /// Required, together with the live base URL, to trade real money.
    pub enable_live_trading: bool,
    /// Bar requests of all instances arriving within this window go out as one request.
    pub batch_window: HumanDuration,
    /// Circuit breakers, one per operation, all with these thresholds.
    pub breaker: BreakerConfig,
    /// Retries of reads (orders are never retried blindly).
    pub retry: RetryConfig,
    /// The trading API's request quota.
    pub limiter: LimiterConfig,
    /// The market-data API's request quota (Alpaca counts it separately).
    pub data_limiter: LimiterConfig,
    /// Pre-trade risk limits; an order that breaks one is refused before it is sent.
    pub risk: RiskLimits,
}

/// Restart policy for every supervised actor.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisorSettings {
    /// More restarts than this within `restart_window` leaves the child `failed`.
    pub max_restarts: u32,
    pub restart_window: HumanDuration,
    pub backoff_base: HumanDuration,
    pub backoff_cap: HumanDuration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownSettings {
    /// The whole drain must finish within this; keep it under Kubernetes' 30 s grace period.
    pub grace: HumanDuration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// A tracing filter (`info`, `herd=debug,info`); `RUST_LOG` overrides it.
    pub level: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line: for log pipelines.
    Json,
    /// Human-readable lines: for a terminal.
    Text,
}

/// One `[[strategies]]` entry as written; [`validate`] turns it into a [`StrategySpec`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrategySettings {
    pub id: String,
    pub kind: String,
    #[serde(default)]
    pub symbols: Vec<String>,
    /// How often the instance ticks, in venue time (the simulator's speed scales it).
    pub every: HumanDuration,
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    #[serde(default)]
    pub params: serde_json::Map<String, serde_json::Value>,
}

fn enabled_by_default() -> bool {
    true
}

/// Which venue the broker talks to, derived from the credentials and base URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Venue {
    /// No credentials: the embedded simulator, started in-process.
    Simulator,
    AlpacaPaper,
    AlpacaLive,
}

impl Venue {
    pub fn as_str(self) -> &'static str {
        match self {
            Venue::Simulator => "simulator",
            Venue::AlpacaPaper => "alpaca_paper",
            Venue::AlpacaLive => "alpaca_live",
        }
    }
}

/// Alpaca's live trading host: orders sent there spend real money.
pub const LIVE_TRADING_HOST: &str = "api.alpaca.markets";

impl Settings {
    /// Loads, merges and validates every source.
    pub fn load(options: &LoadOptions) -> Result<Settings, SettingsError> {
        let mut settings = sources::merge(options)?;
        validate::validate(&mut settings, &options.env)?;
        Ok(settings)
    }

    pub fn venue(&self) -> Venue {
        if !self.broker.key_id.is_set() {
            Venue::Simulator
        } else if validate::host_of(&self.broker.base_url).as_deref() == Some(LIVE_TRADING_HOST) {
            Venue::AlpacaLive
        } else {
            Venue::AlpacaPaper
        }
    }

    /// The effective configuration as TOML, secrets redacted (for `herd check-config`).
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render settings: {e}\n"))
    }
}

/// Why the configuration was refused. Display is one line for the operator.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error("cannot read configuration file {path}: {reason}")]
    File { path: String, reason: String },
}

#[cfg(test)]
mod tests;
