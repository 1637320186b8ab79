//! Risk manager: watches the books of the instances it is configured to guard, and acts on them.
//!
//! Each tick: the guarded instances' holdings, replayed over the newest `window` closes
//! (`book_risk.rs`), give historical VaR and CVaR at `confidence`, the current and maximum
//! drawdown and the Sharpe ratio. Then:
//! - a guarded position whose current price (the venue's; the newest close where the account
//!   holds none of the symbol) moved `stop_loss` (a fraction of its entry price) against it is
//!   closed, as that instance's order (its ledger, its `client_order_id`);
//! - a drawdown past `max_drawdown` or a VaR past `max_var` raises an alert (a log event and a
//!   metric), and with `breach_action = "reducing"` or `"halted"` asks the risk gate for that
//!   trading state. It only ever tightens the state; an operator resumes.
//!
//! The rule of the risk manager herd replaces, with its bugs fixed: it guards only the instances
//! it names (the seed closed any losing position of the account, whoever opened it), a close is
//! not sent again while the first is working, too few observations are said rather than giving a
//! VaR of nothing, and a breach can act (the seed only logged "REDUCE_RISK").
//!
//! Invariant: an alert is raised once when its condition appears; while it persists it stays in
//! the report without being raised again.

use std::collections::BTreeSet;

use rust_decimal::Decimal;
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use serde::{Deserialize, Serialize};

use super::book_risk::{BookFigures, Replayed, closes_at_common_times, figures};
use super::{CoreReport, Strategy, report_details};
use crate::domain::{
    Action, Bar, DataNeeds, Decision, InstanceId, MarketView, OrderIntent, Side, Symbol, Timeframe,
    TradingState,
};
use crate::metrics::RiskAlert;

/// What a breached limit does besides the alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreachAction {
    /// Log and count only (the seed's behaviour).
    Alert,
    /// Ask the risk gate to pass only orders that reduce exposure.
    Reducing,
    /// Ask the risk gate to pass no order at all.
    Halted,
}

/// `[strategies.params]` of a `risk_manager` instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RiskManagerParams {
    /// Ids of the instances whose books it watches and whose positions it may close.
    pub guard: Vec<String>,
    pub timeframe: Timeframe,
    /// Periods of P&L in the figures (it needs one bar more per symbol).
    pub window: usize,
    /// Fewer periods than this: no figures, and the report says so.
    pub min_observations: usize,
    /// Of VaR and CVaR (0.95 = the loss exceeded one period in twenty).
    pub confidence: f64,
    /// Close a guarded position whose price moved this fraction of its entry price against it;
    /// unset, no stop.
    pub stop_loss: Option<f64>,
    /// Drawdown of the guarded book (a fraction of its peak) that breaches.
    pub max_drawdown: f64,
    /// One-period VaR in USD that breaches; unset, no VaR limit.
    pub max_var: Option<Decimal>,
    pub breach_action: BreachAction,
}

impl Default for RiskManagerParams {
    fn default() -> Self {
        Self {
            guard: Vec::new(),
            timeframe: Timeframe::Day,
            window: 30,
            min_observations: 20,
            confidence: 0.95,
            stop_loss: Some(0.02),
            max_drawdown: 0.10,
            max_var: None,
            breach_action: BreachAction::Alert,
        }
    }
}

impl RiskManagerParams {
    /// Range checks; the error is `.key = value: what is allowed`. That every guarded id names
    /// a configured instance is checked where all instances are known (settings).
    pub fn check(&self) -> Result<(), String> {
        if self.guard.is_empty() {
            return Err(".guard = []: name at least one instance id to guard".into());
        }
        for id in &self.guard {
            InstanceId::parse(id).map_err(|e| format!(".guard = {id:?}: {e}"))?;
        }
        if !(2..=1000).contains(&self.window) {
            return Err(format!(
                ".window = {}: must be between 2 and 1000",
                self.window
            ));
        }
        if !(2..=self.window).contains(&self.min_observations) {
            return Err(format!(
                ".min_observations = {}: must be at least 2 and at most window ({})",
                self.min_observations, self.window
            ));
        }
        let c = self.confidence;
        if !(c.is_finite() && (0.5..1.0).contains(&c)) {
            return Err(format!(
                ".confidence = {c}: must be at least 0.5 and below 1 (0.95 = 95 %)"
            ));
        }
        if let Some(stop) = self.stop_loss
            && !(stop.is_finite() && stop > 0.0 && stop < 1.0)
        {
            return Err(format!(
                ".stop_loss = {stop}: must be greater than 0 and less than 1 (0.02 = 2 %)"
            ));
        }
        let d = self.max_drawdown;
        if !(d.is_finite() && d > 0.0 && d < 1.0) {
            return Err(format!(
                ".max_drawdown = {d}: must be greater than 0 and less than 1 (0.10 = 10 %)"
            ));
        }
        if let Some(v) = self.max_var
            && v <= Decimal::ZERO
        {
            return Err(format!(
                ".max_var = {v}: must be greater than 0 USD (leave it out for no limit)"
            ));
        }
        Ok(())
    }
}

