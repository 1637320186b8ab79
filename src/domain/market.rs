//! Market values as Alpaca spells them: order sides, bar lengths, bars.
//!
//! Invariant: a [`Timeframe`] is one Alpaca accepts (`{1..59}Min`, `{1..23}Hour`, `1Day`), so a
//! value that parsed can always be sent upstream.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Order side, spelled as Alpaca spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which intraday bars a strategy instance decides on. Alpaca's intraday bars include the
/// pre- and post-market (04:00–20:00 New York time), thin and jumpy next to the regular session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Session {
    /// Only bars that start within the venue's regular session of their day (early closes
    /// included, from the venue's calendar).
    #[default]
    Regular,
    /// Every bar the venue has.
    Extended,
}

impl Session {
    pub const ALLOWED: &str = "regular or extended";

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "regular" => Some(Self::Regular),
            "extended" => Some(Self::Extended),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Regular => "regular",
            Self::Extended => "extended",
        }
    }
}

/// A bar length Alpaca's market-data API accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timeframe {
    Minutes(u8),
    Hours(u8),
    Day,
}

impl Timeframe {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let bad = || {
            format!("{raw:?}: a timeframe is NMin (N 1-59), NHour (N 1-23) or 1Day, e.g. \"5Min\"")
        };
        let split = raw.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (digits, unit) = raw.split_at(split);
        let n: u8 = digits.parse().map_err(|_| bad())?;
        match (unit, n) {
            ("Min", 1..=59) => Ok(Self::Minutes(n)),
            ("Hour", 1..=23) => Ok(Self::Hours(n)),
            ("Day", 1) => Ok(Self::Day),
            _ => Err(bad()),
        }
    }

    /// The length of one bar.
    pub fn duration(self) -> Duration {
        match self {
            Timeframe::Minutes(n) => Duration::from_secs(60 * u64::from(n)),
            Timeframe::Hours(n) => Duration::from_secs(3600 * u64::from(n)),
            Timeframe::Day => Duration::from_secs(86_400),
        }
    }
}

impl fmt::Display for Timeframe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Timeframe::Minutes(n) => write!(f, "{n}Min"),
            Timeframe::Hours(n) => write!(f, "{n}Hour"),
            Timeframe::Day => f.write_str("1Day"),
        }
    }
}

impl Serialize for Timeframe {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timeframe {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// One OHLCV bar as Alpaca's market-data API sends it (prices are JSON numbers there).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bar {
    /// Start of the bar's interval.
    #[serde(rename = "t")]
    pub time: DateTime<Utc>,
    #[serde(rename = "o")]
    pub open: f64,
    #[serde(rename = "h")]
    pub high: f64,
    #[serde(rename = "l")]
    pub low: f64,
    #[serde(rename = "c")]
    pub close: f64,
    #[serde(rename = "v")]
    pub volume: f64,
    /// Trade count; Alpaca may send null.
    #[serde(rename = "n", default)]
    pub trades: Option<f64>,
    /// Volume-weighted average price; Alpaca may send null.
    #[serde(rename = "vw", default)]
    pub vwap: Option<f64>,
}

#[cfg(test)]
impl Bar {
    /// A flat bar (open = high = low = close) for tests, whose known answers are closes.
    pub fn flat(time: DateTime<Utc>, close: f64) -> Self {
        Self {
            time,
            open: close,
            high: close,
            low: close,
            close,
            volume: 1e5,
            trades: None,
            vwap: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeframe_round_trips_alpaca_spelling() {
        for raw in ["1Min", "5Min", "15Min", "59Min", "1Hour", "23Hour", "1Day"] {
            assert_eq!(Timeframe::parse(raw).unwrap().to_string(), raw);
        }
    }

    #[test]
    fn timeframe_rejects_what_alpaca_rejects() {
        for raw in ["0Min", "60Min", "24Hour", "2Day", "5min", "Min", "", "5"] {
            assert!(Timeframe::parse(raw).is_err(), "{raw} should be rejected");
        }
    }
}
