//! `[[accounts]]`: the brokerage accounts herd trades, each with its own keys, trading quota and
//! risk limits. Market data is the same for every account and is read once for all of them.
//!
//! Invariants:
//! - Without `[[accounts]]`, `[broker]` describes one account, `default`: a configuration
//!   written before accounts existed means what it meant.
//! - Either every account has keys (Alpaca) or none has (the embedded simulator, which keeps one
//!   simulated account per herd account).
//! - Keys come from the environment or from files (a Kubernetes Secret mounted as files), never
//!   from the configuration file; they are [`Secret`]s and never printed.
//! - An account's `limiter` and `risk` tables override `[broker]`'s key by key, so an account
//!   states only what differs.

use std::collections::HashSet;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::limiter::LimiterConfig;
use super::risk::RiskLimits;
use super::settings::{BrokerSettings, host_of, live_refusal};
use crate::domain::{AccountId, InvalidSetting, Secret, Venue};

/// One `[[accounts]]` entry as written; [`resolve`] turns it into an [`Account`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountSettings {
    pub id: String,
    /// The environment variable holding the API key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id_env: Option<String>,
    /// The environment variable holding the secret key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_env: Option<String>,
    /// A file holding the API key id (surrounding whitespace is ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id_file: Option<String>,
    /// A file holding the secret key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_file: Option<String>,
    /// The trading API; `broker.base_url` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Required, with the live base URL, to trade this account with real money;
    /// `broker.enable_live_trading` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_live_trading: Option<bool>,
    /// Overrides of `[broker.limiter]` for this account's trading quota.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub limiter: serde_json::Map<String, serde_json::Value>,
    /// Overrides of `[broker.risk]` for this account's orders.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub risk: serde_json::Map<String, serde_json::Value>,
}

/// One account as herd trades it: validated, keys read.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: AccountId,
    pub key_id: Secret,
    pub secret_key: Secret,
    pub base_url: String,
    pub limiter: LimiterConfig,
    pub risk: RiskLimits,
}

impl Account {
    /// Which venue this account trades on: no key is the embedded simulator.
    pub fn venue(&self) -> Venue {
        if !self.key_id.is_set() {
            Venue::Simulator
        } else if host_of(&self.base_url).as_deref() == Some(super::LIVE_TRADING_HOST) {
            Venue::AlpacaLive
        } else {
            Venue::AlpacaPaper
        }
    }
}

/// Where [`resolve`] reads a variable named by `key_id_env` or `secret_key_env`.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The accounts herd trades: `[[accounts]]` resolved, or the one `[broker]` describes.
pub fn resolve(
    raw: &[AccountSettings],
    broker: &BrokerSettings,
    env: EnvLookup<'_>,
) -> Result<Vec<Account>, InvalidSetting> {
    if raw.is_empty() {
        return Ok(vec![Account {
            id: AccountId::default_account(),
            key_id: broker.key_id.clone(),
            secret_key: broker.secret_key.clone(),
            base_url: broker.base_url.clone(),
            limiter: broker.limiter.clone(),
            risk: broker.risk.clone(),
        }]);
    }
    if broker.key_id.is_set() {
        return Err(InvalidSetting::new(
            "broker.key_id",
            "(set)",
            "must be empty when [[accounts]] are configured: each account names its own keys \
             (key_id_env or key_id_file); unset ALPACA_API_KEY / APCA_API_KEY_ID",
        ));
    }
    let mut ids = HashSet::new();
    let mut accounts = Vec::with_capacity(raw.len());
    for (i, settings) in raw.iter().enumerate() {
        let account = resolve_one(i, settings, broker, env)?;
        if !ids.insert(account.id.clone()) {
            return Err(InvalidSetting::new(
                format!("accounts[{i}].id"),
                format!("{:?}", settings.id),
                "duplicate id; every account needs a unique id",
            ));
        }
        accounts.push(account);
    }
    let with_keys = accounts.iter().filter(|a| a.key_id.is_set()).count();
    if with_keys != 0 && with_keys != accounts.len() {
        let i = accounts
            .iter()
            .position(|a| !a.key_id.is_set())
            .unwrap_or(0);
        return Err(InvalidSetting::new(
            format!("accounts[{i}].key_id_env"),
            "(absent)",
            "every account needs keys, or none does (then all run on the embedded simulator)",
        ));
    }
    Ok(accounts)
}

