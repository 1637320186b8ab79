//! `chaos`: a strategy kind that misbehaves on purpose, for supervision tests and drills.
//! Compiled only with the cargo feature `chaos`; a default build does not know the kind.
//!
//! It places no orders. On every tick of the current incarnation it may sleep (a slow tick) and
//! then panic, as its params say.
//!
//! Invariant: the tick counter belongs to the core, so a restart (fresh core) starts it at 0.

use serde::{Deserialize, Serialize};

use super::Strategy;
use crate::domain::{DataNeeds, Decision, MarketView, Timeframe};

/// `[strategies.params]` of a `chaos` instance.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChaosParams {
    /// Panic on every Nth tick of the current incarnation.
    pub panic_every: Option<u64>,
    /// Panic on exactly these ticks (1-based) of the current incarnation.
    pub panic_on: Vec<u64>,
    /// Milliseconds to spend inside every tick.
    pub sleep_ms: u64,
}

impl ChaosParams {
    pub fn check(&self) -> Result<(), String> {
        if self.panic_every == Some(0) {
            return Err(".panic_every = 0: must be at least 1 (1 = panic on every tick)".into());
        }
        if self.sleep_ms > 60_000 {
            return Err(format!(
                ".sleep_ms = {}: must be at most 60000",
                self.sleep_ms
            ));
        }
        Ok(())
    }
}

pub struct Chaos {
    params: ChaosParams,
    ticks: u64,
}

impl Chaos {
    pub fn new(params: ChaosParams) -> Self {
        Self { params, ticks: 0 }
    }
}

impl Strategy for Chaos {
    fn needs(&self) -> DataNeeds {
        DataNeeds {
            timeframe: Timeframe::Minutes(1),
            bars: 0,
            account: false,
            only_when_open: false,
        }
    }

    fn decide(&mut self, _: &MarketView) -> Vec<Decision> {
        self.ticks += 1;
        if self.params.sleep_ms > 0 {
            // Blocking is the point: the core runs on the blocking pool, like a CPU-heavy one.
            std::thread::sleep(std::time::Duration::from_millis(self.params.sleep_ms));
        }
        let every = self
            .params
            .panic_every
            .is_some_and(|n| self.ticks.is_multiple_of(n));
        if every || self.params.panic_on.contains(&self.ticks) {
            panic!("chaos: planned panic on tick {}", self.ticks);
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panics_on_every_nth_tick_counted_per_incarnation() {
        let mut c = Chaos::new(ChaosParams {
            panic_every: Some(3),
            ..ChaosParams::default()
        });
        let view = MarketView::default();
        assert!(c.decide(&view).is_empty());
        assert!(c.decide(&view).is_empty());
        let third = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.decide(&view)));
        assert!(third.is_err());
        let mut fresh = Chaos::new(ChaosParams {
            panic_every: Some(3),
            ..ChaosParams::default()
        });
        assert!(
            fresh.decide(&view).is_empty(),
            "a fresh core starts counting again"
        );
    }

    #[test]
    fn panics_on_listed_ticks_only() {
        let mut c = Chaos::new(ChaosParams {
            panic_on: vec![2],
            ..ChaosParams::default()
        });
        let view = MarketView::default();
        assert!(c.decide(&view).is_empty());
        assert!(
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.decide(&view))).is_err()
        );
        assert!(c.decide(&view).is_empty());
    }
}
