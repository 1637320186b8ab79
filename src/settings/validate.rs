//! Validation of the assembled settings: each section's own checks, the seed systems' strategy
//! environment names, and the typed strategy instances.
//!
//! Invariants:
//! - Every error names the key (as written in TOML, with array indexes, or the environment
//!   variable), the value that was refused, and what is allowed.
//! - What is accepted but changed (a symbol written in lower case) is said in
//!   [`Settings::notices`], never silently.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use super::sources::{ENV_MOMENTUM_THRESHOLD, ENV_POSITION_SIZE, ENV_SYMBOLS};
use super::{EnvSnapshot, Settings, SettingsError, StrategySettings};
use crate::broker::resolve_accounts;
use crate::domain::{AccountId, InstanceId, InvalidSetting, Session, Symbol};
use crate::strategy::{StrategyKind, StrategyParams, StrategySpec};
use crate::telemetry::TraceConfig;

pub(super) fn validate(s: &mut Settings, env: &EnvSnapshot) -> Result<(), SettingsError> {
    s.http.check()?;
    s.broker.check()?;
    s.supervisor.check()?;
    s.shutdown.check()?;
    s.log.check()?;
    s.data.check()?;
    s.journal.check()?;
    s.redis.check()?;
    s.lease
        .check(s.redis.url.is_set(), s.broker.call_timeout.get())?;
    if s.lease.enabled {
        s.lease.replica = s
            .lease
            .replica_name(env.get("HOSTNAME").map(String::as_str));
    }
    s.sim
        .validate()
        .map_err(|e| SettingsError::Invalid(e.to_string()))?;
    s.resolved_accounts = resolve_accounts(&s.accounts, &s.broker, &|name| env.get(name).cloned())?;
    apply_momentum_env(&mut s.strategies, env, &mut s.notices)?;
    let accounts: Vec<AccountId> = s.resolved_accounts.iter().map(|a| a.id.clone()).collect();
    s.instances = strategy_specs(&s.strategies, &accounts, &mut s.notices)?;
    resolve_guards(&s.strategies, &mut s.instances)?;
    s.traces = TraceConfig::from_env(&|name| env.get(name).cloned())?;
    Ok(())
}

/// The account an instance names, or the only one there is.
fn account_of(
    named: Option<&str>,
    accounts: &[AccountId],
    key: &str,
) -> Result<AccountId, InvalidSetting> {
    let ids = || {
        let ids: Vec<&str> = accounts.iter().map(AccountId::as_str).collect();
        ids.join(", ")
    };
    match (named, accounts) {
        (None, [only]) => Ok(only.clone()),
        (None, _) => Err(InvalidSetting::new(
            key,
            "(absent)",
            format!(
                "required when several accounts are configured; one of: {}",
                ids()
            ),
        )),
        (Some(raw), _) => accounts
            .iter()
            .find(|a| a.as_str() == raw)
            .cloned()
            .ok_or_else(|| {
                InvalidSetting::new(
                    key,
                    format!("{raw:?}"),
                    format!("names no configured account; configured: {}", ids()),
                )
            }),
    }
}

/// A risk manager's `guard` must name other configured instances; it watches their symbols
/// (and any it lists itself).
fn resolve_guards(
    strategies: &[StrategySettings],
    instances: &mut [StrategySpec],
) -> Result<(), InvalidSetting> {
    let symbols_of = |id: &str| -> Option<Vec<Symbol>> {
        let raw = strategies.iter().find(|s| s.id == id)?;
        Some(
            raw.symbols
                .iter()
                .filter_map(|r| Symbol::parse(r).ok())
                .collect(),
        )
    };
    let accounts: HashMap<InstanceId, AccountId> = instances
        .iter()
        .map(|i| (i.id.clone(), i.account.clone()))
        .collect();
    for spec in instances.iter_mut() {
        let Some(i) = strategies.iter().position(|s| s.id == spec.id.as_str()) else {
            continue;
        };
        for guarded in spec.params.guarded() {
            let other = accounts.iter().find(|(id, _)| id.as_str() == guarded);
            if let Some((_, account)) = other.filter(|(_, a)| **a != spec.account) {
                // A risk manager reads and closes positions through its own account's book.
                return Err(InvalidSetting::new(
                    format!("strategies[{i}].params.guard"),
                    format!("{guarded:?}"),
                    format!(
                        "trades account {:?}, and a risk manager guards only instances of \
                         its own account ({:?})",
                        account.as_str(),
                        spec.account.as_str()
                    ),
                ));
            }
            let key = format!("strategies[{i}].params.guard");
            if guarded == spec.id.as_str() {
                return Err(InvalidSetting::new(
                    key,
                    format!("{guarded:?}"),
                    "an instance cannot guard itself",
                ));
            }
            let Some(symbols) = symbols_of(guarded) else {
                let ids: Vec<&str> = strategies.iter().map(|s| s.id.as_str()).collect();
                return Err(InvalidSetting::new(
                    key,
                    format!("{guarded:?}"),
                    format!(
                        "names no configured instance; configured: {}",
                        ids.join(", ")
                    ),
                ));
            };
            for symbol in symbols {
                if !spec.symbols.contains(&symbol) {
                    spec.symbols.push(symbol);
                }
            }
        }
    }
    Ok(())
}

