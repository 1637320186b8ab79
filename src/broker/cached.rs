//! What the broker keeps in the shared cache, and under which keys.
//!
//! Invariant: each key is only ever stored with its own kind of value (`Bars` under a bars key,
//! the clock under `Clock`, …), so a reader that finds another kind treats it as a miss.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use super::alpaca::models::{Account, Clock, Position};
use super::windows::Kept;
use crate::cache::{Cache, CacheActor};
use crate::domain::{AccountId, Bar, Session, Symbol, Timeframe};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CacheKey {
    Bars {
        symbol: Symbol,
        timeframe: Timeframe,
        session: Session,
    },
    /// A window kept for topping up (`windows.rs`), past the expiry of its `Bars`.
    Window {
        symbol: Symbol,
        timeframe: Timeframe,
        session: Session,
    },
    Clock,
    /// Each account's own: the clock is the venue's, positions and account are not.
    Positions(AccountId),
    Account(AccountId),
}

#[derive(Debug, Clone)]
pub enum CacheValue {
    /// The newest closed bars, oldest first, and how many were asked for: a later request for
    /// more bars than that is a miss.
    Bars {
        bars: Arc<[Bar]>,
        depth: usize,
        /// The newest final bar's start when they were fetched: they serve only while no newer
        /// bar is final.
        cutoff: DateTime<Utc>,
    },
    Window(Kept),
    /// The venue clock and when (real time) it was read, so readers can extrapolate it.
    Clock(Clock, Instant),
    Positions(Arc<[Position]>),
    Account(Box<Account>),
}

/// The cache as the broker uses it.
pub type MarketCache = Cache<CacheKey, CacheValue>;
/// The CacheActor that sweeps it and answers stats and clear.
pub type MarketCacheActor = CacheActor<CacheKey, CacheValue>;
