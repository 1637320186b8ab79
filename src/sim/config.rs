//! The simulator's configuration: the `[sim]` table of herd's config file, its defaults and its
//! validation.
//!
//! Each part's own settings type lives with the code it configures (`market::SymbolParams`,
//! `faults::FaultSpec`, `calendar::MarketHours`); this module assembles them into the table and
//! hands each part what it needs ([`SimConfig::market`], [`SimConfig::exchange`]). Imports flow
//! one way: no part imports this module.
//!
//! Invariants:
//! - Every key has a default, so an empty `[sim]` table (or none) is a working simulator.
//! - Unknown keys are rejected at every level (`deny_unknown_fields`), so a typo fails loudly.
//! - [`SimConfig::validate`] checks every value; its error names the key as `sim.<key>`, the bad
//!   value and what is allowed, in one line.
//! - Durations are humantime strings ("2s", "250ms"): env overrides arrive as strings anyway.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::FromPrimitive;
use serde::{Deserialize, Serialize, Serializer};

use super::calendar::MarketHours;
use super::exchange::{Costs, Settings as ExchangeSettings};
use super::faults::FaultsConfig;
use super::market::{MarketConfig, SymbolParams, is_valid_symbol};
use super::value::{MAX_DELAY, SimConfigError, SimDuration, bad, check_range};

/// The `[sim]` table. README's "The simulator" describes every key for users.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    /// Sim seconds per real second. 100 closes a 5-minute bar every 3 real seconds, so a new user
    /// sees strategies trade at once. 0 freezes the clock; it then moves only through
    /// `POST /__sim/clock`, which makes tests deterministic.
    pub speed: f64,
    /// Seed of every random choice (prices, regimes, fault dice). Same seed, same prices.
    pub seed: u64,
    /// Sim time at startup (RFC 3339). Unset: the wall clock at startup floored to the minute, so
    /// the sim's "today" is the user's today.
    pub start: Option<String>,
    /// "always" (open around the clock: the embedded default, so trades happen at once) or
    /// "regular" (09:30–16:00 America/New_York on weekdays).
    pub market_hours: MarketHours,
    /// Days of history before `start` that bars exist for; strategies need lookback at once.
    pub history_days: u32,
    /// Cash of every new account (one account per API key id).
    pub initial_cash: f64,
    /// Account margin multiplier, as Alpaca reports it: 1 (cash account, no shorting), 2 or 4.
    pub margin_multiplier: u32,
    /// Whether sells beyond the long position may open short positions (needs multiplier ≥ 2).
    pub shorting: bool,
    /// Quoted bid/ask spread in basis points of the price; market orders pay half of it.
    pub spread_bps: f64,
    /// Extra adverse price movement, in basis points, on market and triggered stop fills.
    pub slippage_bps: f64,
    /// Largest share of one minute's volume a single order may fill in that minute; larger
    /// orders fill partially over several minutes.
    pub max_fill_share: f64,
    /// Sim time between an order becoming active and its first fill chance. Real venues are not
    /// instant, and a non-zero delay makes clients poll `GET /v2/orders/{id}` as against Alpaca.
    pub fill_delay: SimDuration,
    /// Requests per minute per API key (trading and market data counted apart, as Alpaca does),
    /// counted in real time because it protects the server. 0 disables.
    pub rate_limit: u32,
    /// When set (with `secret_key`), only this key pair is accepted; otherwise any non-empty pair.
    pub key_id: Option<String>,
    /// The secret paired with `key_id`. Redacted when the config is printed.
    pub secret_key: Option<Redacted>,
    /// Directory of `SYMBOL.csv` files with OHLCV bars to replay (format in README's "The
    /// simulator").
    pub csv_dir: Option<PathBuf>,
    /// Most bars on one page, whatever `limit` asks (Alpaca caps pages at 10000). Lower it to
    /// exercise client paging.
    pub max_page_size: u32,
    /// Whether prices move through regimes (trending, mean-reverting, volatile, calm); false
    /// gives plain geometric Brownian motion with each symbol's drift and volatility.
    pub regimes: bool,
    /// Sim time after an intraday bar's interval ends before it is served. Alpaca's minute bars
    /// appear a few seconds after the minute; 0 serves a bar the instant it ends.
    pub bar_delay: SimDuration,
    /// Share of minutes without a trade on the `iex` feed (0 to 0.9): such a minute has no bar,
    /// and coarser `iex` bars are built from the minutes that have one, as on Alpaca's IEX
    /// feed, where a thinly traded minute leaves a gap. Other feeds are unaffected.
    pub iex_empty_minutes: f64,
    /// For this long after it is first served, an intraday bar is served with provisional
    /// values (close and volume off their final ones), as Alpaca revises recent bars when late
    /// trades are reported (for about 10 s). 0: bars are final when first served.
    pub bar_revision: SimDuration,
    /// Parameters applied to every symbol; per-symbol entries in `symbols` override them.
    pub defaults: SymbolParams,
    /// Per-symbol parameters, keyed by ticker (case-insensitive).
    pub symbols: BTreeMap<String, SymbolParams>,
    /// Faults injected from startup, per endpoint group; also settable at run time.
    pub faults: FaultsConfig,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            speed: 100.0,
            seed: 42,
            start: None,
            market_hours: MarketHours::Always,
            history_days: 365,
            initial_cash: 100_000.0,
            margin_multiplier: 2,
            shorting: true,
            spread_bps: 2.0,
            slippage_bps: 1.0,
            max_fill_share: 0.1,
            fill_delay: SimDuration(Duration::from_secs(2)),
            rate_limit: 200,
            key_id: None,
            secret_key: None,
            csv_dir: None,
            max_page_size: 10_000,
            regimes: true,
            bar_delay: SimDuration::ZERO,
            bar_revision: SimDuration::ZERO,
            iex_empty_minutes: 0.0,
            defaults: SymbolParams::default(),
            symbols: BTreeMap::new(),
            faults: FaultsConfig::default(),
        }
    }
}

