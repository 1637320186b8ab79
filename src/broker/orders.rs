//! Orders: the risk gate, the idempotent submission, and the refresh that follows every order
//! until it is final (fills move the instance's position in the book).
//!
//! Invariants:
//! - An order takes its symbol's lane (`lanes.rs`) before it reads the account, and keeps it
//!   until it is final: orders for one symbol reach the venue one after the other.
//! - An order is checked against the trading state and the risk limits with fresh account and
//!   position figures; if those cannot be read, the order is refused (fail closed).
//! - An order that would take the account through zero goes out in two legs (`legs.rs`).
//! - A refused order is recorded in the book with its reason, logged and counted, never sent.
//! - The refresh makes one listing call for all unsettled orders the venue has acknowledged,
//!   and looks up by client id only those whose fate is unknown.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use rust_decimal::Decimal;
use rust_decimal::prelude::FromPrimitive;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, Span};

use super::account_reading::account_position;
use super::alpaca::models::{Order, OrderRequest};
use super::book::{Begin, OrderRecord, OrderState, venue_day};
use super::lanes::{LANE_HOLD, LaneTurn, until_final};
use super::legs::{Placed, split_at_zero};
use super::positions::observe_new_reading;
use super::risk::{OrderContext, check_order, daily_pnl};
use super::submit::{self, SubmitOutcome};
use super::{BrokerActor, BrokerError, NotSent, order_ids};
use crate::domain::{ClientOrderId, InstanceId, OrderIntent};
use crate::domain::{REPEAT_SUMMARY, Repeats, Say};
use crate::journal::Ticket;
use crate::metrics::{OrderOutcome, RefusalReason};
use crate::process::Phase;

/// How soon after a submission its fill is looked up (real time): the simulator and Alpaca
/// usually fill market orders within moments.
const FIRST_FILL_CHECK: std::time::Duration = std::time::Duration::from_millis(50);
/// Listing orders "after" the oldest unsettled one, with this much margin (venue clocks and
/// Alpaca's exclusive `after`).
const LIST_MARGIN: chrono::TimeDelta = chrono::TimeDelta::seconds(1);

/// Places one order intent of one instance.
#[derive(Message)]
#[rtype(result = "Result<Submitted, BrokerError>")]
pub struct SubmitOrder {
    /// The instance the order is for: its ledger, its `client_order_id` prefix.
    pub instance: InstanceId,
    /// The instance that decided it: the same, or a risk manager closing a guarded position.
    pub decided_by: InstanceId,
    pub intent: OrderIntent,
    /// The decision's span: the broker's work on this order is traced as its child.
    pub trace: Span,
}

/// `work`, unless the drain begins first: then the order is refused as not sent.
async fn unless_draining<T>(
    stop: &CancellationToken,
    work: impl Future<Output = T>,
) -> Result<T, BrokerError> {
    tokio::select! {
        biased;
        () = stop.cancelled() => Err(BrokerError::Refused(NotSent::Draining)),
        done = work => Ok(done),
    }
}

/// One [`Repeats`] per refusal reason: a gate that refuses every order of every instance (a
/// halt, a daily-loss limit) writes two lines a minute, not one per order.
pub struct RefusalLog(Vec<(RefusalReason, Repeats)>);

impl Default for RefusalLog {
    fn default() -> Self {
        Self(
            RefusalReason::ALL
                .iter()
                .map(|r| (*r, Repeats::new(REPEAT_SUMMARY)))
                .collect(),
        )
    }
}

impl RefusalLog {
    fn note(&self, reason: RefusalReason) -> Say {
        self.0
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(Say::Started { earlier: 0 }, |(_, repeats)| repeats.note())
    }
}

/// The answer to a [`SubmitOrder`] that did not fail.
#[derive(Debug, Clone)]
pub struct Submitted {
    pub record: OrderRecord,
    /// This request sent it; `false` when the same decision was already in the book (a
    /// repeated tick on the same bar), and nothing was sent.
    pub sent: bool,
}

