//! The one shape of a configuration error: which key, which value, what is allowed.
//!
//! Every section of the configuration checks its own values and answers with an
//! [`InvalidSetting`]; the settings loader prefixes nothing and adds nothing, so the operator
//! reads the same line whichever section refused.

use std::fmt;

use super::HumanDuration;

/// A refused configuration value. Display: `key = value: allowed`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key} = {value}: {allowed}")]
pub struct InvalidSetting {
    /// The key as written in TOML, with array indexes (`strategies[1].every`).
    pub key: String,
    /// The refused value, quoted when it is text.
    pub value: String,
    /// What would be accepted.
    pub allowed: String,
}

impl InvalidSetting {
    pub fn new(
        key: impl Into<String>,
        value: impl fmt::Display,
        allowed: impl Into<String>,
    ) -> Self {
        Self {
            key: key.into(),
            value: value.to_string(),
            allowed: allowed.into(),
        }
    }
}

/// Refuses a zero duration.
pub fn positive(key: &str, value: HumanDuration) -> Result<(), InvalidSetting> {
    if value.get().is_zero() {
        return Err(InvalidSetting::new(
            key,
            format!("{:?}", value.to_string()),
            "must be longer than zero",
        ));
    }
    Ok(())
}
