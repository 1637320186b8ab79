//! `GetPositions` (what `/positions` shows) and the one place a reading of the account's
//! positions is reconciled with herd's own, counted and logged.
//!
//! Views and orders compare a shared reading once ([`observe_new_reading`]); `/positions` and
//! the start-up reconciliation always compare.
//!
//! Invariant: a lasting mismatch is logged once when it appears and once when it clears (the
//! metric `herd_position_mismatches` carries its current size), never on every tick.

use std::sync::Arc;

use actix::prelude::*;
use rust_decimal::Decimal;
use serde::Serialize;

use super::alpaca::models::Position;
use super::book::{Mismatch, OrderBook, Reconciliation};
use super::{BrokerActor, BrokerError};
use crate::domain::{AccountId, Holding, InstanceId, Symbol};
use crate::metrics::Metrics;

/// Every instance's holdings next to the account's positions at the venue.
#[derive(Message)]
#[rtype(result = "Result<PositionsReport, BrokerError>")]
pub struct GetPositions;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PositionsReport {
    /// Every symbol was compared, and the account holds exactly what herd's fills and the
    /// positions it did not make explain.
    pub reconciled: bool,
    pub mismatches: Vec<Mismatch>,
    /// Symbols not compared at this reading: one of herd's orders for them is still working,
    /// so the venue may be mid-fill.
    pub unsettled: Vec<Symbol>,
    /// Each instance's holding, marked at the venue's current price when the account holds the
    /// symbol.
    pub instances: Vec<InstanceHolding>,
    /// The account's positions as the venue reports them.
    pub account: Vec<Position>,
    /// What the account held before herd's first order: not herd's.
    pub external: Vec<ExternalPosition>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct InstanceHolding {
    pub instance: InstanceId,
    pub symbol: Symbol,
    #[serde(flatten)]
    pub holding: Holding,
    pub current_price: Option<Decimal>,
    pub unrealized_pnl: Option<Decimal>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ExternalPosition {
    pub symbol: Symbol,
    pub qty: Decimal,
}

/// [`observe_account`] for a reading no view or order has compared yet: every view and every
/// order's risk inputs share the cached reading, and comparing it walks every symbol the
/// account and herd hold — once per order, 1,000 instances trading on one account spent a
/// sixth of herd's CPU comparing the same reading again.
pub(super) fn observe_new_reading(
    account: &AccountId,
    book: &OrderBook,
    metrics: &Metrics,
    held: &Arc<[Position]>,
) {
    if book.first_sight(held) {
        observe_account(account, book, metrics, held);
    }
}

/// Reconciles a reading of the account's positions with the book; keeps the metric current and
/// logs a change of the mismatched set.
pub(super) fn observe_account(
    account: &AccountId,
    book: &OrderBook,
    metrics: &Metrics,
    held: &[Position],
) -> Reconciliation {
    let r = book.reconcile(held);
    metrics.position_mismatches(account, r.mismatches.len());
    if r.changed {
        if r.mismatches.is_empty() {
            tracing::info!(
                event = "positions_reconciled", account = %account,
                "account positions match herd's again"
            );
        } else {
            let detail = serde_json::to_string(&r.mismatches).unwrap_or_default();
            tracing::warn!(
                event = "position_mismatch", account = %account, symbols = r.mismatches.len(), mismatches = %detail,
                "the account holds positions herd's fills do not explain"
            );
        }
    }
    r
}

impl Handler<GetPositions> for BrokerActor {
    type Result = ResponseActFuture<Self, Result<PositionsReport, BrokerError>>;

    fn handle(&mut self, _: GetPositions, _: &mut Self::Context) -> Self::Result {
        // Standing by, this replica's book of the account is not the one that counts.
        if !self.deps.lease.holds() {
            let not = self.deps.lease.not_owner();
            return Box::pin(actix::fut::ready(Err(BrokerError::Refused(
                super::NotSent::NotOwner(not),
            ))));
        }
        let (account, snapshots, book, metrics) = (
            self.deps.account.clone(),
            self.deps.snapshots.clone(),
            std::sync::Arc::clone(&self.deps.book),
            std::sync::Arc::clone(&self.deps.metrics),
        );
        Box::pin(self.guard(async move {
            let held = snapshots.positions().await?;
            let Reconciliation {
                mismatches,
                unsettled,
                ..
            } = observe_account(&account, &book, &metrics, &held);
            let price = |symbol: &Symbol| {
                held.iter()
                    .find(|p| p.symbol == symbol.as_str())
                    .and_then(|p| p.current_price)
            };
            let instances = book
                .holdings()
                .into_iter()
                .map(|(instance, symbol, holding)| {
                    let current_price = price(&symbol);
                    InstanceHolding {
                        unrealized_pnl: current_price.map(|p| holding.unrealized_pnl(p)),
                        instance,
                        symbol,
                        holding,
                        current_price,
                    }
                })
                .collect();
            let external = book
                .external_positions()
                .into_iter()
                .map(|(symbol, qty)| ExternalPosition { symbol, qty })
                .collect();
            Ok(PositionsReport {
                reconciled: mismatches.is_empty() && unsettled.is_empty(),
                mismatches,
                unsettled,
                instances,
                account: held.to_vec(),
                external,
            })
        }))
    }
}
