//! What happens at start, before any strategy ticks: orders the journal left unsettled are
//! looked up at the venue by `client_order_id` and settled; a new or lost journal is rebuilt
//! from the venue's own order history (every herd `client_order_id` starts with its instance's
//! id); and the account's positions are compared with the ledgers.
//!
//! Invariants:
//! - Nothing here places an order. An order herd cannot settle now (the venue is unreachable)
//!   stays working in the book: its quantity counts as pending for its instance, so the
//!   instance does not decide the same trade again, and the refresh loop keeps looking it up.
//! - A difference between the account and the ledgers is reported, never written over.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::alpaca::models::Order;
use super::book::{OrderBook, OrderState};
use super::gateway::Gateway;
use super::order_id::PREFIX_LEN;
use super::positions::observe_account;
use crate::domain::{ClientOrderId, InstanceId, OrderRecord, Symbol};
use crate::metrics::Metrics;

/// Length of the hash after an instance's prefix in a `client_order_id`.
const HASH_LEN: usize = 24;
/// Listing pages while rebuilding from the venue, at most (500 orders each).
const MAX_PAGES: usize = 200;

/// What recovery found, for the start-up log line and tests.
#[derive(Debug, Default, Clone)]
pub struct Recovery {
    /// Orders the journal left unsettled.
    pub unsettled: usize,
    /// Of those, settled by a lookup now.
    pub settled: usize,
    /// Orders adopted from the venue's history (a new or lost journal).
    pub rebuilt: usize,
    pub mismatches: usize,
    /// Why a step could not be done (the venue unreachable); later steps still ran.
    pub errors: Vec<String>,
}

/// Settles, rebuilds and reconciles; see the module header.
pub async fn recover(
    gateway: &Gateway,
    book: &OrderBook,
    metrics: &Metrics,
    instances: &[InstanceId],
    journal_empty: bool,
    history: Duration,
) -> Recovery {
    let mut r = Recovery::default();
    let orphaned = book.orphan_submitting();
    if orphaned > 0 {
        tracing::warn!(
            event = "orders_orphaned",
            orphaned,
            "orders were being submitted when herd stopped; looking them up by client_order_id"
        );
    }
    let unsettled = book.unsettled();
    r.unsettled = unsettled.len();
    for record in unsettled {
        let cid = record.client_order_id.as_str();
        match gateway.order_by_client_id(cid).await {
            Ok(Some(order)) => {
                book.apply_venue(&record.client_order_id, &order);
                r.settled += 1;
            }
            Ok(None) => {
                // Never reached the venue: the decision was not executed.
                book.mark(
                    &record.client_order_id,
                    OrderState::Rejected,
                    "the venue has no order with this client_order_id (herd stopped before sending it)"
                        .into(),
                );
                r.settled += 1;
            }
            Err(e) => r.errors.push(format!("looking up {cid}: {e}")),
        }
    }
    if journal_empty {
        match rebuild(gateway, book, instances, history).await {
            Ok(n) => r.rebuilt = n,
            Err(e) => r
                .errors
                .push(format!("reading the venue's order history: {e}")),
        }
    }
    match gateway.positions().await {
        Ok(held) => {
            r.mismatches = observe_account(gateway.account_id(), book, metrics, &held)
                .mismatches
                .len()
        }
        Err(e) => r
            .errors
            .push(format!("reading the account's positions: {e}")),
    }
    tracing::info!(
        event = "recovered", unsettled = r.unsettled, settled = r.settled, rebuilt = r.rebuilt,
        mismatches = r.mismatches, errors = ?r.errors,
        "journal and venue reconciled; strategies start now"
    );
    r
}

/// Adopts the venue's orders whose `client_order_id` names a configured instance; returns how
/// many.
async fn rebuild(
    gateway: &Gateway,
    book: &OrderBook,
    instances: &[InstanceId],
    history: Duration,
) -> Result<usize, String> {
    let owners = owners_by_prefix(instances);
    let since =
        Utc::now() - chrono::TimeDelta::from_std(history).unwrap_or(chrono::TimeDelta::days(365));
    let mut found: BTreeMap<String, Order> = BTreeMap::new();
    let mut after = since;
    for _ in 0..MAX_PAGES {
        let page = gateway
            .orders_after(after, &[])
            .await
            .map_err(|e| e.to_string())?;
        let Some(last) = page.last().map(|o| o.created_at) else {
            break;
        };
        let full = page.len() >= 500;
        let before = found.len();
        for order in page {
            found.entry(order.id.clone()).or_insert(order);
        }
        // `after` is exclusive: step back a millisecond so orders sharing the last time are
        // not skipped (duplicates are dropped by id).
        after = last - chrono::TimeDelta::milliseconds(1);
        if !full || found.len() == before {
            break;
        }
    }
    let records: Vec<OrderRecord> = found
        .into_values()
        .filter_map(|o| {
            let instance = owner(&owners, &o.client_order_id)?;
            record_from_venue(instance, o)
        })
        .collect();
    let n = records.len();
    if n > 0 {
        let instances: std::collections::BTreeSet<&str> =
            records.iter().map(|r| r.instance.as_str()).collect();
        tracing::warn!(
            event = "ledgers_rebuilt_from_venue", orders = n, instances = ?instances,
            since = %since,
            "the journal was empty but the venue holds herd's orders: ledgers rebuilt from the venue's order history"
        );
        book.adopt(records);
    }
    Ok(n)
}