/// What the gate needs to know besides the limits, read before the order is sent.
struct RiskInputs {
    account_position: Decimal,
    daily_pnl: Decimal,
    /// P&L realized today (the venue's day): (this instance, every instance).
    realized_today: (Decimal, Decimal),
}

impl Handler<SubmitOrder> for BrokerActor {
    type Result = ResponseActFuture<Self, Result<Submitted, BrokerError>>;

    fn handle(&mut self, msg: SubmitOrder, _: &mut Self::Context) -> Self::Result {
        let SubmitOrder {
            instance,
            decided_by,
            intent,
            trace,
        } = msg;
        if self.draining {
            return Box::pin(fut::ready(Err(BrokerError::Draining)));
        }
        let after_signal = self.deps.process.phase() == Phase::Draining;
        // Not this replica's account (any more): nothing is recorded, since the journal is
        // shared and the owner's book must not find this decision already taken.
        let epoch = match self.deps.lease.fence() {
            Ok(epoch) => epoch,
            Err(not) => {
                self.deps.metrics.order_refused(RefusalReason::NotOwner);
                return Box::pin(fut::ready(Err(BrokerError::Refused(NotSent::NotOwner(
                    not,
                )))));
            }
        };
        let ids = order_ids(
            &instance,
            &decided_by,
            &intent.symbol,
            intent.side,
            intent.decided_on,
        );
        let cid = ids.first.clone();
        let span = tracing::info_span!(
            parent: &trace,
            "submit_order",
            otel.name = "broker submit_order",
            instance = %instance,
            symbol = %intent.symbol,
            side = %intent.side,
            qty = %intent.qty,
            client_order_id = %cid,
            outcome = tracing::field::Empty,
        );
        let (record, ticket) = match self.deps.book.begin(&instance, &intent, cid.clone(), epoch) {
            Begin::Existing(record) => {
                return Box::pin(fut::ready(Ok(Submitted {
                    record,
                    sent: false,
                })));
            }
            Begin::New(record, ticket) => (record, ticket),
        };
        // A decision made before the signal, handed over after it: recorded, refused, not sent.
        if after_signal {
            let refused = self.refuse(&record, NotSent::Draining);
            return Box::pin(fut::ready(refused.map(|record| Submitted {
                record,
                sent: false,
            })));
        }
        // Own position plus what is still working, so two quick orders cannot each pass a
        // limit that together they break.
        let (own, pending) = self
            .deps
            .book
            .instance_view(&instance, std::slice::from_ref(&intent.symbol));
        let instance_position =
            own.values().map(|h| h.qty).sum::<Decimal>() + pending.values().sum::<Decimal>();
        let snapshots = self.deps.snapshots.clone();
        let (book, metrics) = (Arc::clone(&self.deps.book), Arc::clone(&self.deps.metrics));
        let (lanes, symbol) = (self.deps.lanes.clone(), intent.symbol.clone());
        let owner = instance.clone();
        // The symbol's lane first: the account is read after any earlier order for the symbol
        // is final, so the gate and the split judge it as it will be.
        let stop = self.deps.process.drain_signal();
        let account_id = self.deps.account.clone();
        let inputs = async move {
            // Waiting for the lane or the reads has no effect yet: the drain ends the wait.
            let turn = unless_draining(&stop, lanes.turn(&symbol)).await?;
            let held = unless_draining(&stop, snapshots.positions()).await??;
            observe_new_reading(&account_id, &book, &metrics, &held);
            let account = snapshots.account().await?;
            let today = venue_day(snapshots.clock().await?.timestamp);
            let last = account.last_equity.unwrap_or(account.equity);
            let inputs = RiskInputs {
                account_position: account_position(&held, &symbol),
                daily_pnl: daily_pnl(account.equity, last),
                realized_today: book.realized_on(&owner, today),
            };
            Ok::<_, BrokerError>((turn, inputs))
        }
        .instrument(span.clone());
        let fut = self.guard(inputs).then(move |inputs, act, _| -> Placed {
            let (turn, inputs) = match inputs {
                Ok(i) => i,
                Err(BrokerError::Panicked(panic)) => {
                    let why = format!("panic: {panic}");
                    act.deps
                        .book
                        .mark(&record.client_order_id, OrderState::Refused, why);
                    return Box::pin(fut::ready(Err(BrokerError::Panicked(panic))));
                }
                Err(BrokerError::Refused(why)) => {
                    return Box::pin(fut::ready(act.refuse(&record, why)));
                }
                Err(e) => {
                    let refused = act.refuse(&record, NotSent::RiskInputs(Box::new(e)));
                    return Box::pin(fut::ready(refused));
                }
            };
            let check = OrderContext {
                side: intent.side,
                qty: intent.qty,
                price: intent.reference_price.and_then(Decimal::from_f64),
                instance_position,
                account_position: inputs.account_position,
                daily_pnl: inputs.daily_pnl,
                instance_realized_today: inputs.realized_today.0,
                realized_today: inputs.realized_today.1,
            };
            let trading = act.deps.process.trading();
            if let Err(refusal) = check_order(&check, &act.deps.risk, &trading) {
                return Box::pin(fut::ready(act.refuse(&record, refusal.into())));
            }
            let placed = match split_at_zero(intent.side, intent.qty, inputs.account_position) {
                Some(legs) => act.place_in_legs(record, ticket, intent, ids, legs, span.clone()),
                None => act.place(record, ticket, intent, cid, &span),
            };
            Box::pin(placed.map(move |result, act, ctx| {
                act.release_lane_when_final(turn, &result, ctx);
                result
            }))
        });
        Box::pin(fut.map(|placed, _, _| placed.map(|record| Submitted { record, sent: true })))
    }
}