/// The seed's `SYMBOLS`, `MOMENTUM_THRESHOLD` and `POSITION_SIZE` configure every momentum instance.
fn apply_momentum_env(
    strategies: &mut [StrategySettings],
    env: &EnvSnapshot,
    notices: &mut Vec<String>,
) -> Result<(), InvalidSetting> {
    let symbols = env
        .get(ENV_SYMBOLS)
        .map(|raw| symbol_list(raw, notices))
        .transpose()?;
    let number = |name: &str| -> Result<Option<serde_json::Value>, InvalidSetting> {
        let Some(raw) = env.get(name) else {
            return Ok(None);
        };
        let value: f64 = raw
            .trim()
            .parse()
            .map_err(|_| InvalidSetting::new(name, format!("{raw:?}"), "must be a number"))?;
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

/// `SYMBOLS` (`"SPY,QQQ"`): every entry must be a symbol; an empty one is a typo, not nothing.
fn symbol_list(raw: &str, notices: &mut Vec<String>) -> Result<Vec<String>, InvalidSetting> {
    let value = format!("{raw:?}");
    raw.split(',')
        .enumerate()
        .map(|(i, entry)| {
            let n = i + 1;
            if entry.trim().is_empty() {
                return Err(InvalidSetting::new(
                    ENV_SYMBOLS,
                    &value,
                    format!(
                        "entry {n} is empty; separate symbols with single commas, e.g. \"SPY,QQQ\""
                    ),
                ));
            }
            let symbol = Symbol::parse(entry)
                .map_err(|e| InvalidSetting::new(ENV_SYMBOLS, &value, format!("entry {n}: {e}")))?;
            note_normalised(ENV_SYMBOLS, entry, &symbol, notices);
            Ok(symbol.to_string())
        })
        .collect()
}

fn note_normalised(key: &str, raw: &str, symbol: &Symbol, notices: &mut Vec<String>) {
    if raw != symbol.as_str() {
        notices.push(format!("{key}: {raw:?} is traded as {:?}", symbol.as_str()));
    }
}

fn strategy_specs(
    strategies: &[StrategySettings],
    accounts: &[AccountId],
    notices: &mut Vec<String>,
) -> Result<Vec<StrategySpec>, SettingsError> {
    let mut ids = HashSet::new();
    let mut specs = Vec::new();
    for (i, s) in strategies.iter().enumerate() {
        let key = |field: &str| format!("strategies[{i}].{field}");
        let quoted = |text: &str| format!("{text:?}");
        let id = InstanceId::parse(&s.id)
            .map_err(|allowed| InvalidSetting::new(key("id"), quoted(&s.id), allowed))?;
        if !ids.insert(id.clone()) {
            return Err(InvalidSetting::new(
                key("id"),
                quoted(&s.id),
                "duplicate id; every instance needs a unique id",
            )
            .into());
        }
        let kind = StrategyKind::parse(&s.kind)
            .map_err(|allowed| InvalidSetting::new(key("kind"), quoted(&s.kind), allowed))?;
        if s.symbols.is_empty() && kind.needs_symbols() {
            return Err(InvalidSetting::new(
                key("symbols"),
                "[]",
                "needs at least one symbol, e.g. [\"SPY\"]",
            )
            .into());
        }
        let mut symbols = Vec::with_capacity(s.symbols.len());
        for raw in &s.symbols {
            let symbol = Symbol::parse(raw)
                .map_err(|allowed| InvalidSetting::new(key("symbols"), quoted(raw), allowed))?;
            if symbols.contains(&symbol) {
                return Err(InvalidSetting::new(
                    key("symbols"),
                    quoted(raw),
                    "listed twice; list each symbol once",
                )
                .into());
            }
            note_normalised(&key("symbols"), raw, &symbol, notices);
            symbols.push(symbol);
        }
        if s.every.get() < Duration::from_secs(1) {
            return Err(InvalidSetting::new(
                key("every"),
                quoted(&s.every.to_string()),
                "must be at least \"1s\"",
            )
            .into());
        }
        // The params' own checks continue the key: `.threshold = -1: …` or `: unknown field …`.
        let params = StrategyParams::parse(kind, &s.params)
            .map_err(|e| SettingsError::Invalid(format!("{}{e}", key("params"))))?;
        let session = match s.session.as_deref() {
            None => Session::default(),
            Some(raw) => Session::parse(raw).ok_or_else(|| {
                InvalidSetting::new(key("session"), quoted(raw), Session::ALLOWED)
            })?,
        };
        let account = account_of(s.account.as_deref(), accounts, &key("account"))?;
        if s.enabled {
            specs.push(StrategySpec {
                id,
                account,
                kind,
                symbols,
                every: s.every.get(),
                session,
                params,
            });
        }
    }
    Ok(specs)
}
