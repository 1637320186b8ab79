//! The risk gate's rules, one refusal at a time, and the reducing orders they must let through.

use super::*;

fn d(text: &str) -> Decimal {
    text.parse().unwrap()
}

fn ctx(side: Side, qty: Decimal, instance: Decimal, account: Decimal) -> OrderContext {
    OrderContext {
        side,
        qty,
        price: Some(d("100")),
        instance_position: instance,
        account_position: account,
        daily_pnl: Decimal::ZERO,
        realized_today: Decimal::ZERO,
        instance_realized_today: Decimal::ZERO,
    }
}

fn buy(qty: Decimal) -> OrderContext {
    ctx(Side::Buy, qty, Decimal::ZERO, Decimal::ZERO)
}

fn limits() -> RiskLimits {
    RiskLimits {
        max_order_value: Some(d("10000")),
        max_position_per_symbol: Some(d("50000")),
        max_position_per_instance: Some(d("25000")),
        max_daily_loss: Some(d("2000")),
        max_daily_loss_per_instance: Some(d("500")),
    }
}

fn trading(state: TradingState) -> Trading {
    Trading {
        state,
        reason: None,
    }
}

fn refusal(ctx: &OrderContext, limits: &RiskLimits, state: &Trading) -> &'static str {
    check_order(ctx, limits, state)
        .unwrap_err()
        .reason()
        .as_str()
}

use TradingState::{Active, Halted, Reducing};

#[test]
fn halted_refuses_every_order_even_a_reducing_one() {
    let sell_long = ctx(Side::Sell, d("5"), d("10"), d("10"));
    assert!(sell_long.is_reducing());
    assert_eq!(
        refusal(&sell_long, &RiskLimits::default(), &trading(Halted)),
        "halted"
    );
    let why = Trading {
        state: Halted,
        reason: Some("broker failed: panicked".into()),
    };
    let refused = check_order(&sell_long, &RiskLimits::default(), &why).unwrap_err();
    assert_eq!(
        refused.to_string(),
        "trading is halted: broker failed: panicked",
        "the operator reads why"
    );
}

#[test]
fn non_positive_quantity_is_refused() {
    assert_eq!(
        refusal(&buy(d("0")), &limits(), &trading(Active)),
        "invalid_quantity"
    );
    assert_eq!(
        refusal(&buy(d("-3")), &limits(), &trading(Active)),
        "invalid_quantity"
    );
}

#[test]
fn reducing_state_allows_only_orders_that_reduce_exposure() {
    let none = RiskLimits::default();
    let sell_long = ctx(Side::Sell, d("10"), d("10"), d("10"));
    let cover_short = ctx(Side::Buy, d("4"), d("-10"), d("-10"));
    assert_eq!(check_order(&sell_long, &none, &trading(Reducing)), Ok(()));
    assert_eq!(check_order(&cover_short, &none, &trading(Reducing)), Ok(()));
    let open = buy(d("1"));
    let add_to_long = ctx(Side::Buy, d("1"), d("10"), d("10"));
    let flip_to_short = ctx(Side::Sell, d("15"), d("10"), d("10"));
    for order in [open, add_to_long, flip_to_short] {
        assert_eq!(
            refusal(&order, &none, &trading(Reducing)),
            "reducing_only",
            "{order:?}"
        );
    }
}

#[test]
fn closing_an_instance_long_on_a_flat_account_is_not_reducing() {
    // Another instance is short the same 10: selling would open a short at the venue.
    let order = ctx(Side::Sell, d("10"), d("10"), d("0"));
    assert!(!order.is_reducing());
    let refused = check_order(&order, &RiskLimits::default(), &trading(Reducing)).unwrap_err();
    assert_eq!(
        refused.to_string(),
        "trading is reducing-only: sell 10 would not reduce the position (instance 10, account 0)"
    );
}

#[test]
fn max_order_value_refuses_above_the_limit_with_the_numbers() {
    let refused = check_order(&buy(d("123.45")), &limits(), &trading(Active)).unwrap_err();
    assert_eq!(refused.reason().as_str(), "max_order_value");
    assert_eq!(
        refused.to_string(),
        "order value 12,345.00 USD exceeds max_order_value 10,000.00"
    );
    assert_eq!(
        check_order(&buy(d("100")), &limits(), &trading(Active)),
        Ok(()),
        "exactly at the limit"
    );
}