impl BrokerActor {
    /// Records, logs and counts an order refused before sending.
    fn refuse(&mut self, record: &OrderRecord, why: NotSent) -> Result<OrderRecord, BrokerError> {
        let reason = why.reason();
        if matches!(why, NotSent::Draining) {
            self.dropped_while_draining += 1;
        }
        self.deps.metrics.order_refused(reason);
        self.deps
            .metrics
            .order(record.instance.as_str(), record.side, OrderOutcome::Refused);
        match self.deps.refusals.note(reason) {
            Say::Started { earlier } => tracing::warn!(
                event = "order_refused", instance = %record.instance, client_order_id = %record.client_order_id,
                symbol = %record.symbol, side = %record.side, qty = %record.qty, reason = reason.as_str(),
                detail = %why, earlier_unreported = earlier,
                "order refused before sending (more for this reason are summarized once a minute; /orders has each)"
            ),
            Say::Summary { count, over } => tracing::warn!(
                event = "orders_refused", reason = reason.as_str(), refused = count,
                seconds = over.as_secs(), latest = %why, "orders refused before sending"
            ),
            Say::Quiet => {}
        }
        self.deps.book.mark(
            &record.client_order_id,
            OrderState::Refused,
            why.to_string(),
        );
        Err(BrokerError::Refused(why))
    }

