//! Per-symbol market parameters: resolution of config overrides over built-in values.
//!
//! Any valid ticker can be asked for. Well-known tickers get plausible built-in levels
//! (price, volume, listing exchange); any other ticker gets a start price derived from the
//! ticker and seed, so two unknown tickers do not trade at the same price.
//!
//! Precedence, per field: `sim.symbols.<T>` > `sim.defaults` > built-in table > generic value.

use serde::{Deserialize, Serialize};

use super::rng::{KeyedRng, Stream};
use crate::sim::value::{SimConfigError, bad, check_range};

/// Per-symbol market parameters. Every field is optional: unset fields come from `defaults`,
/// then from the built-in table of well-known tickers, then from generic values.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SymbolParams {
    /// Price at the first session of the start day.
    pub start_price: Option<f64>,
    /// Annualised drift (0.05 = +5 % a year of trading time).
    pub drift: Option<f64>,
    /// Annualised volatility (0.2 = 20 %), over 252 sessions of 390 minutes.
    pub volatility: Option<f64>,
    /// Strength of trending regimes, as a price move per hour (0.035 = 3.5 % an hour).
    pub trend: Option<f64>,
    /// Average traded shares per minute; bounds fills (see `max_fill_share`).
    pub volume: Option<f64>,
    /// Listing exchange reported on positions and assets (a value alpaca-py accepts).
    pub exchange: Option<String>,
    /// A stock split at this time (RFC 3339): bars before it are served in pre-split prices
    /// unless the request asks for split adjustment. Meant to lie before the sim's start: the
    /// simulated prices themselves are the adjusted ones.
    pub split_at: Option<String>,
    /// Shares after the split per share before it (2 = a 2-for-1 split), with `split_at`.
    pub split_ratio: Option<f64>,
}

impl SymbolParams {
    /// Checks every set field; `prefix` is the key path below `sim.` (`defaults`, `symbols.SPY`).
    pub fn validate(&self, prefix: &str) -> Result<(), SimConfigError> {
        if let Some(p) = self.start_price
            && !(p.is_finite() && (0.01..=1_000_000.0).contains(&p))
        {
            return Err(bad(
                &format!("{prefix}.start_price"),
                p,
                "a price from 0.01 to 1000000",
            ));
        }
        if let Some(d) = self.drift {
            check_range(&format!("{prefix}.drift"), d, -2.0, 2.0)?;
        }
        if let Some(v) = self.volatility {
            check_range(&format!("{prefix}.volatility"), v, 0.0, 5.0)?;
        }
        if let Some(t) = self.trend {
            check_range(&format!("{prefix}.trend"), t, 0.0, 0.2)?;
        }
        if let Some(v) = self.volume
            && !(v.is_finite() && (1.0..=1e9).contains(&v))
        {
            return Err(bad(
                &format!("{prefix}.volume"),
                v,
                "1 to 1e9 shares per minute",
            ));
        }
        match (&self.split_at, self.split_ratio) {
            (None, None) => {}
            (Some(at), Some(ratio)) => {
                if chrono::DateTime::parse_from_rfc3339(at).is_err() {
                    return Err(bad(
                        &format!("{prefix}.split_at"),
                        format!("{at:?}"),
                        "an RFC 3339 time, e.g. \"2026-03-02T14:00:00Z\"",
                    ));
                }
                if !(ratio.is_finite() && (0.01..=100.0).contains(&ratio) && ratio != 1.0) {
                    return Err(bad(
                        &format!("{prefix}.split_ratio"),
                        ratio,
                        "from 0.01 to 100, not 1 (2 = a 2-for-1 split, 0.1 = a 1-for-10 reverse split)",
                    ));
                }
            }
            _ => {
                return Err(bad(
                    &format!("{prefix}.split_at"),
                    "(only one of split_at, split_ratio)",
                    "both split_at and split_ratio, or neither",
                ));
            }
        }
        if let Some(x) = &self.exchange
            && !EXCHANGES.contains(&x.as_str())
        {
            return Err(bad(
                &format!("{prefix}.exchange"),
                format!("{x:?}"),
                &format!("one of {}", EXCHANGES.join(", ")),
            ));
        }
        Ok(())
    }
}

/// Listing exchanges alpaca-py accepts on positions and assets (its `AssetExchange` enum).
pub const EXCHANGES: &[&str] = &[
    "AMEX", "ARCA", "ASCX", "BATS", "NYSE", "NASDAQ", "NYSEARCA", "OTC",
];

/// Resolved parameters of one symbol.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    pub start_price: f64,
    /// Annualised drift.
    pub drift: f64,
    /// Annualised volatility.
    pub volatility: f64,
    /// Trend strength: fractional move per hour in a trending regime.
    pub trend: f64,
    /// Average shares per minute.
    pub volume: f64,
    pub exchange: String,
    /// A split: (time in epoch seconds, shares after per share before).
    pub split: Option<(i64, f64)>,
}

/// Trading minutes per year used to scale annualised parameters (252 sessions of 390 minutes).
pub const MINUTES_PER_YEAR: f64 = 252.0 * 390.0;

const GENERIC_DRIFT: f64 = 0.05;
const GENERIC_VOLATILITY: f64 = 0.25;
/// 3.5 % an hour: trending stretches (20–90 minutes) move 1–5 %, so herd's default momentum
/// threshold (±2 % over 20 five-minute bars) sees a move within 50 sim minutes of almost any
/// start (a rise, which a flat instance buys on, within 50 minutes of 82 % of starts).
const GENERIC_TREND: f64 = 0.035;
const GENERIC_VOLUME: f64 = 20_000.0;

