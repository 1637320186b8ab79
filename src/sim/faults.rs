//! Fault injection: what can go wrong with a request, per endpoint group, and the dice.
//!
//! This module only decides; `api::gateway` applies the decision around the real handler.
//! Faults before the handler (429, 5xx, hang, reset) leave no trace in the exchange; faults
//! after it (malformed body, lost response) happen to requests that did take effect — the
//! "order accepted but the client never heard" case that idempotency must survive.
//!
//! Invariants:
//! - Dice come from a stream seeded by `sim.seed`, so a fault sequence is reproducible for a
//!   given request order.
//! - A spec with `count = N` applies to the next N matching requests of its group, then the
//!   group is clean again. Rates of 1.0 with a count make tests deterministic.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::market::{KeyedRng, Stream};
use super::value::{SimConfigError, SimDuration, check_delay, check_range};

/// Endpoint groups faults are configured for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Group {
    /// Account, clock, calendar, assets, positions.
    Trading,
    /// Market data (`/v2/stocks/...`).
    Data,
    /// Orders (`/v2/orders...`).
    Orders,
}

impl Group {
    pub const ALL: [Group; 3] = [Group::Trading, Group::Data, Group::Orders];

    pub fn name(self) -> &'static str {
        match self {
            Group::Trading => "trading",
            Group::Data => "data",
            Group::Orders => "orders",
        }
    }

    fn index(self) -> usize {
        match self {
            Group::Trading => 0,
            Group::Data => 1,
            Group::Orders => 2,
        }
    }
}

/// How a lost response shows itself to the client. Parsed from text so that a wrong value is
/// answered with the allowed ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum LostAs {
    /// A 5xx (`error_status`) with an Alpaca-like body.
    #[default]
    Error,
    /// The request hangs for `hang`, past any sane client timeout, then gets a 504.
    Timeout,
    /// The connection is closed without a complete response.
    Reset,
    /// A 403 refusal with Alpaca's insufficient-buying-power body, although the request took
    /// effect: orders reported as refused that executed (alpaca-trade-api-js#255).
    Refused,
}

impl TryFrom<String> for LostAs {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        match text.trim() {
            "error" => Ok(Self::Error),
            "timeout" => Ok(Self::Timeout),
            "reset" => Ok(Self::Reset),
            "refused" => Ok(Self::Refused),
            _ => Err(format!(
                "{text:?} is not a lost_response_as; allowed: error, timeout, reset, refused"
            )),
        }
    }
}

/// Faults of one endpoint group. Every rate is a probability per request in [0, 1].
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultSpec {
    /// 5xx before the request reaches the exchange (no effect).
    pub error_rate: f64,
    /// Status of injected errors (500–599).
    pub error_status: u16,
    /// Added latency on every request of the group (real time).
    pub latency: SimDuration,
    /// Extra latency drawn uniformly from [0, jitter] per request.
    pub latency_jitter: SimDuration,
    /// The request hangs for `hang` (no effect), then gets a 504.
    pub timeout_rate: f64,
    /// How long a timed-out request hangs (real time).
    pub hang: SimDuration,
    /// The connection is closed without a response (no effect).
    pub reset_rate: f64,
    /// The request takes effect but the body is truncated JSON.
    pub malformed_rate: f64,
    /// Chance that a request starts a burst of 429s (no effect).
    pub throttle_rate: f64,
    /// Length of a 429 burst, counting the request that starts it.
    pub throttle_burst: u32,
    /// The request takes effect but the response is lost (see `lost_response_as`).
    pub lost_response_rate: f64,
    pub lost_response_as: LostAs,
    /// HTTP methods affected (e.g. ["POST"]); empty means all.
    pub methods: Vec<String>,
    /// Apply to the next N matching requests only, then clear the group.
    pub count: Option<u32>,
}

impl Default for FaultSpec {
    fn default() -> Self {
        Self {
            error_rate: 0.0,
            error_status: 500,
            latency: SimDuration::ZERO,
            latency_jitter: SimDuration::ZERO,
            timeout_rate: 0.0,
            hang: SimDuration(Duration::from_secs(60)),
            reset_rate: 0.0,
            malformed_rate: 0.0,
            throttle_rate: 0.0,
            throttle_burst: 1,
            lost_response_rate: 0.0,
            lost_response_as: LostAs::Error,
            methods: Vec::new(),
            count: None,
        }
    }
}