/// Each configured instance by the prefix its ids start with; a prefix two instances share is
/// left out (their orders cannot be told apart) and logged.
fn owners_by_prefix(instances: &[InstanceId]) -> HashMap<String, Option<InstanceId>> {
    let mut owners: HashMap<String, Option<InstanceId>> = HashMap::new();
    for id in instances {
        let prefix: String = id.as_str().chars().take(PREFIX_LEN).collect();
        owners
            .entry(format!("{prefix}-"))
            .and_modify(|o| *o = None)
            .or_insert_with(|| Some(id.clone()));
    }
    for (prefix, owner) in &owners {
        if owner.is_none() {
            tracing::warn!(
                prefix = %prefix,
                "instances share this client_order_id prefix; their orders are not rebuilt from the venue"
            );
        }
    }
    owners
}

fn owner(owners: &HashMap<String, Option<InstanceId>>, cid: &str) -> Option<InstanceId> {
    let (prefix, hash) = cid.split_at(cid.len().checked_sub(HASH_LEN)?);
    if !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    owners.get(prefix)?.clone()
}

fn record_from_venue(instance: InstanceId, o: Order) -> Option<OrderRecord> {
    let now: DateTime<Utc> = Utc::now();
    Some(OrderRecord {
        instance,
        client_order_id: ClientOrderId::new(o.client_order_id),
        order_id: Some(o.id),
        symbol: Symbol::parse(&o.symbol).ok()?,
        side: o.side?,
        qty: o.qty.unwrap_or(o.filled_qty),
        state: OrderState::from_venue(o.status),
        venue_status: Some(o.status),
        submitted_at: Some(o.created_at),
        filled_qty: o.filled_qty,
        filled_avg_price: o.filled_avg_price,
        decided_on: o.created_at,
        reason: "rebuilt from the venue's order history".into(),
        error: None,
        created_at: o.created_at,
        updated_at: o.updated_at.unwrap_or(now),
        lease_epoch: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::order_id::client_order_id;
    use crate::domain::Side;
    use rust_decimal::Decimal;

    #[test]
    fn an_id_names_its_instance_unless_the_prefix_is_shared() {
        let ids: Vec<InstanceId> = [
            "momentum-etf",
            "a-very-long-instance-one",
            "a-very-long-instance-two",
            "m",
        ]
        .iter()
        .map(|s| InstanceId::parse(s).unwrap())
        .collect();
        let owners = owners_by_prefix(&ids);
        let spy = Symbol::parse("SPY").unwrap();
        let cid = |i: &InstanceId| {
            client_order_id(i, &spy, Side::Buy, Utc::now())
                .as_str()
                .to_owned()
        };
        assert_eq!(owner(&owners, &cid(&ids[0])), Some(ids[0].clone()));
        assert_eq!(owner(&owners, &cid(&ids[3])), Some(ids[3].clone()));
        assert_eq!(
            owner(&owners, &cid(&ids[1])),
            None,
            "16-char prefix shared by two instances"
        );
        assert_eq!(owner(&owners, "someone-else-order"), None);
        assert_eq!(owner(&owners, "m-not-hex-not-hex-not-hex-xx"), None);
    }

    #[test]
    fn a_filled_venue_order_becomes_a_record_with_its_fill() {
        let order: Order = serde_json::from_value(serde_json::json!({
            "id": "v-1", "client_order_id": "m-0123456789abcdef01234567", "symbol": "SPY",
            "qty": "10", "filled_qty": "10", "filled_avg_price": "101.5", "side": "buy",
            "type": "market", "status": "filled", "created_at": "2026-03-02T15:00:00Z"
        }))
        .unwrap();
        let r = record_from_venue(InstanceId::parse("m").unwrap(), order).unwrap();
        assert_eq!(r.state, OrderState::Filled);
        assert_eq!(r.filled_qty, Decimal::from(10));
    }
}
