//! Wiring: builds every component from [`Settings`], starts them under the Supervisor, serves
//! HTTP, and runs until a signal starts the drain.
//!
//! Invariant: with no credentials the embedded simulator is started on a loopback port and the
//! broker reaches it over real HTTP, the same code path as Alpaca.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use actix::prelude::*;

use crate::broker::{
    AlpacaClient, AlpacaError, BrokerActor, BrokerDeps, Endpoint, Gateway, MarketCache,
    MarketCacheActor, OrderBook, OrderLanes, Sessions, Snapshots, VenueSpeed,
};
use crate::domain::{Secret, Slot, StatusReport, Venue};
use crate::http::{self, OpsState};
use crate::metrics::{Metrics, MetricsActor};
use crate::process::{Phase, ProcessState};
use crate::settings::Settings;
use crate::shutdown::{self, Running};
use crate::sim::SimServer;
use crate::strategy::actor::{StrategyActor, StrategyDeps};
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
    #[error("the venue refused herd's credentials: {0}")]
    Credentials(AlpacaError),
    #[error("cannot install the SIGTERM/SIGINT handlers: {0}")]
    Signals(std::io::Error),
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
    let venue = settings.venue();
    let (endpoint, speed, sim) = venue_endpoint(&settings).await?;
    tracing::info!(
        venue = venue.as_str(), trading_url = %endpoint.trading_url, data_url = %endpoint.data_url,
        speed = speed.0, instances = settings.instances.len(), "herd starting"
    );
    let client = AlpacaClient::new(endpoint, Arc::clone(&metrics))?;
    probe_venue(&client, &process).await?;

    let cache = MarketCache::new(Arc::clone(&metrics));
    let workshop = Arc::new(Workshop::new(&settings.data.dir, Arc::clone(&metrics)));
    let slots = Slots::default();
    let gateway = Gateway::new(client, &settings.broker, Arc::clone(&metrics));
    let deps = BrokerDeps {
        snapshots: Snapshots::new(gateway.clone(), cache.clone(), Arc::clone(&metrics), speed),
        gateway,
        cache: cache.clone(),
        book: Arc::new(OrderBook::new()),
        lanes: OrderLanes::default(),
        process: Arc::clone(&process),
        metrics: Arc::clone(&metrics),
        venue,
        speed,
        order_poll: settings.broker.order_poll.get(),
        batch_window: settings.broker.batch_window.get(),
        bar_settle: settings.broker.bar_settle.get(),
        sessions: Sessions::default(),
        risk: settings.broker.risk.clone(),
    };
    let supervisor = Supervisor::create(|ctx| {
        let reports = ctx.address().recipient::<StatusReport>();
        let specs = child_specs(&settings, &deps, &slots, reports, speed, &workshop);
        Supervisor::new(
            specs,
            RestartPolicy::from(&settings.supervisor),
            Arc::clone(&process),
            Arc::clone(&metrics),
        )
    });

    let state = OpsState {
        settings: settings.http.clone(),
        limiter: http::InboundLimiter::new(&settings.http.rate_limit),
        counters: Arc::clone(&metrics),
        process: Arc::clone(&process),
        supervisor: supervisor.clone(),
        broker: slots.broker,
        metrics: slots.metrics,
        cache: slots.cache,
        venue,
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

    let signal = signals.next().await;
    let running = Running {
        process,
        supervisor,
        http,
        sim,
        traces,
    };
    Ok(shutdown::drain(running, settings.shutdown.grace.get(), signal, signals).await)
}

/// Where the broker connects: Alpaca from the settings, or a freshly started simulator.
async fn venue_endpoint(
    settings: &Settings,
) -> Result<(Endpoint, VenueSpeed, Option<SimServer>), StartError> {
    let b = &settings.broker;
    let timeout = b.call_timeout.get();
    if settings.venue() != Venue::Simulator {
        let endpoint = Endpoint {
            trading_url: b.base_url.clone(),
            data_url: b.data_url.clone(),
            key_id: b.key_id.clone(),
            secret_key: b.secret_key.clone(),
            feed: b.feed.clone(),
            adjustment: b.adjustment.clone(),
            call_timeout: timeout,
        };
        return Ok((endpoint, VenueSpeed(1.0), None));
    }
    let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let sim = SimServer::start(settings.sim.clone(), loopback)
        .await
        .map_err(|e| StartError::Simulator(e.to_string()))?;
    let endpoint = Endpoint {
        trading_url: sim.base_url(),
        data_url: sim.base_url(),
        key_id: Secret::new(SIM_KEY),
        secret_key: Secret::new(SIM_KEY),
        feed: b.feed.clone(),
        adjustment: b.adjustment.clone(),
        call_timeout: timeout,
    };
    Ok((endpoint, VenueSpeed(sim.speed()), Some(sim)))
}

/// One call before anything trades: wrong credentials stop herd here with a clear message;
/// an unreachable venue only delays readiness.
async fn probe_venue(client: &AlpacaClient, process: &ProcessState) -> Result<(), StartError> {
    match client.account().await {
        Ok(account) => {
            process.mark_venue_reached();
            tracing::info!(
                account_status = %account.status, equity = %account.equity,
                buying_power = %account.buying_power, "venue reached"
            );
            Ok(())
        }
        Err(e @ AlpacaError::Unauthorized { .. }) => Err(StartError::Credentials(e)),
        Err(e) => {
            tracing::warn!(error = %e, "venue not reachable yet; herd stays unready until it is");
            Ok(())
        }
    }
}

/// Where the HTTP layer and the strategy instances find the service actors, whichever
/// incarnation is running.
#[derive(Default)]
struct Slots {
    metrics: Slot<MetricsActor>,
    cache: Slot<MarketCacheActor>,
    broker: Slot<BrokerActor>,
}

fn child_specs(
    settings: &Settings,
    deps: &BrokerDeps,
    slots: &Slots,
    reports: Recipient<StatusReport>,
    speed: VenueSpeed,
    workshop: &Arc<Workshop>,
) -> Vec<ChildSpec> {
    let mut specs = Vec::with_capacity(settings.instances.len() + 3);
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
    let (broker_deps, slot) = (deps.clone(), slots.broker.clone());
    specs.push(ChildSpec {
        id: "broker".into(),
        role: ChildRole::Broker,
        start: Box::new(move |c| {
            let addr = BrokerActor::new(broker_deps.clone(), c.exit).start();
            slot.set(addr.clone());
            ChildHandle::service(&addr)
        }),
    });
    for spec in &settings.instances {
        let spec = Arc::new(spec.clone());
        let role = ChildRole::Strategy {
            kind: spec.kind.as_str(),
            symbols: spec.symbols.clone(),
            params: serde_json::to_value(&spec.params).unwrap_or_default(),
        };
        let (broker, metrics, reports) = (
            slots.broker.clone(),
            Arc::clone(&deps.metrics),
            reports.clone(),
        );
        let period = speed.to_real(spec.every);
        let workshop = Arc::clone(workshop);
        specs.push(ChildSpec {
            id: spec.id.as_str().into(),
            role,
            start: Box::new(move |c| {
                let deps = StrategyDeps {
                    spec: Arc::clone(&spec),
                    broker: broker.clone(),
                    supervisor: reports.clone(),
                    metrics: Arc::clone(&metrics),
                    period,
                    workshop: Arc::clone(&workshop),
                };
                let core = crate::strategy::build(&spec);
                let actor = StrategyActor::new(deps, core, c.id, c.incarnation, c.exit);
                ChildHandle::strategy(&actor.paused(c.paused).start())
            }),
        });
    }
    specs
}
