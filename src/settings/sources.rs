//! Layering of configuration sources and the seed systems' environment names.
//!
//! Invariant: the process environment is read once, into an [`EnvSnapshot`], by the caller;
//! nothing here calls `std::env`, so tests can load settings in parallel without touching the
//! process environment.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use config::{Config, Environment, File, FileFormat};

use super::{Settings, SettingsError};

/// The built-in defaults: the repository's `config/default.toml`, compiled in so that the binary
/// runs from any directory.
pub const BUILT_IN_DEFAULTS: &str = include_str!("../../config/default.toml");

/// The environment variables herd reads, captured once.
pub type EnvSnapshot = HashMap<String, String>;

/// Where to look for configuration.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `--config FILE`: must exist when given.
    pub config_file: Option<PathBuf>,
    /// The directory holding `default.toml` and `$HERD_ENV.toml` (usually `./config`).
    pub config_dir: PathBuf,
    pub env: EnvSnapshot,
}

impl LoadOptions {
    /// Options for the running process: `./config`, the real environment.
    pub fn from_process(config_file: Option<PathBuf>) -> Self {
        Self {
            config_file,
            config_dir: PathBuf::from("config"),
            env: std::env::vars().collect(),
        }
    }
}

/// Seed environment names and the key each one sets. Where two names are listed, the first
/// is the seed's and the second Alpaca's own SDK convention; the first wins if both are set.
pub const ENV_ALIASES: &[(&[&str], &str)] = &[
    (&["ALPACA_API_KEY", "APCA_API_KEY_ID"], "broker.key_id"),
    (
        &["ALPACA_SECRET_KEY", "APCA_API_SECRET_KEY"],
        "broker.secret_key",
    ),
    (&["ALPACA_BASE_URL", "APCA_API_BASE_URL"], "broker.base_url"),
    (&["ALPACA_DATA_URL", "APCA_API_DATA_URL"], "broker.data_url"),
    (&["ENABLE_LIVE_TRADING"], "broker.enable_live_trading"),
    (&["MAX_ORDER_VALUE_USD"], "broker.risk.max_order_value"),
    (&["PORT"], "http.port"),
    (&["HERD_ADMIN_TOKEN", "ADMIN_TOKEN"], "http.admin_token"),
    (&["LOG_LEVEL"], "log.level"),
];

/// Seed names that configure every `momentum` instance (the seed ran exactly one).
pub const ENV_SYMBOLS: &str = "SYMBOLS";
pub const ENV_MOMENTUM_THRESHOLD: &str = "MOMENTUM_THRESHOLD";
pub const ENV_POSITION_SIZE: &str = "POSITION_SIZE";
/// Selects `config/$HERD_ENV.toml`.
pub const ENV_PROFILE: &str = "HERD_ENV";
const ENV_PREFIX: &str = "HERD";
const ENV_SEPARATOR: &str = "__";

pub(super) fn merge(options: &LoadOptions) -> Result<Settings, SettingsError> {
    let mut builder = Config::builder()
        .add_source(File::from_str(BUILT_IN_DEFAULTS, FileFormat::Toml))
        .add_source(toml_file(&options.config_dir.join("default.toml"), false)?);
    if let Some(profile) = options.env.get(ENV_PROFILE).filter(|p| !p.is_empty()) {
        let path = options.config_dir.join(format!("{profile}.toml"));
        builder = builder.add_source(toml_file(&path, true).map_err(|_| {
            SettingsError::Invalid(format!(
                "{ENV_PROFILE} = {profile:?}: there is no {}",
                path.display()
            ))
        })?);
    }
    if let Some(path) = &options.config_file {
        builder = builder.add_source(toml_file(path, true)?);
    }
    let config = builder
        .add_source(environment(alias_overrides(&options.env)))
        .add_source(environment(prefixed(&options.env)))
        .build()
        .map_err(|e| SettingsError::Invalid(describe(e)))?;
    config
        .try_deserialize::<Settings>()
        .map_err(|e| SettingsError::Invalid(describe(e)))
}

fn toml_file(
    path: &Path,
    required: bool,
) -> Result<File<config::FileSourceFile, FileFormat>, SettingsError> {
    if required && !path.is_file() {
        return Err(SettingsError::File {
            path: path.display().to_string(),
            reason: "no such file".into(),
        });
    }
    Ok(File::from(path).format(FileFormat::Toml).required(false))
}

fn environment(vars: HashMap<String, String>) -> Environment {
    Environment::with_prefix(ENV_PREFIX)
        .separator(ENV_SEPARATOR)
        .try_parsing(true)
        .source(Some(vars))
}

/// The `HERD__…` variables of the snapshot.
fn prefixed(env: &EnvSnapshot) -> HashMap<String, String> {
    let prefix = format!("{ENV_PREFIX}{ENV_SEPARATOR}");
    env.iter()
        .filter(|(k, _)| k.starts_with(&prefix))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The seed names, rewritten as the `HERD__…` variables they stand for.
fn alias_overrides(env: &EnvSnapshot) -> HashMap<String, String> {
    ENV_ALIASES
        .iter()
        .filter_map(|(names, key)| {
            let value = names.iter().find_map(|n| env.get(*n))?;
            let var = format!(
                "{ENV_PREFIX}{ENV_SEPARATOR}{}",
                key.replace('.', ENV_SEPARATOR).to_ascii_uppercase()
            );
            Some((var, value.clone()))
        })
        .collect()
}

/// The `config` crate's message in herd's shape, key first: `strategies[1].every: "5x" is not a
/// duration…` (the crate says "… for key `strategies[1]every`", with the dot missing).
fn describe(error: config::ConfigError) -> String {
    let raw = error.to_string();
    let Some(at) = raw.rfind(" for key `") else {
        return raw;
    };
    let rest = &raw[at + " for key `".len()..];
    let Some(end) = rest.find('`') else {
        return raw;
    };
    let mut key = String::with_capacity(end + 4);
    let mut chars = rest[..end].chars().peekable();
    while let Some(c) = chars.next() {
        key.push(c);
        if c == ']' && chars.peek().is_some_and(|n| n.is_ascii_alphabetic()) {
            key.push('.');
        }
    }
    format!("{key}: {}{}", &raw[..at], &rest[end + 1..])
}
