//! `[broker]`: where orders go, how herd talks to the venue, and the checks of every value.
//!
//! Invariant: settings that passed [`BrokerSettings::check`] can trade safely: credentials come
//! in pairs, URLs are http(s), and Alpaca's live host is refused unless live trading is enabled.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::breaker::BreakerConfig;
use super::limiter::LimiterConfig;
use super::retry::RetryConfig;
use super::risk::RiskLimits;
use crate::domain::{HumanDuration, InvalidSetting, Secret, Venue, positive};

/// Where orders go and how herd talks to it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerSettings {
    /// Empty key and secret: herd runs against the embedded simulator.
    pub key_id: Secret,
    pub secret_key: Secret,
    pub base_url: String,
    pub data_url: String,
    /// Market-data feed (`iex` works on free plans; `sip` needs a subscription).
    pub feed: String,
    /// States that the account has Alpaca's SIP data subscription: required for `feed = "sip"`,
    /// because without one Alpaca answers a `sip` request for recent bars with data 15 minutes
    /// old, silently.
    pub sip_subscription: bool,
    /// Corporate-action adjustment of bars: `raw`, `split`, `dividend` or `all`.
    pub adjustment: String,
    /// Every upstream HTTP call is cancelled after this long.
    pub call_timeout: HumanDuration,
    /// How often orders that are not yet final are looked up.
    pub order_poll: HumanDuration,
    /// Required, together with the live base URL, to trade real money.
    pub enable_live_trading: bool,
    /// Bar requests of all instances arriving within this window go out as one request.
    pub batch_window: HumanDuration,
    /// A bar is final this long (venue time) after its interval ends; herd never decides on a
    /// newer one. Alpaca publishes a minute bar a few seconds after the minute and revises it
    /// for about 10 s as late trades are reported.
    pub bar_settle: HumanDuration,
    /// Circuit breakers, one per operation, all with these thresholds.
    pub breaker: BreakerConfig,
    /// Retries of reads (orders are never retried blindly).
    pub retry: RetryConfig,
    /// The trading API's request quota.
    pub limiter: LimiterConfig,
    /// The market-data API's request quota (Alpaca counts it separately).
    pub data_limiter: LimiterConfig,
    /// Pre-trade risk limits; an order that breaks one is refused before it is sent.
    pub risk: RiskLimits,
}

/// Alpaca's live trading host: orders sent there spend real money.
pub const LIVE_TRADING_HOST: &str = "api.alpaca.markets";

/// The bar adjustments Alpaca's market-data API accepts.
const ADJUSTMENTS: &[&str] = &["raw", "split", "dividend", "all"];

/// The feeds Alpaca's market-data API accepts.
const FEEDS: &[&str] = &["iex", "sip", "delayed_sip", "otc", "boats", "overnight"];

impl BrokerSettings {
    /// Which venue these settings reach: no key is the embedded simulator.
    pub fn venue(&self) -> Venue {
        if !self.key_id.is_set() {
            Venue::Simulator
        } else if host_of(&self.base_url).as_deref() == Some(LIVE_TRADING_HOST) {
            Venue::AlpacaLive
        } else {
            Venue::AlpacaPaper
        }
    }

    /// Every value of `[broker]` and its sub-tables.
    pub fn check(&self) -> Result<(), InvalidSetting> {
        let either = "set both, or neither to use the embedded simulator";
        match (self.key_id.is_set(), self.secret_key.is_set()) {
            (true, false) => {
                return Err(InvalidSetting::new(
                    "broker.secret_key",
                    "\"\"",
                    format!("required when broker.key_id (ALPACA_API_KEY) is set; {either}"),
                ));
            }
            (false, true) => {
                return Err(InvalidSetting::new(
                    "broker.key_id",
                    "\"\"",
                    format!("required when broker.secret_key (ALPACA_SECRET_KEY) is set; {either}"),
                ));
            }
            _ => {}
        }
        for (key, url) in [
            ("broker.base_url", &self.base_url),
            ("broker.data_url", &self.data_url),
        ] {
            if host_of(url).is_none() {
                let value = format!("{url:?}");
                return Err(InvalidSetting::new(
                    key,
                    value,
                    "must be an http:// or https:// URL",
                ));
            }
        }
        if self.feed == "sip" && !self.sip_subscription {
            return Err(InvalidSetting::new(
                "broker.feed",
                "\"sip\"",
                "needs broker.sip_subscription = true, stating that the account has Alpaca's SIP \
                 subscription (without it Alpaca serves recent SIP bars 15 minutes old, silently); \
                 otherwise use \"iex\"",
            ));
        }
        if !ADJUSTMENTS.contains(&self.adjustment.as_str()) {
            return Err(InvalidSetting::new(
                "broker.adjustment",
                format!("{:?}", self.adjustment),
                format!("allowed: {}", ADJUSTMENTS.join(", ")),
            ));
        }
        if !FEEDS.contains(&self.feed.as_str()) {
            return Err(InvalidSetting::new(
                "broker.feed",
                format!("{:?}", self.feed),
                format!("allowed: {}", FEEDS.join(", ")),
            ));
        }
        positive("broker.call_timeout", self.call_timeout)?;
        positive("broker.order_poll", self.order_poll)?;
        if self.batch_window.get() > Duration::from_secs(1) {
            return Err(InvalidSetting::new(
                "broker.batch_window",
                format!("{:?}", self.batch_window.to_string()),
                "must be at most \"1s\" (it delays every tick by up to this much)",
            ));
        }
        if self.bar_settle.get() > Duration::from_secs(300) {
            return Err(InvalidSetting::new(
                "broker.bar_settle",
                format!("{:?}", self.bar_settle.to_string()),
                "must be at most \"5m\" (every decision waits this long after its bar)",
            ));
        }
        self.breaker.check()?;
        if self.breaker.half_open_max <= self.call_timeout {
            return Err(InvalidSetting::new(
                "broker.breaker.half_open_max",
                format!("{:?}", self.breaker.half_open_max.to_string()),
                format!(
                    "must be longer than broker.call_timeout ({}): a trial call needs time to answer",
                    self.call_timeout
                ),
            ));
        }
        self.retry.check()?;
        self.limiter.check("broker.limiter")?;
        self.data_limiter.check("broker.data_limiter")?;
        self.risk.check("broker.risk")?;
        if self.venue() == Venue::AlpacaLive && !self.enable_live_trading {
            return Err(live_refusal("broker.base_url", &self.base_url));
        }
        Ok(())
    }
}

/// The refusal of a live trading URL without live trading enabled.
pub(super) fn live_refusal(key: &str, url: &str) -> InvalidSetting {
    InvalidSetting::new(
        key,
        format!("{url:?}"),
        "is Alpaca's LIVE trading host; set ENABLE_LIVE_TRADING=true (broker.enable_live_trading) to trade real money, or use https://paper-api.alpaca.markets",
    )
}

/// The host of an http(s) URL, or `None` if it is not one.
pub(super) fn host_of(url: &str) -> Option<String> {
    let parsed = reqwest::Url::parse(url).ok()?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return None;
    }
    parsed.host_str().map(str::to_ascii_lowercase)
}
