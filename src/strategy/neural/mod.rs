//! Neural forecast: a small recurrent network per symbol forecasts the close `horizon` bars
//! ahead; the instance trades when the forecast's confidence clears a floor, sized by it.
//!
//! Each tick, per symbol: without a model, hold with the reason "model not trained" (asking the
//! workshop to load the saved one, or to train one); with one, forecast p̂ from the newest
//! `lookback` closes. With P the last close, Δ = |p̂ − P| / P and σ the population standard
//! deviation of the close-to-close returns of every bar in view, confidence = 1 − σ/Δ clamped
//! to [0.5, `confidence_cap`] (0.5 when Δ = 0). At or above `confidence_floor`: buy when the
//! forecast is up and the instance is flat, sell its whole position when it is down and the
//! instance is long; size = `min_size` + (conf − floor)/(cap − floor)·(`max_size` − `min_size`),
//! rounded, so the cap gets `max_size` (the seed divided by 1 − floor, so its cap of 0.95 never
//! reached 50 shares: 43).
//!
//! Training is not a decision: it runs in the workshop (`workshop.rs`), off every actor thread,
//! on the schedule `retrain_every` (venue time since the bar the model was trained through; not
//! the seed's random 10 % of ticks), seeded so that the same bars give the same model, and the
//! weights are saved under the data directory and loaded at start, so a restart does not
//! retrain. A model in use is replaced only once its successor is trained.

mod forecast;
pub mod model;
pub mod work;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use rust_decimal::Decimal;
use rust_decimal::prelude::FromPrimitive;
use serde::{Deserialize, Serialize};

use self::model::{Model, NetConfig};
use self::work::{Finished, Work};
use super::indicators::{mean_std, returns};
use super::{CoreReport, Strategy, report_details};
use crate::domain::{
    Action, DataNeeds, Decision, HumanDuration, MarketView, OrderIntent, Side, Symbol, Timeframe,
};

/// `[strategies.params]` of a `neural_forecast` instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NeuralForecastParams {
    pub timeframe: Timeframe,
    /// Bars per symbol in view: the training set and the σ of the confidence.
    pub history: usize,
    /// Closes per input window.
    pub lookback: usize,
    /// Bars ahead of the newest that are forecast.
    pub horizon: usize,
    /// Units of each of the two LSTM layers.
    pub hidden: usize,
    /// Units of the ReLU layer after them.
    pub dense: usize,
    pub dropout: f64,
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// Seeds the initial weights, the batch order and dropout: same bars, same model.
    pub seed: u64,
    /// Venue time after the bar a model was trained through before it is retrained.
    pub retrain_every: HumanDuration,
    pub confidence_floor: f64,
    pub confidence_cap: f64,
    pub min_size: Decimal,
    pub max_size: Decimal,
}

impl Default for NeuralForecastParams {
    fn default() -> Self {
        Self {
            timeframe: Timeframe::Minutes(5),
            history: 500,
            lookback: 60,
            horizon: 5,
            hidden: 50,
            dense: 25,
            dropout: 0.2,
            epochs: 50,
            batch_size: 32,
            learning_rate: 0.001,
            seed: 42,
            retrain_every: HumanDuration(Duration::from_secs(86_400)),
            confidence_floor: 0.7,
            confidence_cap: 0.95,
            min_size: Decimal::from(5),
            max_size: Decimal::from(50),
        }
    }
}