#[test]
fn max_order_value_applies_to_reducing_orders_too() {
    let dump = ctx(Side::Sell, d("500"), d("500"), d("500"));
    assert_eq!(
        refusal(&dump, &limits(), &trading(Active)),
        "max_order_value"
    );
}

#[test]
fn an_order_needing_a_value_without_a_price_is_refused() {
    let mut order = buy(d("1"));
    order.price = None;
    assert_eq!(refusal(&order, &limits(), &trading(Active)), "no_price");
    order.price = Some(Decimal::ZERO);
    assert_eq!(refusal(&order, &limits(), &trading(Active)), "no_price");
    let only_positions = RiskLimits {
        max_order_value: None,
        max_daily_loss: None,
        ..limits()
    };
    assert_eq!(
        refusal(&order, &only_positions, &trading(Active)),
        "no_price"
    );
    // A reducing order needs no value under position limits.
    let mut sell_long = ctx(Side::Sell, d("5"), d("10"), d("10"));
    sell_long.price = None;
    assert_eq!(
        check_order(&sell_long, &only_positions, &trading(Active)),
        Ok(())
    );
    assert_eq!(
        check_order(&order, &RiskLimits::default(), &trading(Active)),
        Ok(()),
        "no limits, no price needed"
    );
}

#[test]
fn account_wide_position_limit_counts_every_instance() {
    // This instance holds 50 shares, the account 498 (others hold the rest).
    let order = ctx(Side::Buy, d("5"), d("50"), d("498"));
    let refused = check_order(&order, &limits(), &trading(Active)).unwrap_err();
    assert_eq!(refused.reason().as_str(), "max_position_symbol");
    assert_eq!(
        refused.to_string(),
        "account position would be 503 shares, 50,300.00 USD, above max_position_per_symbol 50,000.00"
    );
}

#[test]
fn instance_position_limit_caps_one_instance() {
    let order = ctx(Side::Buy, d("10"), d("245"), d("245"));
    assert_eq!(
        refusal(&order, &limits(), &trading(Active)),
        "max_position_instance"
    );
    let short = ctx(Side::Sell, d("10"), d("-245"), d("-245"));
    assert_eq!(
        refusal(&short, &limits(), &trading(Active)),
        "max_position_instance",
        "shorts count by size"
    );
}

#[test]
fn reducing_orders_pass_position_limits_already_exceeded() {
    let no_order_cap = RiskLimits {
        max_order_value: None,
        ..limits()
    };
    let sell_long = ctx(Side::Sell, d("100"), d("900"), d("900"));
    let cover_short = ctx(Side::Buy, d("100"), d("-900"), d("-900"));
    assert_eq!(
        check_order(&sell_long, &no_order_cap, &trading(Active)),
        Ok(())
    );
    assert_eq!(
        check_order(&cover_short, &no_order_cap, &trading(Active)),
        Ok(())
    );
}

#[test]
fn losses_realized_today_count_for_the_account_and_for_each_instance() {
    // Realized by herd's instances (journaled, so a restart keeps them), though the account's
    // equity has recovered since.
    let mut open = buy(d("1"));
    open.realized_today = d("-2100");
    open.daily_pnl = d("50");
    let refused = check_order(&open, &limits(), &trading(Active)).unwrap_err();
    assert_eq!(refused.reason().as_str(), "max_daily_loss");
    // One instance's own realized loss stops only its new exposure.
    let mut own = buy(d("1"));
    own.instance_realized_today = d("-500");
    let refused = check_order(&own, &limits(), &trading(Active)).unwrap_err();
    assert_eq!(refused.reason().as_str(), "max_daily_loss_instance");
    assert_eq!(
        refused.to_string(),
        "this instance realized a loss of 500.00 USD today, reaching max_daily_loss_per_instance \
         500.00: only its orders that reduce exposure are allowed"
    );
    let mut closing = ctx(Side::Sell, d("10"), d("10"), d("10"));
    closing.instance_realized_today = d("-900");
    assert_eq!(check_order(&closing, &limits(), &trading(Active)), Ok(()));
    own.instance_realized_today = d("-499.99");
    assert_eq!(check_order(&own, &limits(), &trading(Active)), Ok(()));
}