    /// Sends an order that passed the gate, idempotently, and records the outcome.
    pub(super) fn place(
        &mut self,
        record: OrderRecord,
        ticket: Option<Ticket>,
        intent: OrderIntent,
        cid: ClientOrderId,
        trace: &Span,
    ) -> ResponseActFuture<Self, Result<OrderRecord, BrokerError>> {
        let request = OrderRequest {
            symbol: intent.symbol.to_string(),
            qty: intent.qty,
            side: intent.side,
            order_type: "market",
            time_in_force: "day",
            client_order_id: cid.to_string(),
        };
        let gateway = self.deps.gateway.clone();
        let record_epoch = record.lease_epoch;
        let journal = self.deps.book.journal().cloned();
        let counted = self.deps.metrics.work.order_in_flight();
        let stop = self.deps.process.drain_signal();
        let lease = self.deps.lease.clone();
        let submission = self.in_flight.track_future(
            async move {
                let _counted = counted;
                // The signal came while the order waited for its lane or its risk inputs.
                if stop.is_cancelled() {
                    return SubmitOutcome::NotSent(NotSent::Draining);
                }
                // The intent is on disk before the order leaves the process: a crash from here
                // on leaves a journaled order that the next start looks up by its id.
                if let (Some(journal), Some(ticket)) = (journal, ticket)
                    && let Err(e) = journal.durable(ticket).await
                {
                    return SubmitOutcome::NotSent(NotSent::Journal(e));
                }
                // The fence, as late as possible: the lease must be this replica's, in the
                // epoch the order was recorded under, until the order reaches the venue.
                let fenced = match lease.fence() {
                    Ok(epoch) if epoch == record_epoch => None,
                    Ok(_) => Some(lease.not_owner()),
                    Err(not) => Some(not),
                };
                if let Some(not) = fenced {
                    return SubmitOutcome::NotSent(NotSent::NotOwner(not));
                }
                submit::submit_idempotent(&gateway, &request, &stop).await
            }
            .instrument(trace.clone()),
        );
        let span = trace.clone();
        let placed = self
            .guard(async move { Ok(submission.await) })
            .map(move |outcome, act, ctx| {
                let _in_span = span.enter();
                if act.deps.process.phase() == Phase::Draining {
                    act.completed_while_draining += 1;
                }
                let outcome = match outcome {
                    Ok(o) => o,
                    Err(e) => {
                        let why = format!("panic while submitting: {e}");
                        act.deps.book.mark(&cid, OrderState::Unknown, why);
                        return Err(e);
                    }
                };
                let (label, result) = match outcome {
                    SubmitOutcome::Placed(order) | SubmitOutcome::Adopted(order) => {
                        act.observe(None);
                        // An accepted order already holds buying power and shares at the venue.
                        act.deps.snapshots.invalidate_holdings();
                        act.apply(&cid, &order);
                        ctx.run_later(FIRST_FILL_CHECK, |act, ctx| act.refresh_unsettled(ctx));
                        (OrderOutcome::Accepted, Ok(()))
                    }
                    SubmitOutcome::Rejected(e) => {
                        let e = BrokerError::Upstream(e);
                        act.observe(Some(&e));
                        act.deps.book.mark(&cid, OrderState::Rejected, e.to_string());
                        (OrderOutcome::Rejected, Err(e))
                    }
                    SubmitOutcome::NotSent(why) => return act.refuse(&record, why),
                    SubmitOutcome::Unknown(why) => {
                        act.deps.book.mark(&cid, OrderState::Unknown, why.clone());
                        let e = BrokerError::Unavailable(format!("order outcome unknown: {why}"));
                        (OrderOutcome::Unknown, Err(e))
                    }
                };
                act.deps.metrics.order(record.instance.as_str(), record.side, label);
                span.record("outcome", label.as_str());
                let record = act.deps.book.get(&cid).unwrap_or(record);
                tracing::info!(
                    event = "order", instance = %record.instance, client_order_id = %cid,
                    order_id = record.order_id.as_deref(), symbol = %record.symbol, side = %record.side,
                    qty = %record.qty, state = record.state.as_str(), reason = %record.reason,
                    decided_on = %record.decided_on, error = record.error.as_deref(), "order placed"
                );
                result.map(|()| record)
            });
        Box::pin(placed)
    }

    /// Keeps the symbol's lane until the order just placed is final (or `LANE_HOLD` passed),
    /// then lets the next order for the symbol read the account.
    fn release_lane_when_final(
        &mut self,
        turn: LaneTurn,
        placed: &Result<OrderRecord, BrokerError>,
        ctx: &mut Context<Self>,
    ) {
        let Ok(record) = placed else {
            return;
        };
        if record.state.is_final() {
            return;
        }
        let (book, poll) = (Arc::clone(&self.deps.book), self.deps.order_poll);
        let cid = record.client_order_id.clone();
        ctx.spawn(
            async move {
                until_final(&book, &cid, poll, LANE_HOLD).await;
                drop(turn);
            }
            .into_actor(self),
        );
    }