/// A secret string: deserialised as given, never printed or serialised in clear.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Redacted(pub String);

impl Redacted {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"[redacted]\"")
    }
}

impl Serialize for Redacted {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("[redacted]")
    }
}

impl SimConfig {
    /// What the market is built from.
    pub fn market(&self) -> MarketConfig<'_> {
        MarketConfig {
            seed: self.seed,
            hours: self.market_hours,
            regimes: self.regimes,
            bar_delay: self.bar_delay.0,
            bar_revision: self.bar_revision.0,
            history_days: self.history_days,
            defaults: &self.defaults,
            symbols: &self.symbols,
        }
    }

    /// What the exchange is built from.
    pub fn exchange(&self) -> ExchangeSettings {
        ExchangeSettings {
            initial_cash: Decimal::from_f64(self.initial_cash)
                .unwrap_or(Decimal::ZERO)
                .round_dp(2),
            multiplier: self.margin_multiplier,
            shorting: self.shorting && self.margin_multiplier >= 2,
            costs: Costs {
                spread_bps: self.spread_bps,
                slippage_bps: self.slippage_bps,
                max_fill_share: self.max_fill_share,
            },
            fill_delay: TimeDelta::from_std(self.fill_delay.0).unwrap_or(TimeDelta::zero()),
            hours: self.market_hours,
        }
    }

    /// Checks every value; the error names the key (as `sim.<key>`), the bad value and what is
    /// allowed.
    pub fn validate(&self) -> Result<(), SimConfigError> {
        if !(self.speed.is_finite() && (0.0..=1_000_000.0).contains(&self.speed)) {
            return Err(bad(
                "speed",
                self.speed,
                "a number from 0 (frozen clock) to 1000000",
            ));
        }
        self.start_time()?;
        if !(1..=3650).contains(&self.history_days) {
            return Err(bad("history_days", self.history_days, "1 to 3650 days"));
        }
        if !(self.initial_cash.is_finite() && self.initial_cash >= 0.0 && self.initial_cash <= 1e12)
        {
            return Err(bad("initial_cash", self.initial_cash, "0 to 1e12 dollars"));
        }
        if ![1, 2, 4].contains(&self.margin_multiplier) {
            return Err(bad(
                "margin_multiplier",
                self.margin_multiplier,
                "1, 2 or 4",
            ));
        }
        check_range("spread_bps", self.spread_bps, 0.0, 1000.0)?;
        check_range("slippage_bps", self.slippage_bps, 0.0, 1000.0)?;
        if !(self.max_fill_share.is_finite()
            && self.max_fill_share > 0.0
            && self.max_fill_share <= 1.0)
        {
            return Err(bad(
                "max_fill_share",
                self.max_fill_share,
                "a share of minute volume above 0 and at most 1",
            ));
        }
        if self.fill_delay.0 > MAX_DELAY {
            return Err(bad("fill_delay", self.fill_delay, "at most 1h of sim time"));
        }
        match (&self.key_id, &self.secret_key) {
            (Some(k), Some(s)) if !k.is_empty() && !s.expose().is_empty() => {}
            (None, None) => {}
            (Some(k), _) if k.is_empty() => {
                return Err(bad("key_id", "\"\"", "a non-empty key id, or unset"));
            }
            (Some(_), _) => {
                return Err(bad(
                    "secret_key",
                    "(unset or empty)",
                    "a non-empty secret whenever sim.key_id is set",
                ));
            }
            (None, Some(_)) => {
                return Err(bad(
                    "key_id",
                    "(unset)",
                    "a key id whenever sim.secret_key is set",
                ));
            }
        }
        if let Some(dir) = &self.csv_dir
            && dir.as_os_str().is_empty()
        {
            return Err(bad("csv_dir", "\"\"", "a directory path, or unset"));
        }
        check_range("iex_empty_minutes", self.iex_empty_minutes, 0.0, 0.9)?;
        for (key, value) in [
            ("bar_delay", self.bar_delay),
            ("bar_revision", self.bar_revision),
        ] {
            if value.0 > Duration::from_secs(3600) {
                return Err(bad(
                    key,
                    format!("{:?}", value.to_string()),
                    "at most \"1h\"",
                ));
            }
        }
        if !(1..=10_000).contains(&self.max_page_size) {
            return Err(bad("max_page_size", self.max_page_size, "1 to 10000 bars"));
        }
        self.defaults.validate("defaults")?;
        for (symbol, params) in &self.symbols {
            // Upper-cased first: environment overrides reach `config` lower-cased.
            if !is_valid_symbol(&symbol.to_ascii_uppercase()) {
                return Err(bad(
                    &format!("symbols.{symbol}"),
                    symbol,
                    "a ticker of 1 to 10 characters A-Z, 0-9 or '.'",
                ));
            }
            params.validate(&format!("symbols.{symbol}"))?;
        }
        self.faults.trading.validate("faults.trading")?;
        self.faults.data.validate("faults.data")?;
        self.faults.orders.validate("faults.orders")?;
        Ok(())
    }

    /// The configured start time, or `None` for "the wall clock at startup".
    pub fn start_time(&self) -> Result<Option<DateTime<Utc>>, SimConfigError> {
        match &self.start {
            None => Ok(None),
            Some(text) => DateTime::parse_from_rfc3339(text.trim())
                .map(|t| Some(t.with_timezone(&Utc)))
                .map_err(|_| {
                    bad(
                        "start",
                        format!("{text:?}"),
                        "an RFC 3339 time such as \"2024-03-04T14:30:00Z\", or unset for now",
                    )
                }),
        }
    }
}

#[cfg(test)]
mod tests;
