//! Shared state of one simulator run, handed to every handler.
//!
//! Why `std::sync::Mutex`: every critical section is short, CPU-only work (no `.await` inside),
//! and the server runs on a single worker thread, so locks are uncontended; an async mutex
//! would add nothing. The market and the exchange share ONE lock (`venue`) because matching
//! reads prices while it changes accounts: one lock cannot deadlock, and an order never sees a
//! half-updated market.

use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};

use super::auth::Pinned;
use super::clock::SimClock;
use super::config::SimConfig;
use super::exchange::Exchange;
use super::faults::Faults;
use super::lock;
use super::market::Market;
use super::ratelimit::RateLimiter;
use super::stats::Stats;

/// The market and the accounts trading on it.
pub struct Venue {
    pub market: Market,
    pub exchange: Exchange,
}

pub struct SimState {
    /// The validated configuration the run started with.
    pub config: SimConfig,
    /// Sim time at startup.
    pub start: DateTime<Utc>,
    pub clock: SimClock,
    pub pinned: Pinned,
    pub venue: Mutex<Venue>,
    pub faults: Mutex<Faults>,
    pub limiter: Mutex<RateLimiter>,
    pub stats: Mutex<Stats>,
}

impl SimState {
    pub fn new(config: SimConfig, start: DateTime<Utc>, market: Market) -> Self {
        let pinned = Pinned(match (&config.key_id, &config.secret_key) {
            (Some(k), Some(s)) => Some((k.clone(), s.expose().to_string())),
            _ => None,
        });
        Self {
            clock: SimClock::new(start, config.speed),
            start,
            pinned,
            venue: Mutex::new(Venue {
                market,
                exchange: Exchange::new(config.exchange()),
            }),
            faults: Mutex::new(Faults::new(config.seed, &config.faults)),
            limiter: Mutex::new(RateLimiter::new(config.rate_limit)),
            stats: Mutex::new(Stats::default()),
            config,
        }
    }

    pub fn venue(&self) -> MutexGuard<'_, Venue> {
        lock(&self.venue)
    }

    /// Runs `f` on the exchange and the market at the current sim time, under the venue lock
    /// (read once, so one response describes one instant).
    pub fn with_venue<R>(
        &self,
        f: impl FnOnce(&mut Exchange, &mut Market, DateTime<Utc>) -> R,
    ) -> R {
        let now = self.clock.now();
        let mut venue = self.venue();
        let Venue { market, exchange } = &mut *venue;
        f(exchange, market, now)
    }
}
