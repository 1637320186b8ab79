//! Deterministic `client_order_id`s.
//!
//! The id is a function of (instance, symbol, side, the bar the decision was made on), so the
//! same decision — repeated by a retry, a restart or an overlapping tick — always carries the
//! same id, and the venue refuses a second copy (Alpaca: 422, unique per account for all time).
//!
//! Format: `<instance prefix>-<24 hex>`, at most 41 characters (Alpaca's older limit is 48).
//! The hex is a UUIDv5 (SHA-1) of the full inputs, so the prefix is for humans only.
//!
//! Invariant: the derivation never changes between versions; ids persist at the venue.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::{ClientOrderId, InstanceId, Side, Symbol};

/// herd's UUIDv5 namespace (a random v4 fixed forever).
const NAMESPACE: Uuid = Uuid::from_u128(0x6c2d_0e3a_8f4b_4c1e_9d7a_2b5e_1f30_7a44);
pub(super) const PREFIX_LEN: usize = 16;

pub fn client_order_id(
    instance: &InstanceId,
    symbol: &Symbol,
    side: Side,
    decided_on: DateTime<Utc>,
) -> ClientOrderId {
    let name = format!(
        "{}|{}|{}|{}",
        instance.as_str(),
        symbol.as_str(),
        side.as_str(),
        decided_on.timestamp_millis()
    );
    from_name(instance, &name)
}

/// The id of the second leg of a decision sent in two (see `legs.rs`): the same inputs plus the
/// leg number, so it is as stable as the first leg's.
pub fn second_leg_id(
    instance: &InstanceId,
    symbol: &Symbol,
    side: Side,
    decided_on: DateTime<Utc>,
) -> ClientOrderId {
    let name = format!(
        "{}|{}|{}|{}|leg2",
        instance.as_str(),
        symbol.as_str(),
        side.as_str(),
        decided_on.timestamp_millis()
    );
    from_name(instance, &name)
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
        let leg = second_leg_id(
            &InstanceId::parse("momentum-etf").unwrap(),
            &Symbol::parse("SPY").unwrap(),
            Side::Buy,
            t(0),
        );
        assert_ne!(leg, pinned);
        assert_eq!(leg.as_str().len(), pinned.as_str().len());
    }
}
