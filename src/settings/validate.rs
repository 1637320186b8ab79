//! Semantic checks that types alone cannot express, and the typed strategy instances.
//!
//! Invariant: every error names the key (as written in TOML, with array indexes), the value
//! that was refused, and what is allowed.

use std::collections::HashSet;
use std::time::Duration;

use super::sources::{ENV_MOMENTUM_THRESHOLD, ENV_POSITION_SIZE, ENV_SYMBOLS};
use super::{EnvSnapshot, LIVE_TRADING_HOST, Settings, SettingsError, StrategySettings};
use crate::domain::{InstanceId, Symbol};
use crate::strategy::{StrategyKind, StrategyParams};

/// One strategy instance, ready to build.
#[derive(Debug, Clone)]
pub struct StrategySpec {
    pub id: InstanceId,
    pub kind: StrategyKind,
    pub symbols: Vec<Symbol>,
    /// Tick period in venue time.
    pub every: Duration,
    pub params: StrategyParams,
}

const FEEDS: &[&str] = &["iex", "sip", "delayed_sip", "otc", "boats", "overnight"];

fn invalid(key: &str, value: impl std::fmt::Display, allowed: &str) -> SettingsError {
    SettingsError::Invalid(format!("{key} = {value}: {allowed}"))
}

pub(super) fn validate(s: &mut Settings, env: &EnvSnapshot) -> Result<(), SettingsError> {
    if s.http.workers == 0 || s.http.workers > 64 {
        return Err(invalid(
            "http.workers",
            s.http.workers,
            "must be between 1 and 64",
        ));
    }
    validate_broker(s)?;
    let sup = &s.supervisor;
    positive("supervisor.restart_window", sup.restart_window.get())?;
    positive("supervisor.backoff_base", sup.backoff_base.get())?;
    if sup.backoff_cap < sup.backoff_base {
        return Err(invalid(
            "supervisor.backoff_cap",
            format!("{:?}", sup.backoff_cap.to_string()),
            &format!(
                "must be at least supervisor.backoff_base ({})",
                sup.backoff_base
            ),
        ));
    }
    positive("shutdown.grace", s.shutdown.grace.get())?;
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&s.log.level) {
        return Err(invalid(
            "log.level",
            format!("{:?}", s.log.level),
            &format!("not a log filter ({e}); use e.g. \"info\" or \"herd=debug,info\""),
        ));
    }
    s.sim
        .validate()
        .map_err(|e| SettingsError::Invalid(e.to_string()))?;
    apply_momentum_env(&mut s.strategies, env)?;
    s.instances = strategy_specs(&s.strategies)?;
    Ok(())
}

fn positive(key: &str, value: Duration) -> Result<(), SettingsError> {
    if value.is_zero() {
        return Err(invalid(key, "\"0s\"", "must be longer than zero"));
    }
    Ok(())
}

fn validate_broker(s: &Settings) -> Result<(), SettingsError> {
    let b = &s.broker;
    match (b.key_id.is_set(), b.secret_key.is_set()) {
        (true, false) => {
            return Err(invalid(
                "broker.secret_key",
                "\"\"",
                "required when broker.key_id (ALPACA_API_KEY) is set; set both, or neither to use the embedded simulator",
            ));
        }
        (false, true) => {
            return Err(invalid(
                "broker.key_id",
                "\"\"",
                "required when broker.secret_key (ALPACA_SECRET_KEY) is set; set both, or neither to use the embedded simulator",
            ));
        }
        _ => {}
    }
    for (key, url) in [
        ("broker.base_url", &b.base_url),
        ("broker.data_url", &b.data_url),
    ] {
        if host_of(url).is_none() {
            return Err(invalid(
                key,
                format!("{url:?}"),
                "must be an http:// or https:// URL",
            ));
        }
    }
    if !FEEDS.contains(&b.feed.as_str()) {
        return Err(invalid(
            "broker.feed",
            format!("{:?}", b.feed),
            &format!("allowed: {}", FEEDS.join(", ")),
        ));
    }
    positive("broker.call_timeout", b.call_timeout.get())?;
    positive("broker.order_poll", b.order_poll.get())?;
    if b.batch_window.get() > Duration::from_secs(1) {
        return Err(invalid(
            "broker.batch_window",
            format!("{:?}", b.batch_window.to_string()),
            "must be at most \"1s\" (it delays every tick by up to this much)",
        ));
    }
    b.breaker.check().map_err(SettingsError::Invalid)?;
    if b.breaker.half_open_max <= b.call_timeout {
        return Err(invalid(
            "broker.breaker.half_open_max",
            format!("{:?}", b.breaker.half_open_max.to_string()),
            &format!(
                "must be longer than broker.call_timeout ({}): a trial call needs time to answer",
                b.call_timeout
            ),
        ));
    }
    b.retry.check().map_err(SettingsError::Invalid)?;
    b.limiter
        .check("broker.limiter")
        .map_err(SettingsError::Invalid)?;
    b.data_limiter
        .check("broker.data_limiter")
        .map_err(SettingsError::Invalid)?;
    b.risk.check().map_err(SettingsError::Invalid)?;
    let live = host_of(&b.base_url).as_deref() == Some(LIVE_TRADING_HOST);
    if live && b.key_id.is_set() && !b.enable_live_trading {
        return Err(invalid(
            "broker.base_url",
            format!("{:?}", b.base_url),
            "is Alpaca's LIVE trading host; set ENABLE_LIVE_TRADING=true (broker.enable_live_trading) to trade real money, or use https://paper-api.alpaca.markets",
        ));
    }
    Ok(())
}

