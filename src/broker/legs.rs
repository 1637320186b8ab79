//! An order that would take the account's position through zero, sent as two legs.
//!
//! The venue refuses one order that flips a position — selling more than the long position, or
//! buying more than the short — with "insufficient qty available for order" (403, code
//! 40310000; Alpaca-API#276, and the simulator does the same). With several instances on one
//! account that is ordinary: one instance short 2 GLD, another buying 12. So such an order is
//! sent as a closing leg that brings the account to zero, then, once that leg has filled
//! completely, an opening leg for the rest; both are the deciding instance's.
//!
//! Invariants:
//! - The opening leg leaves only after the closing leg filled completely (within `LANE_HOLD`),
//!   and never while the broker drains; otherwise the decision stands partly executed and the
//!   instance decides again.
//! - The opening leg's `client_order_id` derives from the decision with the leg number, so it is
//!   as stable as the first leg's.

use std::sync::Arc;

use actix::prelude::*;
use rust_decimal::Decimal;
use tracing::Span;

use super::book::{Begin, OrderRecord, OrderState};
use super::lanes::{LANE_HOLD, until_final};
use super::order_id::OrderIds;
use super::{BrokerActor, BrokerError};
use crate::domain::{ClientOrderId, OrderIntent, Side};
use crate::journal::Ticket;

/// What placing an order answers.
pub(super) type Placed = ResponseActFuture<BrokerActor, Result<OrderRecord, BrokerError>>;

/// `(closing, opening)` quantities when an order of `qty` on `side` would take an account
/// holding `account` through zero; `None` when it would not.
pub fn split_at_zero(side: Side, qty: Decimal, account: Decimal) -> Option<(Decimal, Decimal)> {
    let against = match side {
        Side::Buy => account < Decimal::ZERO,
        Side::Sell => account > Decimal::ZERO,
    };
    (against && qty > account.abs()).then(|| (account.abs(), qty - account.abs()))
}

impl BrokerActor {
    /// Sends `intent` (recorded as `record` under `ids.first`) as a closing leg of `close`
    /// shares, then an opening leg of `open` shares under `ids.second_leg` once the first has
    /// filled.
    pub(super) fn place_in_legs(
        &mut self,
        record: OrderRecord,
        ticket: Option<Ticket>,
        intent: OrderIntent,
        OrderIds {
            first: cid,
            second_leg,
        }: OrderIds,
        (close, open): (Decimal, Decimal),
        trace: Span,
    ) -> Placed {
        let note = "closing leg: the venue refuses one order through zero";
        // The resized intent is what must be durable before the closing leg is sent.
        let (record, ticket) = self
            .deps
            .book
            .resize(&cid, close, note)
            .unwrap_or((record, ticket));
        tracing::info!(
            event = "order_split", instance = %record.instance, symbol = %record.symbol,
            side = %record.side, closing = %close, opening = %open,
            "order would take the account through zero; sending it in two legs"
        );
        let first = OrderIntent {
            qty: close,
            ..intent.clone()
        };
        let placed = self.place(record, ticket, first, cid.clone(), &trace);
        Box::pin(placed.then(move |first, act, _| -> Placed {
            let first = match first {
                Ok(r) => r,
                Err(e) => return Box::pin(fut::ready(Err(e))),
            };
            let (book, poll) = (Arc::clone(&act.deps.book), act.deps.order_poll);
            let settled = async move { Ok(until_final(&book, &cid, poll, LANE_HOLD).await) };
            Box::pin(act.guard(settled).then(move |settled, act, _| -> Placed {
                let filled = matches!(&settled, Ok(Some(r)) if r.state == OrderState::Filled);
                if !filled || act.draining {
                    tracing::warn!(
                        event = "order_leg_not_sent", instance = %first.instance,
                        symbol = %first.symbol, closing_leg = %first.client_order_id,
                        draining = act.draining,
                        "the opening leg is not sent: the closing leg did not fill (or herd is draining)"
                    );
                    return Box::pin(fut::ready(settled.map(|r| r.unwrap_or(first))));
                }
                act.place_second_leg(&first, second_leg, intent, open, &trace)
            }))
        }))
    }

    fn place_second_leg(
        &mut self,
        first: &OrderRecord,
        cid: ClientOrderId,
        intent: OrderIntent,
        open: Decimal,
        trace: &Span,
    ) -> Placed {
        let second = OrderIntent {
            qty: open,
            reason: format!("{} (opening leg)", intent.reason),
            ..intent
        };
        match self
            .deps
            .book
            .begin(&first.instance, &second, cid.clone(), first.lease_epoch)
        {
            Begin::Existing(record) => Box::pin(fut::ready(Ok(record))),
            Begin::New(record, ticket) => self.place(record, ticket, second, cid, trace),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: i64) -> Decimal {
        Decimal::from(n)
    }

    #[test]
    fn only_an_order_past_the_accounts_opposite_position_is_split() {
        assert_eq!(split_at_zero(Side::Buy, d(12), d(-2)), Some((d(2), d(10))));
        assert_eq!(split_at_zero(Side::Sell, d(5), d(3)), Some((d(3), d(2))));
        assert_eq!(
            split_at_zero(Side::Buy, d(2), d(-2)),
            None,
            "exactly closes"
        );
        assert_eq!(
            split_at_zero(Side::Buy, d(12), d(0)),
            None,
            "opens from flat"
        );
        assert_eq!(
            split_at_zero(Side::Buy, d(12), d(4)),
            None,
            "adds to a long"
        );
        assert_eq!(
            split_at_zero(Side::Sell, d(1), d(3)),
            None,
            "reduces a long"
        );
    }
}
