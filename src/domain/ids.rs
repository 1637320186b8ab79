//! Identifiers: of strategy instances, instruments, orders and supervised children.
//!
//! Invariants:
//! - An [`InstanceId`] is 1–40 characters of `[A-Za-z0-9_-]`: it appears in metric labels, log
//!   fields and (hashed) in every `client_order_id`, so it must be safe in all three.
//! - A [`Symbol`] is upper-case and trimmed: `" spy"` and `"SPY"` are the same instrument.
//! - A [`ClientOrderId`] fits Alpaca's 48-character limit.
//! - An [`AccountId`] follows an instance id's rules: it is a metric label and a child's name.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The name of a supervised child: `broker`, `cache`, `metrics`, or a strategy instance id.
pub type ChildId = Arc<str>;

/// The unique name of one configured strategy instance (`strategies[].id`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
#[schema(value_type = String)]
pub struct InstanceId(Arc<str>);

impl InstanceId {
    pub const MAX_LEN: usize = 40;

    /// Parses an instance id; the error says what is allowed (the caller names the value).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let valid = !raw.is_empty()
            && raw.len() <= Self::MAX_LEN
            && raw
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if valid {
            Ok(Self(raw.into()))
        } else {
            Err(format!(
                "an id is 1-{} characters of letters, digits, '-' and '_'",
                Self::MAX_LEN
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The name of one brokerage account herd trades (`accounts[].id`; `default` when the account
/// comes from `[broker]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
#[schema(value_type = String)]
pub struct AccountId(Arc<str>);

impl AccountId {
    /// The account `[broker]`'s keys describe when no `[[accounts]]` are configured.
    pub const DEFAULT: &str = "default";

    /// Parses an account id; the error says what is allowed (the caller names the value).
    pub fn parse(raw: &str) -> Result<Self, String> {
        InstanceId::parse(raw).map(|id| Self(id.0))
    }

    pub fn default_account() -> Self {
        Self(Self::DEFAULT.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The supervised child that drives this account: `broker` for the default account (as
    /// before accounts existed), `broker-<id>` for the others.
    pub fn broker_child(&self) -> String {
        if self.as_str() == Self::DEFAULT {
            "broker".to_owned()
        } else {
            format!("broker-{}", self.0)
        }
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A map keyed by symbol, hashed with foldhash rather than std's SipHash. Every view, bars
/// batch and cached window is looked up by symbol thousands of times a cycle, and SipHash (built
/// to resist flooding by adversarial keys) was 4.6 % of herd's CPU at 1,000 instances; foldhash
/// is still seeded per map at random, and symbols come from the configuration and the venue.
pub type SymbolMap<V> = std::collections::HashMap<Symbol, V, foldhash::fast::RandomState>;

/// A tradable instrument's ticker, normalised to upper case.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String)]
pub struct Symbol(Arc<str>);

impl Symbol {
    /// Parses a symbol, trimmed and upper-cased; the error says what is allowed (the caller
    /// names the value).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim().to_ascii_uppercase();
        let valid = !s.is_empty()
            && s.len() <= 16
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '/');
        if valid {
            Ok(Self(s.into()))
        } else {
            Err("a symbol is 1-16 characters of letters, digits, '.' and '/'".to_owned())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Symbol {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value).map_err(|e| format!("{value:?}: {e}"))
    }
}

impl From<Symbol> for String {
    fn from(value: Symbol) -> Self {
        value.0.to_string()
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The id herd gives an order before sending it, so that the venue can deduplicate it.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(transparent)]
pub struct ClientOrderId(String);

impl ClientOrderId {
    /// Alpaca's older documentation limits ids to 48 characters; herd stays within it.
    pub const MAX_LEN: usize = 48;

    pub fn new(raw: String) -> Self {
        debug_assert!(raw.len() <= Self::MAX_LEN);
        Self(raw)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientOrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbol_is_trimmed_and_upper_cased() {
        assert_eq!(Symbol::parse(" spy ").unwrap().as_str(), "SPY");
        assert!(Symbol::parse("").is_err());
        assert!(Symbol::parse("S P Y").is_err());
    }

    #[test]
    fn instance_id_rejects_characters_unsafe_in_labels() {
        assert!(InstanceId::parse("momentum-etf_1").is_ok());
        assert!(InstanceId::parse("has space").is_err());
        assert!(InstanceId::parse(&"x".repeat(41)).is_err());
    }
}