/// A limit the guarded book crossed, or a position it stopped out.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "alert", rename_all = "snake_case")]
pub enum Alert {
    StopLoss {
        instance: InstanceId,
        symbol: Symbol,
    },
    MaxDrawdown,
    MaxVar,
}

/// What the risk manager found on its last tick.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RiskReport {
    /// The guarded book's figures, when there are enough observations and anything is held.
    pub figures: Option<BookFigures>,
    /// Why there are no figures, when there are none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_figures: Option<String>,
    /// Every alert whose condition holds now.
    pub active: BTreeSet<Alert>,
}

pub struct RiskManager {
    params: RiskManagerParams,
    symbols: Vec<Symbol>,
    guards: Vec<InstanceId>,
    /// `params.stop_loss`, converted once: the exact f64 → Decimal conversion is not cheap.
    stop_loss: Option<Decimal>,
    /// Alerts whose condition held at the last tick: raised again only after they cleared.
    active: BTreeSet<Alert>,
    /// The last tick's report, taken by `report`.
    pending_report: Option<CoreReport>,
}

impl RiskManager {
    /// `symbols` covers every symbol the guarded instances trade (settings derives it).
    pub fn new(symbols: Vec<Symbol>, params: RiskManagerParams) -> Self {
        let guards = params
            .guard
            .iter()
            .filter_map(|g| InstanceId::parse(g).ok())
            .collect();
        Self {
            stop_loss: params.stop_loss.and_then(Decimal::from_f64),
            params,
            symbols,
            guards,
            active: BTreeSet::new(),
            pending_report: None,
        }
    }

    fn periods_per_year(&self) -> f64 {
        match self.params.timeframe {
            Timeframe::Day => 252.0,
            Timeframe::Hours(h) => 252.0 * 6.5 / f64::from(h),
            Timeframe::Minutes(m) => 252.0 * 390.0 / f64::from(m),
        }
    }

    /// The stop-loss decision for one guarded holding; `newest` is the symbol's newest bar and
    /// its close as a Decimal. The price it judges is the venue's current one (`view.marks`)
    /// where there is one: the newest final bar of a daily series closed yesterday, and a
    /// position opened since would look (or not look) a stop away on that stale price alone.
    /// The bar stays the decision's bar (`decided_on`: a stop repeated on it sends nothing).
    fn stop(
        &self,
        instance: &InstanceId,
        symbol: &Symbol,
        newest: Option<&(Bar, Decimal)>,
        view: &MarketView,
    ) -> Option<Decision> {
        let book = view.guarded.get(instance)?;
        let holding = book.positions.get(symbol).copied()?;
        if holding.qty.is_zero() {
            return None;
        }
        let decision = |signal, action| Decision {
            instance: Some(instance.clone()),
            symbol: symbol.clone(),
            signal,
            action,
        };
        let Some(&(last, close)) = newest else {
            return Some(decision(None, Action::NoData { have: 0, need: 1 }));
        };
        let price = view.marks.get(symbol).copied().unwrap_or(close);
        let against = holding.adverse_move(price);
        let signal = against.to_f64();
        let working = book.pending.get(symbol).is_some_and(|q| !q.is_zero());
        let action = match self.stop_loss {
            Some(stop) if against >= stop && working => Action::Hold {
                reason: "stop loss reached; an order of the instance is already working",
            },
            Some(stop) if against >= stop => Action::Order(OrderIntent {
                symbol: symbol.clone(),
                side: if holding.qty > Decimal::ZERO {
                    Side::Sell
                } else {
                    Side::Buy
                },
                qty: holding.qty.abs(),
                decided_on: last.time,
                reference_price: price.to_f64(),
                reason: format!("stop loss: the price moved {against:.4} against the entry"),
            }),
            Some(_) => Action::Hold {
                reason: "within the stop loss",
            },
            None => Action::Hold {
                reason: "no stop loss configured",
            },
        };
        Some(decision(signal, action))
    }
}