fn resolve_one(
    i: usize,
    raw: &AccountSettings,
    broker: &BrokerSettings,
    env: EnvLookup<'_>,
) -> Result<Account, InvalidSetting> {
    let key = |field: &str| format!("accounts[{i}].{field}");
    let id = AccountId::parse(&raw.id)
        .map_err(|allowed| InvalidSetting::new(key("id"), format!("{:?}", raw.id), allowed))?;
    let key_id = read_key(
        i,
        ("key_id_env", raw.key_id_env.as_deref()),
        ("key_id_file", raw.key_id_file.as_deref()),
        env,
    )?;
    let secret_key = read_key(
        i,
        ("secret_key_env", raw.secret_key_env.as_deref()),
        ("secret_key_file", raw.secret_key_file.as_deref()),
        env,
    )?;
    if key_id.is_set() != secret_key.is_set() {
        let (missing, present) = if key_id.is_set() {
            ("secret_key_env", "key id")
        } else {
            ("key_id_env", "secret key")
        };
        return Err(InvalidSetting::new(
            key(missing),
            "(absent)",
            format!(
                "required because the account's {present} is set; give both keys (from _env or \
                 _file), or neither to use the embedded simulator"
            ),
        ));
    }
    let base_url = raw
        .base_url
        .clone()
        .unwrap_or_else(|| broker.base_url.clone());
    if host_of(&base_url).is_none() {
        return Err(InvalidSetting::new(
            key("base_url"),
            format!("{base_url:?}"),
            "must be an http:// or https:// URL",
        ));
    }
    let limiter: LimiterConfig = overridden(&broker.limiter, &raw.limiter, &key("limiter"))?;
    limiter.check(&key("limiter"))?;
    let risk: RiskLimits = overridden(&broker.risk, &raw.risk, &key("risk"))?;
    risk.check(&key("risk"))?;
    let account = Account {
        id,
        key_id,
        secret_key,
        base_url,
        limiter,
        risk,
    };
    let live_enabled = raw
        .enable_live_trading
        .unwrap_or(broker.enable_live_trading);
    if account.venue() == Venue::AlpacaLive && !live_enabled {
        return Err(live_refusal(&key("base_url"), &account.base_url));
    }
    Ok(account)
}

/// A key from its variable or its file: exactly one of the two, or neither (no key).
fn read_key(
    i: usize,
    (env_field, variable): (&str, Option<&str>),
    (file_field, path): (&str, Option<&str>),
    env: EnvLookup<'_>,
) -> Result<Secret, InvalidSetting> {
    let key = |field: &str| format!("accounts[{i}].{field}");
    match (variable, path) {
        (None, None) => Ok(Secret::new("")),
        (Some(_), Some(_)) => Err(InvalidSetting::new(
            key(file_field),
            format!("{:?}", path.unwrap_or_default()),
            format!("set {env_field} or {file_field}, not both"),
        )),
        (Some(name), None) => match env(name).filter(|v| !v.trim().is_empty()) {
            Some(value) => Ok(Secret::new(value.trim())),
            None => Err(InvalidSetting::new(
                key(env_field),
                format!("{name:?}"),
                "names an environment variable that is not set or empty",
            )),
        },
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                InvalidSetting::new(
                    key(file_field),
                    format!("{path:?}"),
                    format!("cannot read: {e}"),
                )
            })?;
            if text.trim().is_empty() {
                return Err(InvalidSetting::new(
                    key(file_field),
                    format!("{path:?}"),
                    "the file is empty",
                ));
            }
            Ok(Secret::new(text.trim()))
        }
    }
}