    /// Applies what the venue says about one of herd's orders.
    fn apply(&mut self, cid: &ClientOrderId, order: &Order) {
        if let Some((record, filled)) = self.deps.book.apply_venue(cid, order)
            && !filled.is_zero()
        {
            self.deps.snapshots.invalidate_holdings();
            tracing::info!(
                event = "order_fill", instance = %record.instance, client_order_id = %cid,
                symbol = %record.symbol, side = %record.side, filled_qty = %filled,
                total_filled = %record.filled_qty,
                avg_price = record.filled_avg_price.map(tracing::field::display),
                state = record.state.as_str(), "order filled"
            );
        }
    }

    /// Looks up every order that is not final and applies what the venue says.
    pub(super) fn refresh_unsettled(&mut self, ctx: &mut Context<Self>) {
        // Another replica drives the account: its orders are that replica's to follow (this
        // book is stale, and reloaded when the lease comes back).
        if self.refreshing || !self.deps.lease.holds() {
            return;
        }
        let unsettled = self.deps.book.unsettled();
        if unsettled.is_empty() {
            return;
        }
        self.refreshing = true;
        let gateway = self.deps.gateway.clone();
        let span = tracing::info_span!(
            parent: None,
            "settle_orders",
            otel.name = "broker settle_orders",
            unsettled = unsettled.len(),
        );
        let fut = async move {
            let (known, unknown): (Vec<_>, Vec<_>) = unsettled
                .into_iter()
                .partition(|r| r.submitted_at.is_some());
            // Only an order whose send was attempted and whose outcome is unknown is looked up:
            // one still `Submitting` (perhaps queued behind the rate limiter) is its submit
            // task's to settle, and asking the venue for it spends quota on "not found".
            let unknown: Vec<_> = unknown
                .into_iter()
                .filter(|r| r.state == OrderState::Unknown)
                .collect();
            let mut answers: Vec<(OrderRecord, Result<Option<Order>, BrokerError>)> = Vec::new();
            if let Some(oldest) = known.iter().filter_map(|r| r.submitted_at).min() {
                // Only what settles herd's orders: their symbols, since the oldest of them.
                let mut symbols: Vec<&str> = known.iter().map(|r| r.symbol.as_str()).collect();
                symbols.sort_unstable();
                symbols.dedup();
                match gateway.orders_after(oldest - LIST_MARGIN, &symbols).await {
                    Ok(listed) => {
                        let mut by_cid: HashMap<String, Order> = listed
                            .into_iter()
                            .map(|o| (o.client_order_id.clone(), o))
                            .collect();
                        for r in known {
                            // Not in the list (e.g. more than a page of orders): ask directly.
                            let answer =
                                match (by_cid.remove(r.client_order_id.as_str()), &r.order_id) {
                                    (Some(o), _) => Ok(Some(o)),
                                    (None, Some(id)) => {
                                        gateway.order(id).await.map(Some).map_err(BrokerError::from)
                                    }
                                    (None, None) => Ok(None),
                                };
                            answers.push((r, answer));
                        }
                    }
                    Err(e) => answers.extend(
                        known
                            .into_iter()
                            .map(|r| (r, Err(BrokerError::from(e.clone())))),
                    ),
                }
            }
            for r in unknown {
                let answer = submit::lookup(&gateway, r.client_order_id.as_str())
                    .await
                    .map_err(BrokerError::from);
                answers.push((r, answer));
            }
            answers
        }
        .instrument(span);
        ctx.spawn(self.guard(async move { Ok(fut.await) }).map(|answers, act, _| {
            act.refreshing = false;
            // A panic has already stopped this incarnation; the next one refreshes afresh.
            let Ok(answers) = answers else {
                return;
            };
            for (record, answer) in answers {
                act.observe(answer.as_ref().err());
                match answer {
                    Ok(Some(order)) => act.apply(&record.client_order_id, &order),
                    // The venue never received it: the decision was not executed.
                    Ok(None) if record.state == OrderState::Unknown => {
                        act.deps.book.mark(
                            &record.client_order_id,
                            OrderState::Rejected,
                            "the venue has no order with this client_order_id".into(),
                        );
                    }
                    Ok(None) => {}
                    Err(e) => tracing::debug!(client_order_id = %record.client_order_id, error = %e, "order lookup failed"),
                }
            }
        }));
    }
}
