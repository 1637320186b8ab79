//! Wiring: builds every component from [`Settings`], starts them under the Supervisor, serves
//! HTTP, and runs until a signal starts the drain.
//!
//! Invariant: with no credentials the embedded simulator is started on a loopback port and the
//! broker reaches it over real HTTP, the same code path as Alpaca.

mod leases;
mod venue;

use leases::start_lease_keeper;
use venue::{probe_venue, venue_anchor, venue_endpoints};

use std::sync::Arc;

use actix::prelude::*;

use std::collections::HashMap;

use crate::broker::lease::Lease;
use crate::broker::{
    AlpacaClient, AlpacaError, BrokerActor, BrokerDeps, Brokers, Gateway, MarketCache,
    MarketCacheActor, MarketData, MarketFeed, OrderBook, OrderLanes, OrderSeq, Reconciler,
    RefusalLog, Sessions, SharedBars, Snapshots,
};
use crate::domain::{
    AccountId, InstanceId, REPEAT_SUMMARY, Repeats, Slot, Trading, TradingState, Venue,
};
use crate::http::{self, OpsState};
use crate::journal::{Journal, JournalError, Restored, keys};
use crate::metrics::{Metrics, MetricsActor};
use crate::process::{Phase, ProcessState};
use crate::settings::Settings;
use crate::shutdown::{self, Running};
use crate::strategy::actor::{StrategyActor, StrategyDeps};
use crate::strategy::schedule::{LOCAL_SLACK, NETWORK_SLACK, Schedule, VenueAnchor};
use crate::strategy::workshop::Workshop;
use crate::supervisor::{ChildHandle, ChildRole, ChildSpec, RestartPolicy, Supervisor};
use crate::telemetry::Traces;

/// Why herd could not start. The binary prints it and exits 1.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot start the embedded simulator: {0}")]
    Simulator(String),
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("the venue refused herd's credentials for account {account:?}: {error}")]
    Credentials { account: String, error: AlpacaError },
    #[error("cannot install the SIGTERM/SIGINT handlers: {0}")]
    Signals(std::io::Error),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("cannot use redis.url: {0}")]
    Redis(String),
}

impl StartError {
    /// The process exit code: 2 when the operator must fix something first (the journal), 1
    /// otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Journal(_) | Self::Redis(_) => 2,
            _ => 1,
        }
    }
}

/// The credentials herd presents to its own embedded simulator (its account there is per key).
pub const SIM_KEY: &str = "herd-embedded";

