//! The label values of herd's metrics that are outcomes and reasons: closed sets, typed, so a
//! call site can only name a value that exists and a dashboard can rely on the spelling.
//!
//! Invariant: `as_str` of every value is snake_case and never changes (dashboards and alerts
//! match on it); `ALL` lists every value.

/// Declares a label enum with its fixed spelling.
macro_rules! label_values {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }
    };
}

label_values! {
    /// How a strategy tick ended: `herd_strategy_ticks_total{outcome}`.
    TickOutcome {
        Ok => "ok",
        /// The market was closed and the kind trades only while it is open.
        MarketClosed => "market_closed",
        Error => "error",
        /// The previous tick was still running; this one was not started.
        OverlapSkipped => "overlap_skipped",
        /// Another replica drives the instance's account (or this one is still reconciling it).
        Standby => "standby",
        /// The drain began while it read or decided, before any order: it ended there, with no
        /// effect (nothing decided is journaled or sent).
        Abandoned => "abandoned",
    }
}

label_values! {
    /// What a strategy's decision did: `herd_strategy_decisions_total{action}`.
    DecisionKind {
        Order => "order",
        Hold => "hold",
        NoData => "no_data",
    }
}

label_values! {
    /// What became of an order herd decided to place: `herd_orders_total{outcome}`.
    OrderOutcome {
        /// The venue has it.
        Accepted => "accepted",
        /// The venue refused it.
        Rejected => "rejected",
        /// herd did not send it (`herd_orders_refused_total` says why).
        Refused => "refused",
        /// Sent; whether the venue has it is still being found out.
        Unknown => "unknown",
    }
}

label_values! {
    /// Why herd refused to send an order: `herd_orders_refused_total{reason}`.
    RefusalReason {
        Halted => "halted",
        ReducingOnly => "reducing_only",
        InvalidQuantity => "invalid_quantity",
        NoPrice => "no_price",
        MaxOrderValue => "max_order_value",
        MaxDailyLoss => "max_daily_loss",
        MaxDailyLossInstance => "max_daily_loss_instance",
        MaxPositionSymbol => "max_position_symbol",
        MaxPositionInstance => "max_position_instance",
        /// The account or positions the risk gate needs could not be read (fail closed).
        RiskInputsUnavailable => "risk_inputs_unavailable",
        BreakerOpen => "breaker_open",
        RateLimitSaturated => "rate_limit_saturated",
        /// The order's intent could not be made durable in the journal in time.
        JournalUnavailable => "journal_unavailable",
        /// The drain began before the order was sent.
        Draining => "draining",
        /// Another replica holds the account's lease.
        NotOwner => "not_owner",
    }
}

label_values! {
    /// The outcome of one upstream call: `herd_broker_requests_total{outcome}`.
    RequestOutcome {
        Ok => "ok",
        Timeout => "timeout",
        ConnectError => "connect_error",
        ServerError => "server_error",
        RateLimited => "rate_limited",
        Rejected => "rejected",
        NotFound => "not_found",
        Unauthorized => "unauthorized",
        Malformed => "malformed",
    }
}

label_values! {
    /// Why a read failed for good: `herd_broker_read_failures_total{reason}`.
    ReadFailure {
        BreakerOpen => "breaker_open",
        /// The outbound quota had no token within the read's max wait.
        Saturated => "saturated",
        NotRetryable => "not_retryable",
        AttemptsExhausted => "attempts_exhausted",
        BudgetExhausted => "budget_exhausted",
        RateLimitTooLong => "rate_limit_too_long",
    }
}

label_values! {
    /// What a risk manager raised: `herd_risk_alerts_total{alert}`.
    RiskAlert {
        /// A guarded position moved its stop-loss against its entry and is being closed.
        StopLoss => "stop_loss",
        MaxDrawdown => "max_drawdown",
        MaxVar => "max_var",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_snake_case_and_unique<T: Copy>(all: &[T], label: fn(T) -> &'static str) {
        let labels: Vec<_> = all.iter().map(|v| label(*v)).collect();
        for (i, l) in labels.iter().enumerate() {
            assert!(l.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{l}");
            assert!(!labels[i + 1..].contains(l), "{l} twice");
        }
    }

    #[test]
    fn every_label_is_snake_case_and_unique_within_its_set() {
        assert_snake_case_and_unique(TickOutcome::ALL, TickOutcome::as_str);
        assert_snake_case_and_unique(DecisionKind::ALL, DecisionKind::as_str);
        assert_snake_case_and_unique(OrderOutcome::ALL, OrderOutcome::as_str);
        assert_snake_case_and_unique(RefusalReason::ALL, RefusalReason::as_str);
        assert_snake_case_and_unique(RequestOutcome::ALL, RequestOutcome::as_str);
        assert_snake_case_and_unique(ReadFailure::ALL, ReadFailure::as_str);
        assert_snake_case_and_unique(RiskAlert::ALL, RiskAlert::as_str);
        assert_snake_case_and_unique(
            crate::domain::Lifecycle::ALL,
            crate::domain::Lifecycle::as_str,
        );
    }
}
