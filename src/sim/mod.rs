//! The embedded Alpaca-compatible market simulator: herd's default venue, the venue of every
//! integration test, and the fault injector of every resilience test.
//!
//! It serves Alpaca's Trading API v2 and Market Data API v2 paths on one loopback port over
//! real HTTP, so herd (and the official SDKs) use the same code path as against Alpaca.
//!
//! Map:
//! - `config`: the `[sim]` table assembled from each part's settings, defaults, validation;
//!   `value`: the duration type and error shape every part's settings share.
//! - `calendar`, `clock`: market sessions in New York time; sim time = start + real × speed.
//! - `market`: seeded, reproducible prices and bars (synthetic regimes or CSV replay).
//! - `exchange`: accounts, orders, positions, matching.
//! - `api`: HTTP routes by endpoint group, the gateway middleware (auth, rate limit, faults,
//!   stats) and the control endpoints under `/__sim`.
//! - `auth`, `ratelimit`, `faults`, `stats`: the gateway's parts.
//! - `state`, `server`: shared state and the HTTP server; `cli`: flags of `herd sim`.
//!
//! Invariants:
//! - Every response under `/v2` has Alpaca's shape; no request can make the simulator panic.
//! - A closed bar never changes, and the same seed gives the same prices whatever the order
//!   or timing of requests.
//! - Sim time drives bars, order times and the clock alike.

mod api;
mod auth;
mod calendar;
mod cli;
mod clock;
mod config;
mod exchange;
mod faults;
mod market;
mod ratelimit;
mod server;
mod state;
mod stats;
mod value;

use std::sync::{Mutex, MutexGuard, PoisonError};

pub use calendar::MarketHours;
pub use cli::SimArgs;
pub use config::{Redacted, SimConfig};
pub use faults::{FaultSpec, FaultsConfig, LostAs};
pub use market::SymbolParams;
pub use server::{SPEED_HEADER, SimError, SimServer};
pub use value::{SimConfigError, SimDuration};

/// Locks `m`, recovering the data if a thread panicked while holding it: every critical section
/// leaves the state consistent before it can panic, so the data is still usable.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