impl Strategy for RiskManager {
    /// About 9 µs a tick at the default settings (BENCHMARKS.md, strategy cores).
    fn decides_inline(&self) -> bool {
        true
    }
    fn needs(&self) -> DataNeeds {
        DataNeeds {
            timeframe: self.params.timeframe,
            bars: self.params.window + 1,
            account: false,
            only_when_open: false,
        }
    }

    fn guards(&self) -> &[InstanceId] {
        &self.guards
    }

    fn decide(&mut self, view: &MarketView) -> Vec<Decision> {
        let mut decisions = Vec::new();
        let mut now = BTreeSet::new();
        let newest: Vec<Option<(Bar, Decimal)>> = self
            .symbols
            .iter()
            .map(|s| {
                let bar = *view.bars(s).last()?;
                Some((bar, Decimal::from_f64(bar.close).unwrap_or_default()))
            })
            .collect();
        for instance in &self.guards {
            for (symbol, newest) in self.symbols.iter().zip(&newest) {
                if let Some(d) = self.stop(instance, symbol, newest.as_ref(), view) {
                    if matches!(d.action, Action::Order(_)) {
                        now.insert(Alert::StopLoss {
                            instance: instance.clone(),
                            symbol: symbol.clone(),
                        });
                    }
                    decisions.push(d);
                }
            }
        }
        let holdings: Vec<(f64, &[Bar])> = self
            .guards
            .iter()
            .filter_map(|i| view.guarded.get(i))
            .flat_map(|b| b.positions.iter())
            .filter(|(_, h)| !h.qty.is_zero())
            .map(|(symbol, h)| (h.qty.to_f64().unwrap_or(0.0), view.bars(symbol)))
            .collect();
        let series: Vec<&[Bar]> = holdings.iter().map(|(_, bars)| *bars).collect();
        let closes = closes_at_common_times(&series);
        let book: Vec<Replayed<'_>> = (holdings.iter().zip(&closes))
            .map(|((qty, _), closes)| Replayed { qty: *qty, closes })
            .collect();
        let p = &self.params;
        let figures = if book.is_empty() {
            Err("nothing held by the guarded instances".to_owned())
        } else {
            figures(
                &book,
                p.confidence,
                p.min_observations,
                self.periods_per_year(),
            )
            .map_err(|e| e.to_string())
        };
        if let Ok(f) = &figures {
            if f.current_drawdown > p.max_drawdown {
                now.insert(Alert::MaxDrawdown);
            }
            if let Some(limit) = p.max_var.and_then(|v| v.to_f64())
                && f.var_usd > limit
            {
                now.insert(Alert::MaxVar);
            }
        }
        let raised: Vec<Alert> = now.difference(&self.active).cloned().collect();
        let breached = now.iter().any(|a| !matches!(a, Alert::StopLoss { .. }));
        let trading = match (breached, p.breach_action) {
            (true, BreachAction::Reducing) => Some(TradingState::Reducing),
            (true, BreachAction::Halted) => Some(TradingState::Halted),
            _ => None,
        };
        let gauges = figures
            .as_ref()
            .ok()
            .map(|f| (f.var_usd, f.current_drawdown));
        let report = RiskReport {
            no_figures: figures.as_ref().err().cloned(),
            figures: figures.ok(),
            active: now,
        };
        self.pending_report = Some(CoreReport {
            details: report_details(&report),
            raised: raised.iter().map(alert_name).collect(),
            trading: trading.map(|state| (state, describe(&report))),
            gauges,
        });
        self.active = report.active;
        decisions
    }

    fn report(&mut self) -> Option<CoreReport> {
        self.pending_report.take()
    }
}

fn alert_name(alert: &Alert) -> (RiskAlert, String) {
    match alert {
        Alert::StopLoss { instance, symbol } => {
            (RiskAlert::StopLoss, format!("{instance} {symbol}"))
        }
        Alert::MaxDrawdown => (RiskAlert::MaxDrawdown, String::new()),
        Alert::MaxVar => (RiskAlert::MaxVar, String::new()),
    }
}

/// Why the risk manager asks for a tighter trading state, for `/health`.
fn describe(report: &RiskReport) -> String {
    match &report.figures {
        Some(f) => format!(
            "risk limits breached: drawdown {:.4}, one-period VaR {:.2} USD at {}",
            f.current_drawdown, f.var_usd, f.confidence
        ),
        None => "risk limits breached".to_owned(),
    }
}

#[cfg(test)]
mod tests;