/// Runs until a signal and the drain; returns the process exit code.
pub async fn run(
    settings: Settings,
    metrics: Arc<Metrics>,
    traces: Option<Traces>,
) -> Result<u8, StartError> {
    let mut signals = shutdown::Signals::install().map_err(StartError::Signals)?;
    let process = ProcessState::new();
    // Before anything else: a journal herd cannot use stops it here, before it trades.
    let (journal, restored) = Journal::open(
        &settings.journal,
        &settings.data.dir,
        metrics.journal.clone(),
    )
    .await?;
    restore_trading(&restored, &process, &metrics);
    let venue = settings.venue();
    let (endpoints, speed, sim) = venue_endpoints(&settings).await?;
    let first = &endpoints[0];
    tracing::info!(
        venue = venue.as_str(), trading_url = %first.trading_url, data_url = %first.data_url,
        speed = speed.0, accounts = endpoints.len(), instances = settings.instances.len(),
        "herd starting"
    );
    let cache = MarketCache::new(Arc::clone(&metrics));
    let shared_bars = SharedBars::new(
        &settings.redis,
        &first.feed,
        &first.adjustment,
        Arc::clone(&metrics),
    )
    .map_err(|e| StartError::Redis(e.to_string()))?;
    let mut gateways = Vec::with_capacity(endpoints.len());
    for (account, endpoint) in settings.resolved_accounts.iter().zip(endpoints) {
        let client = AlpacaClient::new(endpoint, Arc::clone(&metrics))?;
        probe_venue(&client, &process, &account.id).await?;
        let gateway = Gateway::new(
            account,
            client,
            &settings.broker,
            speed,
            Arc::clone(&metrics),
        );
        gateways.push((account, gateway));
    }
    // Market data is the same for every account: read once, with the first account's keys.
    let feed = {
        let (account, gateway) = &gateways[0];
        let market = MarketData {
            gateway: gateway.clone(),
            cache: cache.clone(),
            shared: shared_bars.clone(),
            sessions: Sessions::default(),
            speed,
            settle: settings.broker.bar_settle.get(),
        };
        let clock = Snapshots::new(
            account.id.clone(),
            gateway.clone(),
            cache.clone(),
            Arc::clone(&metrics),
            speed,
        );
        MarketFeed::new(
            market,
            clock,
            settings.broker.batch_window.get(),
            Arc::clone(&metrics),
            process.drain_signal(),
        )
    };
    let workshop = Arc::new(Workshop::new(&settings.data.dir, Arc::clone(&metrics)));
    let slots = Slots::new(&settings);
    let seq = OrderSeq::default();
    let owners: Arc<HashMap<InstanceId, AccountId>> = Arc::new(
        settings
            .instances
            .iter()
            .map(|s| (s.id.clone(), s.account.clone()))
            .collect(),
    );
    let leased = settings.lease.enabled;
    let mut accounts = Vec::with_capacity(gateways.len());
    let mut reconcilers = Vec::with_capacity(gateways.len());
    for (i, (account, gateway)) in gateways.into_iter().enumerate() {
        let lease = if leased {
            Lease::standby(account.id.clone(), settings.broker.call_timeout.get())
        } else {
            Lease::unleased(account.id.clone())
        };
        let book = Arc::new(OrderBook::journaled(
            journal.clone(),
            &lease,
            Arc::clone(&seq),
        ));
        let reconciler = Reconciler {
            account: account.id.clone(),
            first: i == 0,
            owners: Arc::clone(&owners),
            book: Arc::clone(&book),
            gateway: gateway.clone(),
            journal: journal.clone(),
            metrics: Arc::clone(&metrics),
            retention: settings.journal.retention.get(),
        };
        // Under a lease the account is reconciled when this replica acquires it.
        if !leased {
            reconciler.reconcile(&restored).await;
        }
        reconcilers.push((lease.clone(), reconciler));
        accounts.push(BrokerDeps {
            account: account.id.clone(),
            lease,
            snapshots: Snapshots::new(
                account.id.clone(),
                gateway.clone(),
                cache.clone(),
                Arc::clone(&metrics),
                speed,
            ),
            gateway,
            cache: cache.clone(),
            feed: feed.clone(),
            book,
            lanes: OrderLanes::default(),
            process: Arc::clone(&process),
            metrics: Arc::clone(&metrics),
            venue,
            speed,
            order_poll: settings.broker.order_poll.get(),
            bar_settle: settings.broker.bar_settle.get(),
            sessions: Sessions::default(),
            risk: account.risk.clone(),
            refusals: Arc::new(RefusalLog::default()),
        });
    }
    let paused = paused_instances(&restored);
    let anchor = venue_anchor(&accounts[0].snapshots).await;
    let specs = child_specs(&settings, &accounts, &slots, anchor, &workshop, &journal);
    let supervisor = Supervisor::new(
        specs,
        RestartPolicy::from(&settings.supervisor),
        Arc::clone(&process),
        Arc::clone(&metrics),
    )
    .journaled(journal.clone(), &paused)
    .start();

    let state = OpsState {
        settings: settings.http.clone(),
        limiter: http::InboundLimiter::new(&settings.http.rate_limit),
        counters: Arc::clone(&metrics),
        process: Arc::clone(&process),
        supervisor: supervisor.clone(),
        brokers: slots.brokers,
        metrics: slots.metrics,
        cache: slots.cache,
        venue,
        journal: Some(journal.clone()),
        shared_bars,
    };
    let (server, addr) =
        http::start(&settings.http, state).map_err(|source| StartError::Listen {
            addr: format!("{}:{}", settings.http.bind, settings.http.port),
            source,
        })?;
    let http = server.handle();
    actix::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });
    process.advance(Phase::Running);
    tracing::info!(addr = %addr, "http listening");
    // Only now: a standby replica must answer its probes while it waits for a lease.
    let leases = start_lease_keeper(&settings, reconcilers, &process, &metrics)?;

    let signal = signals.next().await;
    let running = Running {
        process,
        supervisor,
        http,
        sim,
        traces,
        journal: Some(journal),
        leases,
    };
    Ok(shutdown::drain(running, settings.shutdown.grace.get(), signal, signals).await)
}

/// Where the HTTP layer and the strategy instances find the service actors, whichever
/// incarnation is running.
struct Slots {
    metrics: Slot<MetricsActor>,
    cache: Slot<MarketCacheActor>,
    brokers: Brokers,
}

impl Slots {
    fn new(settings: &Settings) -> Self {
        let accounts = settings.resolved_accounts.iter().map(|a| a.id.clone());
        Self {
            metrics: Slot::default(),
            cache: Slot::default(),
            brokers: Brokers::new(accounts),
        }
    }
}

/// The trading state a previous run left (an operator's halt, a risk manager's tightening):
/// a halted herd restarts halted.
fn restore_trading(restored: &Restored, process: &ProcessState, metrics: &Metrics) {
    let Some(text) = restored.state.get(keys::TRADING) else {
        return;
    };
    match serde_json::from_str::<Trading>(text) {
        Ok(trading) if trading.state != TradingState::Active => {
            tracing::warn!(
                event = "trading_state_restored",
                state = trading.state.as_str(),
                reason = trading.reason.as_deref(),
                "trading state restored from the journal"
            );
            metrics.trading_state(trading.state);
            process.set_trading(trading.state, trading.reason);
        }
        Ok(_) => {}
        Err(e) => {
            // Unreadable: fail closed, an operator resumes after checking.
            let reason =
                format!("the journal's trading state is unreadable ({e}); resume after checking");
            tracing::error!(event = "trading_state_restored", state = "halted", reason = %reason, "trading halted");
            metrics.trading_state(TradingState::Halted);
            process.halt(reason);
        }
    }
}

