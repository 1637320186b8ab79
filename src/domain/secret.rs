//! Credentials read from configuration.
//!
//! Invariant: a [`Secret`] never reaches a log line, a `Debug` print or `check-config` output;
//! serialising it writes `"[redacted]"` (or `""` when unset, so an operator can tell the two apart).

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

#[derive(Clone, Default)]
pub struct Secret(Option<SecretString>);

impl Secret {
    pub fn new(value: &str) -> Self {
        if value.is_empty() {
            Self(None)
        } else {
            Self(Some(SecretString::from(value.to_owned())))
        }
    }

    pub fn is_set(&self) -> bool {
        self.0.is_some()
    }

    /// The clear text, for the one place that needs it: the HTTP header sent to the broker.
    pub fn expose(&self) -> &str {
        self.0.as_ref().map_or("", |s| s.expose_secret())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_set() { "[redacted]" } else { "\"\"" })
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.is_set() { "[redacted]" } else { "" })
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Environment values are parsed by type, so an all-digit key arrives as a number.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Int(i64),
            Float(f64),
        }
        Ok(match Raw::deserialize(d)? {
            Raw::Text(s) => Secret::new(s.trim()),
            Raw::Int(i) => Secret::new(&i.to_string()),
            Raw::Float(x) => Secret::new(&x.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_redacted_in_debug_and_serialisation() {
        let s = Secret::new("PKSECRET");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"[redacted]\"");
        assert_eq!(s.expose(), "PKSECRET");
        assert_eq!(serde_json::to_string(&Secret::default()).unwrap(), "\"\"");
    }
}
