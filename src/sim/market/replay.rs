//! Replay of user-owned OHLCV history from CSV files (placeholder until the loader lands).

use std::path::Path;

use chrono::{DateTime, NaiveDate, Utc};

use super::bar::Bar;
use crate::sim::calendar::MarketHours;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ReplayError(String);

#[derive(Default)]
pub struct Replay {}

impl Replay {
    pub fn load(_dir: &Path, _hours: MarketHours) -> Result<Self, ReplayError> {
        Err(ReplayError("CSV replay is not implemented yet".into()))
    }

    pub fn span(&self) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        None
    }

    pub fn continuation(&self, _symbol: &str) -> Option<(NaiveDate, f64)> {
        None
    }

    pub fn minutes(&self, _symbol: &str, _date: NaiveDate) -> Option<Vec<Bar>> {
        None
    }

    pub fn covers(&self, _symbol: &str, _date: NaiveDate) -> bool {
        false
    }
}
