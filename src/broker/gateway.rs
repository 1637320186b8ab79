//! The resilient way to the venue: every read through the outbound limiter, its operation's
//! circuit breaker and the retry policy; every order submission through the limiter (with
//! order priority) and its breaker, exactly once.
//!
//! Invariants:
//! - Nothing but this module calls [`AlpacaClient`] once the BrokerActor runs (the start-up
//!   probe in `app/venue.rs` is the one call before it).
//! - An order submission is never retried here: [`Gateway::submit_once`] makes at most one
//!   POST, and says whether it was sent at all, so `submit.rs` can decide what is safe.
//! - Each page of a bars query is its own guarded read: the quota and the breaker see every
//!   request that goes out.

use std::future::Future;
use std::sync::Arc;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::alpaca::models::{Account, CalendarDay, Clock, Order, OrderRequest, Position};
use super::alpaca::{AlpacaClient, AlpacaError, BarsQuery};
use super::breaker::{BreakerObserver, BreakerOpen, BreakerSet, LogTransitions, Transition};
use super::error::NotSent;
use super::limiter::{LimiterRates, MINUTE, OutboundLimiter, Saturated};
use super::market::VenueSpeed;
use super::retry::{ReadGuards, ReadOp, RetryBudget, RetryError, RetryPolicy, retry_read};
use super::settings::BrokerSettings;
use crate::domain::{AccountId, Bar, BreakerState, Operation, RequestClass, Symbol, SymbolMap};
use crate::metrics::Metrics;

/// Pages followed for one bars query before giving up: a venue that keeps returning tokens
/// must not trap a tick in an endless loop.
const MAX_BAR_PAGES: usize = 100;

/// Why a submission did not produce an order.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SubmitError {
    /// Not sent: the order quota had no token in time.
    #[error("not sent: {0}")]
    Saturated(Saturated),
    /// Not sent: the submit breaker is open.
    #[error("not sent: {0}")]
    BreakerOpen(BreakerOpen),
    /// Not sent: the drain began while it waited for the quota.
    #[error("not sent: herd began draining while the order waited for the quota")]
    Draining,
    /// Sent; the venue's answer (which may leave the outcome unknown).
    #[error(transparent)]
    Venue(AlpacaError),
}

impl SubmitError {
    /// Why nothing was sent, or the venue's answer when the order was.
    pub fn into_not_sent(self) -> Result<NotSent, AlpacaError> {
        match self {
            Self::Saturated(s) => Ok(NotSent::Saturated(s)),
            Self::BreakerOpen(open) => Ok(NotSent::BreakerOpen(open)),
            Self::Draining => Ok(NotSent::Draining),
            Self::Venue(e) => Err(e),
        }
    }
}

/// herd's own limits on its use of the venue, as `/health` shows them.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct Quotas {
    pub trading: LimiterRates,
    pub market_data: LimiterRates,
    /// Retries are allowed while this is above half the budget's size.
    pub retry_budget_tokens: f64,
}

/// Logs every breaker transition and keeps the breaker metrics of its account current.
struct MetricsObserver(AccountId, Arc<Metrics>);

impl BreakerObserver for MetricsObserver {
    fn on_transition(&self, t: &Transition) {
        LogTransitions.on_transition(t);
        self.1.breaker_state(&self.0, t.op, t.to);
        self.1.breaker_transition(&self.0, t.op, t.from, t.to);
    }
}

/// Cheap to clone: every part is shared.
#[derive(Clone)]
pub struct Gateway {
    /// Whose keys and quota these are (metrics carry it).
    account: AccountId,
    client: AlpacaClient,
    policy: Arc<RetryPolicy>,
    budget: Arc<RetryBudget>,
    breakers: BreakerSet,
    /// The trading API's quota: account, clock, positions, orders.
    trading: Arc<OutboundLimiter>,
    /// The market-data API's quota, counted separately by Alpaca.
    data: Arc<OutboundLimiter>,
    metrics: Arc<Metrics>,
}

impl Gateway {
    /// `account`'s way to the venue, with its trading quota and `settings`' breakers, retries
    /// and market-data quota. `speed` is the venue clock's: quotas count per venue minute (see
    /// [`OutboundLimiter::new`]).
    pub fn new(
        account: &super::Account,
        client: AlpacaClient,
        settings: &BrokerSettings,
        speed: VenueSpeed,
        metrics: Arc<Metrics>,
    ) -> Self {
        let observer = Arc::new(MetricsObserver(account.id.clone(), Arc::clone(&metrics)));
        let minute = speed.to_real(MINUTE);
        // Every breaker is closed until it opens: say so from the start.
        for op in Operation::ALL {
            metrics.breaker_state(&account.id, *op, BreakerState::Closed);
        }
        Self {
            account: account.id.clone(),
            client,
            policy: Arc::new(RetryPolicy::new(&settings.retry)),
            budget: Arc::new(RetryBudget::from_config(&settings.retry)),
            breakers: BreakerSet::new(&settings.breaker, observer),
            trading: Arc::new(OutboundLimiter::new(&account.limiter, minute)),
            data: Arc::new(OutboundLimiter::new(&settings.data_limiter, minute)),
            metrics,
        }
    }

    /// Whose keys and quota these are.
    pub fn account_id(&self) -> &AccountId {
        &self.account
    }

    pub fn client(&self) -> &AlpacaClient {
        &self.client
    }

