//! Deterministic `client_order_id`s.
//!
//! The id is a function of (instance, symbol, side, the bar the decision was made on), so the
//! same decision — repeated by a retry, a restart or an overlapping tick — always carries the
//! same id, and the venue refuses a second copy (Alpaca: 422, unique per account for all time).
//! An order decided for an instance by another (a risk manager's stop) also names the decider:
//! otherwise it would take the id of the instance's own decision on the same bar, symbol and
//! side, and be taken for a repeat of it and never sent.
//!
//! Format: `<instance prefix>-<24 hex>`, at most 41 characters (Alpaca's older limit is 48).
//! The hex is a UUIDv5 (SHA-1) of the full inputs, so the prefix is for humans only.
//!
//! Invariant: the derivation never changes between versions; ids persist at the venue. (Stops
//! took their instance's own ids before deciders were named: one decided again after an
//! upgrade gets the new id, which is safe because a risk manager sends no stop while an order
//! of the instance is working, and a filled stop leaves nothing to stop.)

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::{ClientOrderId, InstanceId, Side, Symbol};

/// herd's UUIDv5 namespace (a random v4 fixed forever).
const NAMESPACE: Uuid = Uuid::from_u128(0x6c2d_0e3a_8f4b_4c1e_9d7a_2b5e_1f30_7a44);
pub(super) const PREFIX_LEN: usize = 16;

/// The id of an instance's own decision (tests name orders by it).
#[cfg(test)]
pub fn client_order_id(
    instance: &InstanceId,
    symbol: &Symbol,
    side: Side,
    decided_on: DateTime<Utc>,
) -> ClientOrderId {
    order_ids(instance, instance, symbol, side, decided_on).first
}

/// The ids of one order: its own, and its second leg's should it go through zero (see
/// `legs.rs`; the same inputs plus the leg number, so as stable as the first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderIds {
    pub first: ClientOrderId,
    pub second_leg: ClientOrderId,
}

/// The ids of an order for `instance` that `decided_by` decided. The instance's own decisions
/// keep the names they always had; one decided on its behalf adds `|by|<decider>`, a name no
/// earlier version gave.
pub fn order_ids(
    instance: &InstanceId,
    decided_by: &InstanceId,
    symbol: &Symbol,
    side: Side,
    decided_on: DateTime<Utc>,
) -> OrderIds {
    let mut name = decision_name(instance, symbol, side, decided_on);
    if decided_by != instance {
        name.push_str("|by|");
        name.push_str(decided_by.as_str());
    }
    OrderIds {
        first: from_name(instance, &name),
        second_leg: from_name(instance, &format!("{name}|leg2")),
    }
}

fn decision_name(
    instance: &InstanceId,
    symbol: &Symbol,
    side: Side,
    decided_on: DateTime<Utc>,
) -> String {
    format!(
        "{}|{}|{}|{}",
        instance.as_str(),
        symbol.as_str(),
        side.as_str(),
        decided_on.timestamp_millis()
    )
}

fn from_name(instance: &InstanceId, name: &str) -> ClientOrderId {
    let hash = Uuid::new_v5(&NAMESPACE, name.as_bytes())
        .simple()
        .to_string();
    let prefix: String = instance.as_str().chars().take(PREFIX_LEN).collect();
    ClientOrderId::new(format!("{prefix}-{}", &hash[..24]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 15, min, 0).unwrap()
    }

    #[test]
    fn same_decision_same_id_and_any_difference_changes_it() {
        let i = InstanceId::parse("momentum-etf").unwrap();
        let spy = Symbol::parse("SPY").unwrap();
        let base = client_order_id(&i, &spy, Side::Buy, t(0));
        assert_eq!(base, client_order_id(&i, &spy, Side::Buy, t(0)));
        assert_ne!(base, client_order_id(&i, &spy, Side::Sell, t(0)));
        assert_ne!(base, client_order_id(&i, &spy, Side::Buy, t(5)));
        assert_ne!(
            base,
            client_order_id(&i, &Symbol::parse("QQQ").unwrap(), Side::Buy, t(0))
        );
        let other = InstanceId::parse("momentum-etf2").unwrap();
        assert_ne!(base, client_order_id(&other, &spy, Side::Buy, t(0)));
    }

    #[test]
    fn ids_fit_alpacas_limit_and_are_stable_across_versions() {
        let long = InstanceId::parse(&"x".repeat(InstanceId::MAX_LEN)).unwrap();
        let id = client_order_id(&long, &Symbol::parse("BRK.B").unwrap(), Side::Sell, t(0));
        assert!(id.as_str().len() <= ClientOrderId::MAX_LEN);
        // Pinned: changing the derivation would let a restarted herd re-place old decisions.
        let pinned = client_order_id(
            &InstanceId::parse("momentum-etf").unwrap(),
            &Symbol::parse("SPY").unwrap(),
            Side::Buy,
            t(0),
        );
        assert_eq!(pinned.as_str(), "momentum-etf-adb224f9d7e357299625b5db");
        let own = InstanceId::parse("momentum-etf").unwrap();
        let ids = order_ids(&own, &own, &Symbol::parse("SPY").unwrap(), Side::Buy, t(0));
        assert_eq!(ids.first, pinned, "an instance's own decision keeps its id");
        assert_eq!(
            ids.second_leg.as_str(),
            "momentum-etf-6abdec3381f15e8fadb9b7c1"
        );
    }

    #[test]
    fn a_decision_made_for_an_instance_by_another_never_takes_one_of_its_own() {
        let (opt, rm) = (
            InstanceId::parse("portfolio-optimizer").unwrap(),
            InstanceId::parse("risk-manager").unwrap(),
        );
        let tsla = Symbol::parse("TSLA").unwrap();
        let own = order_ids(&opt, &opt, &tsla, Side::Sell, t(0));
        let stop = order_ids(&opt, &rm, &tsla, Side::Sell, t(0));
        assert_ne!(stop.first, own.first);
        assert_ne!(stop.second_leg, own.second_leg);
        assert_ne!(stop.first, stop.second_leg);
        // Still the same id for the same decision, and the order's instance's prefix.
        assert_eq!(stop, order_ids(&opt, &rm, &tsla, Side::Sell, t(0)));
        assert!(
            stop.first.as_str().starts_with("portfolio-optimi-"),
            "{stop:?}"
        );
    }
}