/// Fault settings of the three endpoint groups.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultsConfig {
    /// `/v2/account`, `/v2/clock`, `/v2/calendar`, `/v2/assets`, `/v2/positions…`.
    pub trading: FaultSpec,
    /// `/v2/stocks/…` (market data).
    pub data: FaultSpec,
    /// `/v2/orders…`.
    pub orders: FaultSpec,
}

impl FaultSpec {
    /// Checks every value; `prefix` is the key path (e.g. `faults.orders`).
    pub fn validate(&self, prefix: &str) -> Result<(), SimConfigError> {
        for (key, rate) in [
            ("error_rate", self.error_rate),
            ("timeout_rate", self.timeout_rate),
            ("reset_rate", self.reset_rate),
            ("malformed_rate", self.malformed_rate),
            ("throttle_rate", self.throttle_rate),
            ("lost_response_rate", self.lost_response_rate),
        ] {
            check_range(&format!("{prefix}.{key}"), rate, 0.0, 1.0)?;
        }
        if !(500..=599).contains(&self.error_status) {
            return Err(SimConfigError {
                key: format!("{prefix}.error_status"),
                value: self.error_status.to_string(),
                allowed: "an HTTP status from 500 to 599".into(),
            });
        }
        check_delay(&format!("{prefix}.latency"), self.latency)?;
        check_delay(&format!("{prefix}.latency_jitter"), self.latency_jitter)?;
        check_delay(&format!("{prefix}.hang"), self.hang)?;
        if !(1..=10_000).contains(&self.throttle_burst) {
            return Err(SimConfigError {
                key: format!("{prefix}.throttle_burst"),
                value: self.throttle_burst.to_string(),
                allowed: "1 to 10000 requests".into(),
            });
        }
        for m in &self.methods {
            if !["GET", "POST", "PATCH", "PUT", "DELETE"].contains(&m.to_ascii_uppercase().as_str())
            {
                return Err(SimConfigError {
                    key: format!("{prefix}.methods"),
                    value: format!("{m:?}"),
                    allowed: "HTTP methods among GET, POST, PATCH, PUT, DELETE".into(),
                });
            }
        }
        Ok(())
    }

    fn is_clean(&self) -> bool {
        *self == FaultSpec::default()
    }

    fn applies_to(&self, method: &str) -> bool {
        self.methods.is_empty() || self.methods.iter().any(|m| m.eq_ignore_ascii_case(method))
    }
}

/// What happens before the handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Before {
    Pass,
    Throttle,
    Error(u16),
    Hang(Duration),
    Reset,
}

/// What happens to the handler's response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    Pass,
    Malformed,
    Lost {
        how: LostAs,
        status: u16,
        hang: Duration,
    },
}

/// The decision for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub latency: Duration,
    pub before: Before,
    pub after: After,
}

impl Plan {
    pub const CLEAN: Plan = Plan {
        latency: Duration::ZERO,
        before: Before::Pass,
        after: After::Pass,
    };
}

/// Live fault state of the three groups.
pub struct Faults {
    groups: [GroupState; 3],
    /// Fault dice, seeded by `sim.seed`.
    rng: KeyedRng,
}

#[derive(Default)]
struct GroupState {
    spec: FaultSpec,
    /// Requests of a 429 burst still to throttle.
    burst_left: u32,
}

impl Faults {
    pub fn new(seed: u64, config: &FaultsConfig) -> Self {
        let mut faults = Faults {
            groups: Default::default(),
            rng: KeyedRng::new(seed, "", Stream::Faults, 0),
        };
        faults.set(Group::Trading, config.trading.clone());
        faults.set(Group::Data, config.data.clone());
        faults.set(Group::Orders, config.orders.clone());
        faults
    }

    /// Replaces the spec of a group (a default spec clears it).
    pub fn set(&mut self, group: Group, spec: FaultSpec) {
        self.groups[group.index()] = GroupState {
            spec,
            burst_left: 0,
        };
    }

    pub fn clear(&mut self) {
        for g in Group::ALL {
            self.set(g, FaultSpec::default());
        }
    }

    pub fn spec(&self, group: Group) -> &FaultSpec {
        &self.groups[group.index()].spec
    }