/// The instances an operator paused in a previous run.
fn paused_instances(restored: &Restored) -> Vec<String> {
    restored
        .state
        .keys()
        .filter_map(|k| k.strip_prefix(keys::PAUSED))
        .map(str::to_owned)
        .collect()
}

fn child_specs(
    settings: &Settings,
    accounts: &[BrokerDeps],
    slots: &Slots,
    anchor: VenueAnchor,
    workshop: &Arc<Workshop>,
    journal: &Journal,
) -> Vec<ChildSpec> {
    let deps = &accounts[0];
    let mut specs = Vec::with_capacity(settings.instances.len() + 2 + accounts.len());
    let (metrics, slot) = (Arc::clone(&deps.metrics), slots.metrics.clone());
    specs.push(ChildSpec {
        id: "metrics".into(),
        role: ChildRole::Metrics,
        start: Box::new(move |c| {
            let addr = MetricsActor::new(&metrics, c.exit).start();
            slot.set(addr.clone());
            ChildHandle::service(&addr)
        }),
    });
    let (cache, slot) = (deps.cache.clone(), slots.cache.clone());
    specs.push(ChildSpec {
        id: "cache".into(),
        role: ChildRole::Cache,
        start: Box::new(move |c| {
            let addr = MarketCacheActor::new(cache.clone(), c.exit).start();
            slot.set(addr.clone());
            ChildHandle::service(&addr)
        }),
    });
    for (account, slot) in slots.brokers.iter() {
        let Some(broker_deps) = accounts.iter().find(|d| d.account == *account).cloned() else {
            continue;
        };
        let slot = slot.clone();
        specs.push(ChildSpec {
            id: account.broker_child().into(),
            role: ChildRole::Broker,
            start: Box::new(move |c| {
                let addr = BrokerActor::new(broker_deps.clone(), c.exit).start();
                slot.set(addr.clone());
                ChildHandle::service(&addr)
            }),
        });
    }
    // A simulator (embedded, or accelerated and so a herd simulator) answers over loopback.
    let slack = if deps.venue == Venue::Simulator || deps.speed.0 != 1.0 {
        LOCAL_SLACK
    } else {
        NETWORK_SLACK
    };
    let skipped_ticks = Arc::new(Repeats::new(REPEAT_SUMMARY));
    let failed_ticks = Arc::new(Repeats::new(REPEAT_SUMMARY));
    for spec in &settings.instances {
        let spec = Arc::new(spec.clone());
        let role = ChildRole::Strategy {
            kind: spec.kind.as_str(),
            symbols: spec.symbols.clone(),
            params: serde_json::to_value(&spec.params).unwrap_or_default(),
        };
        let Some(broker) = slots.brokers.slot(spec.account.as_str()).cloned() else {
            continue;
        };
        let Some(lease) = accounts
            .iter()
            .find(|d| d.account == spec.account)
            .map(|d| d.lease.clone())
        else {
            continue;
        };
        let metrics = Arc::clone(&deps.metrics);
        let drain = deps.process.drain_signal();
        let schedule = Schedule {
            every: spec.every,
            settle: settings.broker.bar_settle.get(),
            speed: deps.speed,
            anchor,
            slack,
        };
        let workshop = Arc::clone(workshop);
        let journal = journal.clone();
        let skipped_ticks = Arc::clone(&skipped_ticks);
        let failed_ticks = Arc::clone(&failed_ticks);
        specs.push(ChildSpec {
            id: spec.id.as_str().into(),
            role,
            start: Box::new(move |c| {
                let deps = StrategyDeps {
                    spec: Arc::clone(&spec),
                    broker: broker.clone(),
                    metrics: Arc::clone(&metrics),
                    schedule,
                    workshop: Arc::clone(&workshop),
                    journal: Some(journal.clone()),
                    skipped_ticks: Arc::clone(&skipped_ticks),
                    failed_ticks: Arc::clone(&failed_ticks),
                    lease: lease.clone(),
                    drain: drain.clone(),
                };
                let core = crate::strategy::build(&spec);
                let actor = StrategyActor::new(deps, core, c.id, c.incarnation, c.exit);
                let (submitting, status) = (actor.submitting(), actor.status_board());
                ChildHandle::strategy(&actor.paused(c.paused).start())
                    .with_submitting(submitting)
                    .with_status(status)
            }),
        });
    }
    specs
}
