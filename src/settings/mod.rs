//! The configuration of one herd process: the sections each module defines for itself,
//! assembled, layered from every source and validated.
//!
//! Each section's type lives with the code it configures, together with the checks of its
//! values (`broker::BrokerSettings`, `http::HttpSettings`, `sim::SimConfig`, …). This module
//! assembles them, reads the sources, applies the seed systems' environment names, and turns
//! `[[strategies]]` into typed [`StrategySpec`]s. Imports flow one way: no section imports
//! settings.
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
//! - Secrets are `Secret`s and never printed.

mod sources;
mod validate;

use serde::{Deserialize, Serialize};

pub use sources::{EnvSnapshot, LoadOptions};

use crate::broker::lease::LeaseSettings;
use crate::broker::{Account, AccountSettings, BrokerSettings, RedisSettings};
use crate::domain::{DataSettings, HumanDuration, InvalidSetting, Venue};
use crate::http::HttpSettings;
use crate::journal::JournalSettings;
use crate::shutdown::ShutdownSettings;
use crate::sim::SimConfig;
use crate::strategy::StrategySpec;
use crate::supervisor::SupervisorSettings;
use crate::telemetry::{LogSettings, TraceConfig};

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
    pub data: DataSettings,
    pub journal: JournalSettings,
    pub redis: RedisSettings,
    pub lease: LeaseSettings,
    /// The brokerage accounts, as written; empty means the one `[broker]` describes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<AccountSettings>,
    #[serde(default)]
    pub strategies: Vec<StrategySettings>,
    /// The validated accounts, keys read, derived from `accounts` by [`validate`]; never empty.
    #[serde(skip)]
    pub resolved_accounts: Vec<Account>,
    /// The validated strategy instances, derived from `strategies` by [`validate`].
    #[serde(skip)]
    pub instances: Vec<StrategySpec>,
    /// The trace pipeline the standard OpenTelemetry environment asks for (`None`: traces off).
    #[serde(skip)]
    pub traces: Option<TraceConfig>,
    /// What validation normalised, for the operator to read once logging is up (a symbol
    /// written `spy` is traded as `SPY`).
    #[serde(skip)]
    pub notices: Vec<String>,
}

/// One `[[strategies]]` entry as written; [`validate`] turns it into a [`StrategySpec`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrategySettings {
    pub id: String,
    pub kind: String,
    /// The account it trades (`accounts[].id`); may be left out while there is one account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(default)]
    pub symbols: Vec<String>,
    /// How often the instance ticks, in venue time (the simulator's speed scales it).
    pub every: HumanDuration,
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// Which intraday bars the instance decides on: `regular` (the default: the venue's regular
    /// session only) or `extended` (pre- and post-market too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    #[serde(default)]
    pub params: serde_json::Map<String, serde_json::Value>,
}

fn enabled_by_default() -> bool {
    true
}

impl Settings {
    /// Loads, merges and validates every source.
    pub fn load(options: &LoadOptions) -> Result<Settings, SettingsError> {
        let mut settings = sources::merge(options)?;
        validate::validate(&mut settings, &options.env)?;
        Ok(settings)
    }

    /// The venue the accounts trade on (they all have keys, or none has): the first account's.
    pub fn venue(&self) -> Venue {
        self.resolved_accounts
            .first()
            .map_or_else(|| self.broker.venue(), Account::venue)
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
    #[error("invalid configuration: {0}")]
    Value(#[from] InvalidSetting),
    #[error("cannot read configuration file {path}: {reason}")]
    File { path: String, reason: String },
}

#[cfg(test)]
mod tests;