/// The host of an http(s) URL, or `None` if it is not one.
pub(super) fn host_of(url: &str) -> Option<String> {
    let parsed = reqwest::Url::parse(url).ok()?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return None;
    }
    parsed.host_str().map(str::to_ascii_lowercase)
}

/// The seed's `SYMBOLS`, `MOMENTUM_THRESHOLD` and `POSITION_SIZE` configure every momentum instance.
fn apply_momentum_env(
    strategies: &mut [StrategySettings],
    env: &EnvSnapshot,
) -> Result<(), SettingsError> {
    let symbols = env.get(ENV_SYMBOLS).map(|raw| {
        raw.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect::<Vec<_>>()
    });
    let number = |name: &str| -> Result<Option<serde_json::Value>, SettingsError> {
        let Some(raw) = env.get(name) else {
            return Ok(None);
        };
        let value: f64 = raw
            .trim()
            .parse()
            .map_err(|_| invalid(name, format!("{raw:?}"), "must be a number"))?;
        Ok(serde_json::Number::from_f64(value).map(serde_json::Value::Number))
    };
    let threshold = number(ENV_MOMENTUM_THRESHOLD)?;
    let size = number(ENV_POSITION_SIZE)?;
    for s in strategies
        .iter_mut()
        .filter(|s| s.kind == StrategyKind::Momentum.as_str())
    {
        if let Some(symbols) = &symbols {
            s.symbols.clone_from(symbols);
        }
        if let Some(t) = &threshold {
            s.params.insert("threshold".into(), t.clone());
        }
        if let Some(q) = &size {
            s.params.insert("position_size".into(), q.clone());
        }
    }
    Ok(())
}

fn strategy_specs(strategies: &[StrategySettings]) -> Result<Vec<StrategySpec>, SettingsError> {
    let mut ids = HashSet::new();
    let mut specs = Vec::new();
    for (i, s) in strategies.iter().enumerate() {
        let key = |field: &str| format!("strategies[{i}].{field}");
        let id = InstanceId::parse(&s.id)
            .map_err(|e| SettingsError::Invalid(format!("{} = {e}", key("id"))))?;
        if !ids.insert(id.clone()) {
            return Err(invalid(
                &key("id"),
                format!("{:?}", s.id),
                "duplicate id; every instance needs a unique id",
            ));
        }
        let kind = StrategyKind::parse(&s.kind)
            .map_err(|allowed| invalid(&key("kind"), format!("{:?}", s.kind), &allowed))?;
        if s.symbols.is_empty() && kind.needs_symbols() {
            return Err(invalid(
                &key("symbols"),
                "[]",
                "needs at least one symbol, e.g. [\"SPY\"]",
            ));
        }
        let mut symbols = Vec::with_capacity(s.symbols.len());
        for raw in &s.symbols {
            let symbol = Symbol::parse(raw)
                .map_err(|e| SettingsError::Invalid(format!("{} = {e}", key("symbols"))))?;
            if symbols.contains(&symbol) {
                return Err(invalid(
                    &key("symbols"),
                    format!("{raw:?}"),
                    "listed twice; list each symbol once",
                ));
            }
            symbols.push(symbol);
        }
        if s.every.get() < Duration::from_secs(1) {
            return Err(invalid(
                &key("every"),
                format!("{:?}", s.every.to_string()),
                "must be at least \"1s\"",
            ));
        }
        let params = StrategyParams::parse(kind, &s.params)
            .map_err(|e| SettingsError::Invalid(format!("{}{e}", key("params"))))?;
        if s.enabled {
            specs.push(StrategySpec {
                id,
                kind,
                symbols,
                every: s.every.get(),
                params,
            });
        }
    }
    Ok(specs)
}