/// `base` with the keys of `overrides` replaced; a key `base` does not have is refused by
/// `T`'s own `deny_unknown_fields`, named under `section`.
fn overridden<T: Serialize + DeserializeOwned>(
    base: &T,
    overrides: &serde_json::Map<String, serde_json::Value>,
    section: &str,
) -> Result<T, InvalidSetting> {
    let mut merged = match serde_json::to_value(base) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    for (k, v) in overrides {
        merged.insert(k.clone(), v.clone());
    }
    serde_json::from_value(serde_json::Value::Object(merged)).map_err(|e| {
        let shown = serde_json::Value::Object(overrides.clone());
        InvalidSetting::new(section, shown, e.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker() -> BrokerSettings {
        crate::settings::Settings::load(&crate::settings::LoadOptions::default())
            .expect("defaults load")
            .broker
    }

    fn account(id: &str) -> AccountSettings {
        AccountSettings {
            id: id.into(),
            ..AccountSettings::default()
        }
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn without_accounts_broker_is_the_default_account() {
        let accounts = resolve(&[], &broker(), &no_env).expect("resolves");
        assert_eq!(accounts.len(), 1);
        assert_eq!(accounts[0].id.as_str(), "default");
        assert_eq!(accounts[0].venue(), Venue::Simulator);
    }

    #[test]
    fn keys_come_from_the_named_variable_or_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("secret");
        std::fs::write(&file, "s3cret\n").expect("write");
        let mut a = account("fund-a");
        a.key_id_env = Some("FUND_A_KEY".into());
        a.secret_key_file = Some(file.display().to_string());
        let env = |name: &str| (name == "FUND_A_KEY").then(|| "AKFUNDA".to_owned());
        let accounts = resolve(&[a], &broker(), &env).expect("resolves");
        assert_eq!(accounts[0].key_id.expose(), "AKFUNDA");
        assert_eq!(accounts[0].secret_key.expose(), "s3cret");
        assert_eq!(accounts[0].venue(), Venue::AlpacaPaper);
    }

    #[test]
    fn every_refusal_names_its_key() {
        let refused = |accounts: &[AccountSettings]| {
            resolve(accounts, &broker(), &no_env)
                .expect_err("refused")
                .to_string()
        };
        let mut unset = account("a");
        unset.key_id_env = Some("NOPE".into());
        assert!(refused(&[unset]).starts_with("accounts[0].key_id_env = \"NOPE\""));
        assert!(refused(&[account("a"), account("a")]).starts_with("accounts[1].id"));
        assert!(refused(&[account("no spaces")]).starts_with("accounts[0].id"));
        let mut quota = account("a");
        quota
            .limiter
            .insert("requests_per_minute".into(), serde_json::json!(1));
        assert!(refused(&[quota]).starts_with("accounts[0].limiter.requests_per_minute"));
        let mut typo = account("a");
        typo.risk
            .insert("max_ordr_value".into(), serde_json::json!(5));
        let message = refused(&[typo]);
        assert!(message.starts_with("accounts[0].risk"), "{message}");
        assert!(message.contains("max_ordr_value"), "{message}");
        let mut live = account("a");
        live.base_url = Some("https://api.alpaca.markets".into());
        live.key_id_file = Some("/dev/null".into());
        assert!(refused(&[live]).starts_with("accounts[0].key_id_file"));
    }

    #[test]
    fn accounts_override_broker_limits_key_by_key() {
        let mut a = account("small");
        a.risk
            .insert("max_order_value".into(), serde_json::json!(500));
        let accounts = resolve(&[a, account("big")], &broker(), &no_env).expect("resolves");
        let base = broker().risk;
        assert_eq!(
            accounts[0].risk.max_order_value,
            Some(rust_decimal::Decimal::from(500))
        );
        assert_eq!(accounts[0].risk.max_daily_loss, base.max_daily_loss);
        assert_eq!(accounts[1].risk, base);
    }

    #[test]
    fn keys_on_some_accounts_only_are_refused() {
        let mut keyed = account("a");
        keyed.key_id_env = Some("K".into());
        keyed.secret_key_env = Some("S".into());
        let env = |_: &str| Some("x".to_owned());
        let message = resolve(&[keyed, account("b")], &broker(), &env)
            .expect_err("refused")
            .to_string();
        assert!(message.starts_with("accounts[1].key_id_env"), "{message}");
    }

    #[test]
    fn a_live_account_needs_live_trading_enabled() {
        let mut live = account("a");
        live.key_id_env = Some("K".into());
        live.secret_key_env = Some("S".into());
        live.base_url = Some("https://api.alpaca.markets".into());
        let env = |_: &str| Some("x".to_owned());
        let message = resolve(std::slice::from_ref(&live), &broker(), &env)
            .expect_err("refused")
            .to_string();
        assert!(message.starts_with("accounts[0].base_url"), "{message}");
        live.enable_live_trading = Some(true);
        let accounts = resolve(&[live], &broker(), &env).expect("resolves");
        assert_eq!(accounts[0].venue(), Venue::AlpacaLive);
    }
}