impl NeuralForecastParams {
    /// Range checks; the error is `.key = value: what is allowed`.
    pub fn check(&self) -> Result<(), String> {
        let range = |key: &str, v: usize, lo: usize, hi: usize| {
            (lo..=hi)
                .contains(&v)
                .then_some(())
                .ok_or_else(|| format!(".{key} = {v}: must be between {lo} and {hi}"))
        };
        range("lookback", self.lookback, 2, 500)?;
        range("horizon", self.horizon, 1, 100)?;
        range("hidden", self.hidden, 1, 512)?;
        range("dense", self.dense, 1, 512)?;
        range("epochs", self.epochs, 1, 1000)?;
        range("batch_size", self.batch_size, 1, 1024)?;
        let need = self.net().min_closes();
        range("history", self.history, need, 10_000).map_err(|e| {
            format!("{e} (lookback + horizon + 9 closes train at least ten samples)")
        })?;
        if !(self.dropout.is_finite() && (0.0..0.9).contains(&self.dropout)) {
            return Err(format!(
                ".dropout = {}: must be at least 0 and below 0.9",
                self.dropout
            ));
        }
        let lr = self.learning_rate;
        if !(lr.is_finite() && lr > 0.0 && lr <= 1.0) {
            return Err(format!(
                ".learning_rate = {lr}: must be greater than 0 and at most 1"
            ));
        }
        if self.retrain_every.get().is_zero() {
            return Err(".retrain_every = \"0s\": must be longer than zero".into());
        }
        let (floor, cap) = (self.confidence_floor, self.confidence_cap);
        if !(cap.is_finite() && cap > 0.5 && cap <= 1.0) {
            return Err(format!(
                ".confidence_cap = {cap}: must be above 0.5 and at most 1"
            ));
        }
        if !(floor.is_finite() && floor >= 0.5 && floor < cap) {
            return Err(format!(
                ".confidence_floor = {floor}: must be at least 0.5 and below confidence_cap ({cap})"
            ));
        }
        if self.min_size <= Decimal::ZERO {
            return Err(format!(
                ".min_size = {}: must be greater than 0",
                self.min_size
            ));
        }
        if self.max_size < self.min_size {
            return Err(format!(
                ".max_size = {}: must be at least min_size ({})",
                self.max_size, self.min_size
            ));
        }
        Ok(())
    }

    pub fn net(&self) -> NetConfig {
        NetConfig {
            lookback: self.lookback,
            horizon: self.horizon,
            hidden: self.hidden,
            dense: self.dense,
            dropout: self.dropout,
            epochs: self.epochs,
            batch_size: self.batch_size,
            learning_rate: self.learning_rate,
            seed: self.seed,
        }
    }

    /// Shares for a confidence at or above the floor.
    fn size(&self, confidence: f64) -> Decimal {
        let (floor, cap) = (self.confidence_floor, self.confidence_cap);
        let share = ((confidence - floor) / (cap - floor)).clamp(0.0, 1.0);
        let share = Decimal::from_f64(share).unwrap_or_default();
        (self.min_size + share * (self.max_size - self.min_size)).round()
    }
}

/// Where one symbol's model stands.
#[derive(Debug, Default)]
struct SymbolModel {
    model: Option<Arc<Model>>,
    /// A load from disk was asked for (at most once).
    load_asked: bool,
    /// The load answered (found or not): only then may a training be asked for.
    load_done: bool,
    /// A training is in the workshop.
    training: bool,
    last_error: Option<String>,
}

/// A model's state for `/strategies`.
#[derive(Debug, Serialize)]
struct ModelView {
    symbol: Symbol,
    trained_through: Option<String>,
    train_loss: Option<f64>,
    training: bool,
    last_error: Option<String>,
}

pub struct NeuralForecast {
    symbols: Vec<Symbol>,
    params: NeuralForecastParams,
    models: HashMap<Symbol, SymbolModel>,
    /// Work asked for by the last `decide`, taken by `work`.
    queued: Vec<Work>,
}

impl NeuralForecast {
    pub fn new(symbols: Vec<Symbol>, params: NeuralForecastParams) -> Self {
        let models = symbols
            .iter()
            .map(|s| (s.clone(), SymbolModel::default()))
            .collect();
        Self {
            symbols,
            params,
            models,
            queued: Vec::new(),
        }
    }

    /// Asks for the load, then a (re)training, when due. Never two jobs for one symbol at once.
    fn schedule(&mut self, symbol: &Symbol, view: &MarketView) {
        let p = &self.params;
        let Some(state) = self.models.get_mut(symbol) else {
            return;
        };
        if !state.load_asked {
            state.load_asked = true;
            self.queued.push(Work::Load {
                symbol: symbol.clone(),
                config: p.net(),
            });
            return;
        }
        if !state.load_done || state.training {
            return;
        }
        let bars = view.bars(symbol);
        let Some(newest) = bars.last() else {
            return;
        };
        let every = TimeDelta::from_std(p.retrain_every.get()).unwrap_or(TimeDelta::MAX);
        let due = state.model.as_ref().is_none_or(|m| {
            m.trained_through
                .checked_add_signed(every)
                .is_none_or(|t| t <= newest.time)
        });
        if due && bars.len() >= p.net().min_closes() {
            state.training = true;
            self.queued.push(Work::Train {
                symbol: symbol.clone(),
                closes: bars.iter().map(|b| b.close).collect(),
                through: newest.time,
                config: p.net(),
            });
        }
    }