/// (ticker, start price, annual volatility, shares per minute, exchange). Prices are round
/// recent levels; they only need to look familiar.
const BUILT_IN: &[(&str, f64, f64, f64, &str)] = &[
    ("SPY", 550.0, 0.18, 150_000.0, "ARCA"),
    ("QQQ", 480.0, 0.22, 100_000.0, "NASDAQ"),
    ("IWM", 210.0, 0.24, 60_000.0, "ARCA"),
    ("DIA", 420.0, 0.17, 10_000.0, "ARCA"),
    ("AAPL", 220.0, 0.28, 120_000.0, "NASDAQ"),
    ("MSFT", 420.0, 0.26, 60_000.0, "NASDAQ"),
    ("NVDA", 120.0, 0.50, 600_000.0, "NASDAQ"),
    ("AMZN", 190.0, 0.32, 100_000.0, "NASDAQ"),
    ("GOOGL", 170.0, 0.30, 60_000.0, "NASDAQ"),
    ("META", 520.0, 0.38, 40_000.0, "NASDAQ"),
    ("TSLA", 240.0, 0.60, 250_000.0, "NASDAQ"),
    ("AMD", 150.0, 0.50, 120_000.0, "NASDAQ"),
    ("JPM", 210.0, 0.24, 25_000.0, "NYSE"),
    ("XOM", 115.0, 0.26, 40_000.0, "NYSE"),
    ("GLD", 230.0, 0.15, 20_000.0, "ARCA"),
    ("SLV", 27.0, 0.28, 25_000.0, "ARCA"),
    ("TLT", 95.0, 0.16, 80_000.0, "NASDAQ"),
];

/// True for tickers the simulator accepts: 1–10 characters of A–Z, 0–9 and '.'.
pub fn is_valid_symbol(symbol: &str) -> bool {
    (1..=10).contains(&symbol.len())
        && symbol
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'.')
        && symbol.as_bytes()[0].is_ascii_uppercase()
}

/// Resolves the parameters of `symbol`.
pub fn resolve(
    symbol: &str,
    seed: u64,
    defaults: &SymbolParams,
    overrides: Option<&SymbolParams>,
) -> Params {
    let built_in = BUILT_IN.iter().find(|(t, ..)| *t == symbol);
    let pick = |f: fn(&SymbolParams) -> Option<f64>| overrides.and_then(f).or_else(|| f(defaults));
    let start_price = pick(|p| p.start_price)
        .or(built_in.map(|b| b.1))
        .unwrap_or_else(|| unknown_ticker_price(symbol, seed));
    let exchange = overrides
        .and_then(|p| p.exchange.clone())
        .or_else(|| defaults.exchange.clone())
        .or(built_in.map(|b| b.4.to_string()))
        .unwrap_or_else(|| "NASDAQ".to_string());
    Params {
        start_price,
        drift: pick(|p| p.drift).unwrap_or(GENERIC_DRIFT),
        volatility: pick(|p| p.volatility)
            .or(built_in.map(|b| b.2))
            .unwrap_or(GENERIC_VOLATILITY),
        trend: pick(|p| p.trend).unwrap_or(GENERIC_TREND),
        volume: pick(|p| p.volume)
            .or(built_in.map(|b| b.3))
            .unwrap_or(GENERIC_VOLUME),
        exchange,
        split: overrides.and_then(|p| {
            let at = chrono::DateTime::parse_from_rfc3339(p.split_at.as_deref()?).ok()?;
            Some((at.timestamp(), p.split_ratio?))
        }),
    }
}

/// A start price for an unknown ticker: log-uniform between $15 and $400, fixed by the ticker.
fn unknown_ticker_price(symbol: &str, seed: u64) -> f64 {
    let mut rng = KeyedRng::new(seed, symbol, Stream::Ticker, 0);
    let x = rng.uniform();
    let p = (15f64.ln() + x * (400f64.ln() - 15f64.ln())).exp();
    (p * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_is_symbol_then_defaults_then_built_in() {
        let defaults = SymbolParams {
            volatility: Some(0.4),
            ..SymbolParams::default()
        };
        let spy = resolve("SPY", 42, &defaults, None);
        assert_eq!(spy.start_price, 550.0);
        assert_eq!(spy.volatility, 0.4);
        assert_eq!(spy.exchange, "ARCA");
        let over = SymbolParams {
            start_price: Some(10.0),
            ..SymbolParams::default()
        };
        let spy = resolve("SPY", 42, &defaults, Some(&over));
        assert_eq!(spy.start_price, 10.0);
    }

    #[test]
    fn unknown_tickers_get_a_stable_plausible_price() {
        let a = resolve("ZZZZ", 42, &SymbolParams::default(), None);
        let b = resolve("ZZZZ", 42, &SymbolParams::default(), None);
        assert_eq!(a, b);
        assert!((15.0..=400.0).contains(&a.start_price));
        assert_eq!(a.exchange, "NASDAQ");
    }

    #[test]
    fn symbol_syntax() {
        assert!(is_valid_symbol("SPY"));
        assert!(is_valid_symbol("BRK.B"));
        assert!(!is_valid_symbol("spy"));
        assert!(!is_valid_symbol(""));
        assert!(!is_valid_symbol("BTC/USD"));
        assert!(!is_valid_symbol("ABCDEFGHIJK"));
    }
}
