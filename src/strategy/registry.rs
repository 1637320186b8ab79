//! The strategy kinds herd knows, their parameters, and how a core is built from a spec.
//!
//! Invariant: adding a kind means one variant here, one params type and one core file; nothing
//! else in herd matches on kinds.

use std::time::Duration;

use serde::Serialize;

use super::Strategy;
#[cfg(feature = "chaos")]
use super::chaos::{Chaos, ChaosParams};
use super::mean_reversion::{MeanReversion, MeanReversionParams};
use super::momentum::{Momentum, MomentumParams};
use super::neural::{NeuralForecast, NeuralForecastParams};
use super::portfolio_optimizer::{PortfolioOptimizer, PortfolioOptimizerParams};
use super::risk_manager::{RiskManager, RiskManagerParams};
use crate::domain::{AccountId, InstanceId, Session, Symbol};

/// One configured strategy instance, validated and ready to build (the settings loader makes
/// it from a `[[strategies]]` entry).
#[derive(Debug, Clone)]
pub struct StrategySpec {
    pub id: InstanceId,
    /// The account its orders go to.
    pub account: AccountId,
    pub kind: StrategyKind,
    pub symbols: Vec<Symbol>,
    /// Tick period in venue time.
    pub every: Duration,
    /// Which intraday bars it decides on.
    pub session: Session,
    pub params: StrategyParams,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StrategyKind {
    Momentum,
    MeanReversion,
    NeuralForecast,
    PortfolioOptimizer,
    RiskManager,
    /// Misbehaves on purpose; only in builds with the `chaos` feature.
    #[cfg(feature = "chaos")]
    Chaos,
}

impl StrategyKind {
    pub const ALL: &[StrategyKind] = &[
        StrategyKind::Momentum,
        StrategyKind::MeanReversion,
        StrategyKind::NeuralForecast,
        StrategyKind::PortfolioOptimizer,
        StrategyKind::RiskManager,
        #[cfg(feature = "chaos")]
        StrategyKind::Chaos,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StrategyKind::Momentum => "momentum",
            StrategyKind::MeanReversion => "mean_reversion",
            StrategyKind::NeuralForecast => "neural_forecast",
            StrategyKind::PortfolioOptimizer => "portfolio_optimizer",
            StrategyKind::RiskManager => "risk_manager",
            #[cfg(feature = "chaos")]
            StrategyKind::Chaos => "chaos",
        }
    }

    /// Parses a configured kind; the error lists the allowed ones.
    pub fn parse(raw: &str) -> Result<Self, String> {
        Self::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == raw)
            .ok_or_else(|| {
                let allowed: Vec<_> = Self::ALL.iter().map(|k| k.as_str()).collect();
                format!("unknown strategy kind; allowed: {}", allowed.join(", "))
            })
    }

    /// Whether an instance of this kind must list symbols.
    pub fn needs_symbols(self) -> bool {
        match self {
            StrategyKind::Momentum
            | StrategyKind::MeanReversion
            | StrategyKind::NeuralForecast
            | StrategyKind::PortfolioOptimizer => true,
            // Its symbols are those of the instances it guards.
            StrategyKind::RiskManager => false,
            #[cfg(feature = "chaos")]
            StrategyKind::Chaos => false,
        }
    }
}

/// Typed parameters of one instance; serialised as the params table itself (for `/strategies`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum StrategyParams {
    Momentum(MomentumParams),
    MeanReversion(MeanReversionParams),
    NeuralForecast(NeuralForecastParams),
    PortfolioOptimizer(PortfolioOptimizerParams),
    RiskManager(RiskManagerParams),
    #[cfg(feature = "chaos")]
    Chaos(ChaosParams),
}

impl StrategyParams {
    /// The instance ids these params name as guarded (a risk manager's `guard`).
    pub fn guarded(&self) -> &[String] {
        match self {
            Self::RiskManager(p) => &p.guard,
            _ => &[],
        }
    }

    /// Parses `[strategies.params]` for `kind`. The error continues the key `strategies[i].params`:
    /// either `.field = value: allowed` or `: what is wrong`.
    pub fn parse(
        kind: StrategyKind,
        raw: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Self, String> {
        let value = serde_json::Value::Object(raw.clone());
        let syntax = |e: serde_json::Error| format!(": {e}");
        match kind {
            StrategyKind::Momentum => {
                let p: MomentumParams = serde_json::from_value(value).map_err(syntax)?;
                p.check()?;
                Ok(Self::Momentum(p))
            }
            StrategyKind::MeanReversion => {
                let p: MeanReversionParams = serde_json::from_value(value).map_err(syntax)?;
                p.check()?;
                Ok(Self::MeanReversion(p))
            }
            StrategyKind::NeuralForecast => {
                let p: NeuralForecastParams = serde_json::from_value(value).map_err(syntax)?;
                p.check()?;
                Ok(Self::NeuralForecast(p))
            }
            StrategyKind::PortfolioOptimizer => {
                let p: PortfolioOptimizerParams = serde_json::from_value(value).map_err(syntax)?;
                p.check()?;
                Ok(Self::PortfolioOptimizer(p))
            }
            StrategyKind::RiskManager => {
                let p: RiskManagerParams = serde_json::from_value(value).map_err(syntax)?;
                p.check()?;
                Ok(Self::RiskManager(p))
            }
            #[cfg(feature = "chaos")]
            StrategyKind::Chaos => {
                let p: ChaosParams = serde_json::from_value(value).map_err(syntax)?;
                p.check()?;
                Ok(Self::Chaos(p))
            }
        }
    }
}

/// Builds a fresh core for one instance.
pub fn build(spec: &StrategySpec) -> Box<dyn Strategy> {
    match &spec.params {
        StrategyParams::Momentum(p) => Box::new(Momentum::new(spec.symbols.clone(), p.clone())),
        StrategyParams::MeanReversion(p) => {
            Box::new(MeanReversion::new(spec.symbols.clone(), p.clone()))
        }
        StrategyParams::NeuralForecast(p) => {
            Box::new(NeuralForecast::new(spec.symbols.clone(), p.clone()))
        }
        StrategyParams::PortfolioOptimizer(p) => {
            Box::new(PortfolioOptimizer::new(spec.symbols.clone(), p.clone()))
        }
        StrategyParams::RiskManager(p) => {
            Box::new(RiskManager::new(spec.symbols.clone(), p.clone()))
        }
        #[cfg(feature = "chaos")]
        StrategyParams::Chaos(p) => Box::new(Chaos::new(p.clone())),
    }
}