    /// For `/health` and the admin API (reset, force open).
    pub fn breakers(&self) -> &BreakerSet {
        &self.breakers
    }

    /// The rates herd plans to use of each API's quota, and the retry budget left: for `/health`.
    pub fn quotas(&self) -> Quotas {
        Quotas {
            trading: self.trading.rates(),
            market_data: self.data.rates(),
            retry_budget_tokens: self.budget.tokens(),
        }
    }

    async fn read<T, F, Fut>(
        &self,
        op: ReadOp,
        limiter: &OutboundLimiter,
        call: F,
    ) -> Result<T, RetryError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, AlpacaError>>,
    {
        let guards = ReadGuards {
            policy: &self.policy,
            budget: &self.budget,
            breakers: &self.breakers,
            limiter: Some(limiter),
        };
        let retried = retry_read(guards, op, call).await;
        let operation = Operation::from(op);
        self.metrics
            .limiter_wait(&self.account, RequestClass::Read, retried.limiter_wait);
        if retried.retries > 0 {
            self.metrics.retries(operation, retried.retries);
        }
        if let Err(e) = &retried.result {
            self.metrics.read_failure(operation, e.failure());
            match e {
                RetryError::BreakerOpen { .. } => {
                    self.metrics.breaker_rejection(&self.account, operation)
                }
                RetryError::Saturated { .. } => self
                    .metrics
                    .limiter_saturated(&self.account, RequestClass::Read),
                RetryError::GaveUp { .. } => {}
            }
        }
        retried.result
    }

    pub async fn clock(&self) -> Result<Clock, RetryError> {
        self.read(ReadOp::Clock, &self.trading, || self.client.clock())
            .await
    }

    pub async fn account(&self) -> Result<Account, RetryError> {
        self.read(ReadOp::Account, &self.trading, || self.client.account())
            .await
    }

    pub async fn positions(&self) -> Result<Vec<Position>, RetryError> {
        self.read(ReadOp::Positions, &self.trading, || self.client.positions())
            .await
    }

    pub async fn order(&self, id: &str) -> Result<Order, RetryError> {
        self.read(ReadOp::GetOrder, &self.trading, || self.client.order(id))
            .await
    }

    pub async fn order_by_client_id(
        &self,
        client_order_id: &str,
    ) -> Result<Option<Order>, RetryError> {
        self.read(ReadOp::OrderByClientId, &self.trading, || {
            self.client.order_by_client_id(client_order_id)
        })
        .await
    }

    pub async fn orders_after(
        &self,
        after: chrono::DateTime<chrono::Utc>,
        symbols: &[&str],
    ) -> Result<Vec<Order>, RetryError> {
        self.read(ReadOp::ListOrders, &self.trading, || {
            self.client.orders_after(after, symbols)
        })
        .await
    }

    pub async fn calendar(
        &self,
        start: chrono::NaiveDate,
        end: chrono::NaiveDate,
    ) -> Result<Vec<CalendarDay>, RetryError> {
        self.read(ReadOp::Calendar, &self.trading, || {
            self.client.calendar(start, end)
        })
        .await
    }

    /// Every bar of the query, following `next_page_token`, per symbol in the order received.
    pub async fn bars(&self, query: &BarsQuery) -> Result<SymbolMap<Vec<Bar>>, RetryError> {
        let mut out: SymbolMap<Vec<Bar>> = SymbolMap::default();
        let mut token: Option<String> = None;
        for _ in 0..MAX_BAR_PAGES {
            let page = self
                .read(ReadOp::Bars, &self.data, || {
                    self.client.bars_page(query, token.as_deref())
                })
                .await?;
            for (symbol, bars) in page.bars {
                if let Ok(symbol) = Symbol::parse(&symbol) {
                    out.entry(symbol).or_default().extend(bars);
                }
            }
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(next) if token.as_deref() != Some(next.as_str()) => token = Some(next),
                _ => return Ok(out),
            }
        }
        Err(RetryError::GaveUp {
            error: AlpacaError::Malformed {
                op: Operation::Bars,
                detail: format!("more than {MAX_BAR_PAGES} pages of bars; narrow the query"),
            },
            reason: super::retry::GiveUp::NotRetryable,
        })
    }

    /// One POST of an order, if the quota and the breaker allow it now. Waiting for the quota
    /// ends when `stop` is cancelled (the drain began): the order is then not sent. Once the
    /// quota is granted the request goes on the wire and is not interrupted.
    pub async fn submit_once(
        &self,
        order: &OrderRequest,
        stop: &CancellationToken,
    ) -> Result<Order, SubmitError> {
        let class = RequestClass::Order;
        let granted = tokio::select! {
            biased;
            () = stop.cancelled() => return Err(SubmitError::Draining),
            granted = self.trading.acquire(class) => granted,
        };
        match granted {
            Ok(waited) => self.metrics.limiter_wait(&self.account, class, waited),
            Err(saturated) => {
                self.metrics.limiter_saturated(&self.account, class);
                return Err(SubmitError::Saturated(saturated));
            }
        }
        let permit = self
            .breakers
            .acquire(Operation::SubmitOrder)
            .map_err(|open| {
                self.metrics
                    .breaker_rejection(&self.account, Operation::SubmitOrder);
                SubmitError::BreakerOpen(open)
            })?;
        let result = self.client.submit_order(order).await;
        permit.record_result(&result);
        result.map_err(SubmitError::Venue)
    }
}
