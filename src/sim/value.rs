//! Value types and checks shared by every section of the `[sim]` table: humantime durations
//! and the one shape of a configuration error.
//!
//! Invariant: every [`SimConfigError`] names the key below `sim.`, the value and what is
//! allowed, in one line.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written as a humantime string ("2s", "1m 30s", "250ms").
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct SimDuration(pub Duration);

impl SimDuration {
    pub const ZERO: SimDuration = SimDuration(Duration::ZERO);

    pub fn from_millis(ms: u64) -> Self {
        SimDuration(Duration::from_millis(ms))
    }
}

impl fmt::Debug for SimDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl fmt::Display for SimDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Serialize for SimDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for SimDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(text.trim())
            .map(SimDuration)
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "invalid duration {text:?} ({e}): expected a duration like \"2s\", \"250ms\" or \"1m 30s\""
                ))
            })
    }
}

/// A configuration value out of range: names the key, the value and what is allowed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid sim.{key} = {value}: {allowed}")]
pub struct SimConfigError {
    /// Key path below `sim.`, e.g. `faults.orders.error_rate`.
    pub key: String,
    /// The offending value as written.
    pub value: String,
    /// What would be accepted.
    pub allowed: String,
}

pub(crate) fn bad(key: &str, value: impl fmt::Display, allowed: &str) -> SimConfigError {
    SimConfigError {
        key: key.to_string(),
        value: value.to_string(),
        allowed: allowed.to_string(),
    }
}

/// Longest fill delay and fault hang accepted; longer values are almost surely unit mistakes.
pub(crate) const MAX_DELAY: Duration = Duration::from_secs(3600);

pub(crate) fn check_range(key: &str, v: f64, lo: f64, hi: f64) -> Result<(), SimConfigError> {
    if v.is_finite() && (lo..=hi).contains(&v) {
        Ok(())
    } else {
        Err(bad(key, v, &format!("a number from {lo} to {hi}")))
    }
}

pub(crate) fn check_delay(key: &str, d: SimDuration) -> Result<(), SimConfigError> {
    if d.0 <= MAX_DELAY {
        Ok(())
    } else {
        Err(bad(key, d, "at most 1h"))
    }
}
