//! Parsing what clients send: query parameters and loosely typed JSON values.
//!
//! The official SDKs disagree on types (alpaca-py sends numbers and `True`, the JS SDK strings
//! and `true`), so decimals are accepted as JSON numbers or strings, booleans as JSON booleans
//! or strings in any case, and times as RFC 3339 with any offset and 0–9 fractional digits, or
//! as a bare date.
//!
//! Invariant: every parse failure names the parameter and becomes a 4xx Alpaca body, never a
//! panic.

use std::str::FromStr;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use rust_decimal::Decimal;
use serde_json::Value;

use super::error::ApiError;
use crate::sim::calendar::ny_midnight;
use crate::sim::market::is_valid_symbol;

/// Query parameters of one request (the last value wins when a name repeats).
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        Params(pairs)
    }

    /// The value of `name`, None when absent or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    pub fn time(
        &self,
        name: &str,
        err: fn(String) -> ApiError,
    ) -> Result<Option<DateTime<Utc>>, ApiError> {
        self.get(name)
            .map(|v| {
                parse_time(v).ok_or_else(|| {
                    err(format!(
                        "invalid {name}: {v:?} is not an RFC 3339 time or date"
                    ))
                })
            })
            .transpose()
    }

    pub fn bool(&self, name: &str, err: fn(String) -> ApiError) -> Result<Option<bool>, ApiError> {
        self.get(name)
            .map(|v| {
                parse_bool(v).ok_or_else(|| err(format!("invalid {name}: {v:?} is not a boolean")))
            })
            .transpose()
    }

    pub fn int(
        &self,
        name: &str,
        range: std::ops::RangeInclusive<u64>,
        err: fn(String) -> ApiError,
    ) -> Result<Option<u64>, ApiError> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        match v.parse::<u64>() {
            Ok(n) if range.contains(&n) => Ok(Some(n)),
            _ => Err(err(format!(
                "invalid {name}: {name} must be between {} and {}",
                range.start(),
                range.end()
            ))),
        }
    }

    pub fn decimal(
        &self,
        name: &str,
        err: fn(String) -> ApiError,
    ) -> Result<Option<Decimal>, ApiError> {
        self.get(name)
            .map(|v| {
                parse_decimal_str(v)
                    .ok_or_else(|| err(format!("invalid {name}: {v:?} is not a number")))
            })
            .transpose()
    }

    /// `asc` / `desc` of `name`, defaulting to `default_desc`.
    pub fn direction(
        &self,
        name: &str,
        default_desc: bool,
        err: fn(String) -> ApiError,
    ) -> Result<bool, ApiError> {
        match self.get(name) {
            None => Ok(default_desc),
            Some(v) if v.eq_ignore_ascii_case("asc") => Ok(false),
            Some(v) if v.eq_ignore_ascii_case("desc") => Ok(true),
            Some(v) => Err(err(format!("invalid {name}: {v:?}, use asc or desc"))),
        }
    }

    /// A comma-separated symbol list, validated, sorted and without duplicates.
    pub fn symbols(
        &self,
        name: &str,
        err: fn(String) -> ApiError,
    ) -> Result<Option<Vec<String>>, ApiError> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        let mut out = Vec::new();
        for s in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            out.push(symbol(s).map_err(|_| err(format!("invalid symbol: {s}")))?);
        }
        out.sort();
        out.dedup();
        Ok(Some(out))
    }
}

/// A ticker as the simulator knows it: upper-cased, then checked.
pub fn symbol(text: &str) -> Result<String, ApiError> {
    let s = text.trim().to_ascii_uppercase();
    if is_valid_symbol(&s) {
        Ok(s)
    } else {
        Err(ApiError::invalid(format!("invalid symbol: {text}")))
    }
}

/// RFC 3339 with any offset and fraction; a bare date means New York midnight; a naive
/// date-time means UTC.
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    let t = text.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Some(dt.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Some(ny_midnight(d));
    }
    NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|n| n.and_utc())
}

pub fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

fn parse_decimal_str(text: &str) -> Option<Decimal> {
    let t = text.trim();
    Decimal::from_str(t)
        .or_else(|_| Decimal::from_scientific(t))
        .ok()
}

/// A decimal given as a JSON number or string; `Ok(None)` for absent or null.
pub fn json_decimal(body: &Value, name: &str) -> Result<Option<Decimal>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => parse_decimal_str(&n.to_string())
            .map(Some)
            .ok_or_else(|| ApiError::invalid(format!("invalid {name}"))),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => parse_decimal_str(s)
            .map(Some)
            .ok_or_else(|| ApiError::invalid(format!("invalid {name}: {s:?} is not a number"))),
        Some(_) => Err(ApiError::invalid(format!(
            "invalid {name}: expected a number"
        ))),
    }
}

/// A boolean given as a JSON boolean or string.
pub fn json_bool(body: &Value, name: &str) -> Result<Option<bool>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) => parse_bool(s)
            .map(Some)
            .ok_or_else(|| ApiError::invalid(format!("invalid {name}: {s:?} is not a boolean"))),
        Some(_) => Err(ApiError::invalid(format!(
            "invalid {name}: expected a boolean"
        ))),
    }
}

/// A string field; `Ok(None)` for absent, null or empty.
pub fn json_str<'a>(body: &'a Value, name: &str) -> Result<Option<&'a str>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::invalid(format!(
            "invalid {name}: expected a string"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn times_in_every_form_the_sdks_send() {
        let a = parse_time("2024-01-02T00:00:00+00:00").expect("py form");
        let b = parse_time("2024-01-02T00:00:00.000Z").expect("js form");
        let c = parse_time("2024-01-02T00:00:00.123456789Z").expect("nanos");
        assert_eq!(a, b);
        assert!(c > a);
        assert_eq!(
            parse_time("2024-01-02").map(|t| t.to_rfc3339()),
            Some("2024-01-02T05:00:00+00:00".to_string())
        );
        assert!(parse_time("yesterday").is_none());
    }

    #[test]
    fn decimals_and_booleans_accept_both_sdk_styles() {
        let body = json!({"qty": 1.5, "limit_price": "10.25", "extended_hours": "True", "n": null});
        assert_eq!(
            json_decimal(&body, "qty"),
            Ok(Some("1.5".parse().expect("dec")))
        );
        assert_eq!(
            json_decimal(&body, "limit_price"),
            Ok(Some("10.25".parse().expect("dec")))
        );
        assert_eq!(json_decimal(&body, "n"), Ok(None));
        assert_eq!(json_bool(&body, "extended_hours"), Ok(Some(true)));
        assert!(json_decimal(&json!({"qty": "ten"}), "qty").is_err());
        assert!(json_decimal(&json!({"qty": [1]}), "qty").is_err());
    }

    #[test]
    fn symbol_lists_are_sorted_and_deduplicated() {
        let p = Params::new(vec![("symbols".into(), "qqq, SPY,spy".into())]);
        assert_eq!(
            p.symbols("symbols", ApiError::invalid_data).expect("ok"),
            Some(vec!["QQQ".to_string(), "SPY".to_string()])
        );
        let p = Params::new(vec![("symbols".into(), "SPY,BTC/USD".into())]);
        assert!(p.symbols("symbols", ApiError::invalid_data).is_err());
    }
}