    fn decide_one(&self, symbol: &Symbol, view: &MarketView) -> Decision {
        let p = &self.params;
        let decision = |signal, action| Decision {
            instance: None,
            symbol: symbol.clone(),
            signal,
            action,
        };
        let Some(model) = self.models.get(symbol).and_then(|m| m.model.as_ref()) else {
            let reason = "model not trained";
            return decision(None, Action::Hold { reason });
        };
        let bars = view.bars(symbol);
        let closes: Vec<f64> = bars.iter().map(|b| b.close).collect();
        let (Some(last), true) = (bars.last(), closes.len() >= p.lookback) else {
            let have = closes.len();
            return decision(
                None,
                Action::NoData {
                    have,
                    need: p.lookback,
                },
            );
        };
        let price = last.close;
        let Ok(forecast) = model.predict(&closes) else {
            let reason = "the model could not forecast";
            return decision(None, Action::Hold { reason });
        };
        let change = (forecast - price) / price;
        let signal = Some(change);
        let sigma = mean_std(&returns(&closes)).map_or(0.0, |(_, s)| s);
        if sigma == 0.0 {
            // Confidence is 1 − σ/|change|: with no movement at all (a halted symbol, a stale
            // feed) any forecast would look certain, so it is not trusted.
            let reason = "flat prices: confidence undefined";
            return decision(signal, Action::Hold { reason });
        }
        let confidence = if change == 0.0 {
            0.5
        } else {
            (1.0 - sigma / change.abs()).clamp(0.5, p.confidence_cap)
        };
        if confidence < p.confidence_floor {
            let reason = "confidence below the floor";
            return decision(signal, Action::Hold { reason });
        }
        if view.has_pending(symbol) {
            let reason = "order pending";
            return decision(signal, Action::Hold { reason });
        }
        let position = view.position(symbol);
        let order = |side, qty| {
            Action::Order(OrderIntent {
                symbol: symbol.clone(),
                side,
                qty,
                decided_on: last.time,
                reference_price: Some(price),
                reason: format!(
                    "forecast {forecast:.2} vs {price:.2} in {} bars, confidence {confidence:.3}",
                    p.horizon
                ),
            })
        };
        let action = if forecast > price && position.is_zero() {
            order(Side::Buy, p.size(confidence))
        } else if forecast < price && position > Decimal::ZERO {
            order(Side::Sell, position)
        } else if forecast > price {
            Action::Hold {
                reason: "forecast up, but already holding",
            }
        } else {
            Action::Hold {
                reason: "forecast down, but no long position",
            }
        };
        decision(signal, action)
    }
}

impl Strategy for NeuralForecast {
    fn needs(&self) -> DataNeeds {
        DataNeeds {
            timeframe: self.params.timeframe,
            bars: self.params.history,
            account: false,
            only_when_open: true,
        }
    }

    fn decide(&mut self, view: &MarketView) -> Vec<Decision> {
        for symbol in self.symbols.clone() {
            self.schedule(&symbol, view);
        }
        self.symbols
            .iter()
            .map(|s| self.decide_one(s, view))
            .collect()
    }

    fn work(&mut self) -> Vec<Work> {
        std::mem::take(&mut self.queued)
    }

    fn finished(&mut self, done: Finished) {
        let Some(state) = self.models.get_mut(&done.symbol) else {
            return;
        };
        let was_load = !state.load_done;
        state.load_done = true;
        if !was_load {
            state.training = false;
        }
        match done.outcome {
            Ok(Some(model)) => {
                state.model = Some(model);
                state.last_error = None;
            }
            Ok(None) => {}
            Err(e) => state.last_error = Some(e),
        }
    }

    fn report(&mut self) -> Option<CoreReport> {
        let models: Vec<ModelView> = self
            .symbols
            .iter()
            .filter_map(|s| {
                let m = self.models.get(s)?;
                Some(ModelView {
                    symbol: s.clone(),
                    trained_through: m.model.as_ref().map(|m| m.trained_through.to_rfc3339()),
                    train_loss: m.model.as_ref().map(|m| m.train_loss),
                    training: m.training,
                    last_error: m.last_error.clone(),
                })
            })
            .collect();
        Some(CoreReport {
            details: report_details(&serde_json::json!({ "models": models })),
            raised: Vec::new(),
            trading: None,
            gauges: None,
        })
    }
}

#[cfg(test)]
mod tests;