    /// Rolls the dice for one request of `group` with `method`.
    pub fn decide(&mut self, group: Group, method: &str) -> Plan {
        let state = &mut self.groups[group.index()];
        // A burst outlives the spec that started it: `count` limits how many requests may
        // start faults, not how long a started burst lasts.
        if state.burst_left > 0 && state.spec.applies_to(method) {
            state.burst_left -= 1;
            return Plan {
                before: Before::Throttle,
                ..Plan::CLEAN
            };
        }
        if state.spec.is_clean() || !state.spec.applies_to(method) {
            return Plan::CLEAN;
        }
        let spec = state.spec.clone();
        if let Some(n) = state.spec.count {
            if n <= 1 {
                state.spec = FaultSpec::default();
            } else {
                state.spec.count = Some(n - 1);
            }
        }
        let rng = &mut self.rng;
        let latency = spec.latency.0 + spec.latency_jitter.0.mul_f64(rng.uniform());
        let before = if roll(rng, spec.throttle_rate) {
            state.burst_left = spec.throttle_burst.saturating_sub(1);
            Before::Throttle
        } else if roll(rng, spec.error_rate) {
            Before::Error(spec.error_status)
        } else if roll(rng, spec.timeout_rate) {
            Before::Hang(spec.hang.0)
        } else if roll(rng, spec.reset_rate) {
            Before::Reset
        } else {
            Before::Pass
        };
        let after = if roll(rng, spec.lost_response_rate) {
            After::Lost {
                how: spec.lost_response_as,
                status: spec.error_status,
                hang: spec.hang.0,
            }
        } else if roll(rng, spec.malformed_rate) {
            After::Malformed
        } else {
            After::Pass
        };
        Plan {
            latency,
            before,
            after,
        }
    }
}

/// True with probability `p`; draws nothing when `p` is 0, so unused faults do not shift the
/// dice of the others.
fn roll(rng: &mut KeyedRng, p: f64) -> bool {
    p > 0.0 && rng.uniform() < p
}

/// Alpaca-like body of an injected status.
/// Alpaca's refusal of an order the account cannot pay for.
pub fn refusal_body() -> serde_json::Value {
    serde_json::json!({ "code": 40310000, "message": "insufficient buying power" })
}

pub fn error_body(status: u16) -> serde_json::Value {
    let message = match status {
        429 => "rate limit exceeded",
        500 => "internal server error",
        502 => "bad gateway",
        503 => "service unavailable",
        504 => "gateway timeout",
        _ => "server error",
    };
    serde_json::json!({ "code": u64::from(status) * 100_000 + 10_000, "message": message })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_groups_pass() {
        let mut f = Faults::new(1, &FaultsConfig::default());
        assert_eq!(f.decide(Group::Orders, "POST"), Plan::CLEAN);
    }

    #[test]
    fn counted_spec_applies_then_clears() {
        let mut f = Faults::new(1, &FaultsConfig::default());
        f.set(
            Group::Orders,
            FaultSpec {
                lost_response_rate: 1.0,
                methods: vec!["post".into()],
                count: Some(1),
                ..FaultSpec::default()
            },
        );
        assert_eq!(f.decide(Group::Orders, "GET"), Plan::CLEAN);
        let plan = f.decide(Group::Orders, "POST");
        assert!(matches!(
            plan.after,
            After::Lost {
                how: LostAs::Error,
                ..
            }
        ));
        assert_eq!(f.decide(Group::Orders, "POST"), Plan::CLEAN);
        assert!(f.spec(Group::Orders).is_clean());
    }

    #[test]
    fn throttle_bursts_last_their_length() {
        let mut f = Faults::new(1, &FaultsConfig::default());
        f.set(
            Group::Data,
            FaultSpec {
                throttle_rate: 1.0,
                throttle_burst: 3,
                count: Some(1),
                ..FaultSpec::default()
            },
        );
        // The spec is consumed by the first request; the burst it starts lasts three requests.
        let befores: Vec<Before> = (0..4)
            .map(|_| f.decide(Group::Data, "GET").before)
            .collect();
        assert_eq!(
            befores,
            vec![
                Before::Throttle,
                Before::Throttle,
                Before::Throttle,
                Before::Pass
            ]
        );
    }

    #[test]
    fn error_bodies_look_like_alpaca() {
        assert_eq!(error_body(500)["code"], 50010000);
        assert_eq!(error_body(429)["message"], "rate limit exceeded");
    }

    #[test]
    fn same_seed_same_dice() {
        let spec = FaultSpec {
            error_rate: 0.5,
            ..FaultSpec::default()
        };
        let run = || {
            let mut f = Faults::new(9, &FaultsConfig::default());
            f.set(Group::Trading, spec.clone());
            (0..32)
                .map(|_| f.decide(Group::Trading, "GET").before)
                .collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
    }
}