#[test]
fn daily_loss_breach_refuses_new_exposure_but_allows_reducing() {
    let mut open = buy(d("1"));
    open.daily_pnl = d("-2000");
    let refused = check_order(&open, &limits(), &trading(Active)).unwrap_err();
    assert_eq!(refused.reason().as_str(), "max_daily_loss");
    assert_eq!(
        refused.to_string(),
        "daily loss 2,000.00 USD reaches max_daily_loss 2,000.00: only orders that reduce exposure are allowed"
    );
    let mut sell_long = ctx(Side::Sell, d("10"), d("10"), d("10"));
    sell_long.daily_pnl = d("-5000");
    assert_eq!(check_order(&sell_long, &limits(), &trading(Active)), Ok(()));
    open.daily_pnl = d("-1999.99");
    assert_eq!(
        check_order(&open, &limits(), &trading(Active)),
        Ok(()),
        "below the limit"
    );
    open.daily_pnl = d("30000");
    assert_eq!(
        check_order(&open, &limits(), &trading(Active)),
        Ok(()),
        "a profit is no loss"
    );
}

#[test]
fn daily_pnl_is_equity_against_last_close() {
    assert_eq!(daily_pnl(d("98500.25"), d("100000")), d("-1499.75"));
}

#[test]
fn usd_groups_thousands_and_keeps_two_decimals() {
    let cases = [
        (d("0"), "0.00"),
        (d("999.995"), "1,000.00"),
        (d("1234567.891"), "1,234,567.89"),
        (d("-12345"), "-12,345.00"),
        (d("-0.001"), "0.00"),
    ];
    for (value, text) in cases {
        assert_eq!(Usd(value).to_string(), text);
    }
}

#[test]
fn reason_labels_are_a_bounded_distinct_set() {
    let refusals = [
        Refusal::Halted { why: None },
        Refusal::ReducingOnly {
            side: Side::Buy,
            qty: d("1"),
            instance_position: d("0"),
            account_position: d("0"),
        },
        Refusal::InvalidQuantity { qty: d("0") },
        Refusal::NoPrice,
        Refusal::MaxOrderValue {
            value: d("2"),
            limit: d("1"),
        },
        Refusal::MaxDailyLoss {
            loss: d("2"),
            limit: d("1"),
        },
        Refusal::MaxPositionSymbol {
            position_after: d("1"),
            value: d("2"),
            limit: d("1"),
        },
        Refusal::MaxPositionInstance {
            position_after: d("1"),
            value: d("2"),
            limit: d("1"),
        },
    ];
    let reasons: Vec<_> = refusals.iter().map(Refusal::reason).collect();
    for (i, r) in reasons.iter().enumerate() {
        assert!(!reasons[i + 1..].contains(r), "{r:?} twice");
    }
}

#[test]
fn limits_deserialize_with_absent_keys_meaning_no_limit() {
    let parsed: RiskLimits =
        toml::from_str("max_order_value = 1000\nmax_daily_loss = \"250.50\"").unwrap();
    let expected = RiskLimits {
        max_order_value: Some(d("1000")),
        max_daily_loss: Some(d("250.50")),
        ..RiskLimits::default()
    };
    assert_eq!(parsed, expected);
    assert_eq!(
        toml::from_str::<RiskLimits>("").unwrap(),
        RiskLimits::default()
    );
    assert!(toml::from_str::<RiskLimits>("max_order_value_usd = 1").is_err());
    let negative = RiskLimits {
        max_position_per_symbol: Some(d("-5")),
        ..RiskLimits::default()
    };
    assert_eq!(
        negative.check("broker.risk").unwrap_err().to_string(),
        "broker.risk.max_position_per_symbol = -5: must be greater than zero (leave the key out for no limit)"
    );
    assert_eq!(limits().check("broker.risk"), Ok(()));
}
