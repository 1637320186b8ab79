//! Work a neural core asks for off its tick, and what comes back (see `workshop.rs`, which
//! does it, and the `Strategy::work` / `Strategy::finished` pair, which carries it).

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::model::{Model, NetConfig};
use crate::domain::Symbol;

/// Heavy work for the shared workshop.
#[derive(Debug, Clone)]
pub enum Work {
    /// The saved model of `symbol`, if one trained under `config` exists.
    Load { symbol: Symbol, config: NetConfig },
    /// A model of `symbol` trained on `closes` (oldest first, the newest bar starting at
    /// `through`), saved once trained.
    Train {
        symbol: Symbol,
        closes: Vec<f64>,
        through: DateTime<Utc>,
        config: NetConfig,
    },
}

impl Work {
    pub fn symbol(&self) -> &Symbol {
        match self {
            Work::Load { symbol, .. } | Work::Train { symbol, .. } => symbol,
        }
    }
}

/// The outcome of one [`Work`].
#[derive(Debug, Clone)]
pub struct Finished {
    pub symbol: Symbol,
    /// The model (none saved, for a load that found none), or why there is none.
    pub outcome: Result<Option<Arc<Model>>, String>,
}
