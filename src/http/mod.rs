//! The ops HTTP server (actix-web): probes, health, metrics, strategies, orders.
//!
//! Invariants:
//! - actix-web's own signal handling is off: herd's shutdown sequence stops the server last,
//!   after the drain, so probes and `/metrics` answer throughout it.
//! - Handlers never call the broker venue: they read state the actors already hold.

pub mod ops;

use std::net::SocketAddr;
use std::sync::Arc;

use actix::Addr;
use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};

use crate::broker::BrokerActor;
use crate::cache::Cache;
use crate::metrics::MetricsActor;
use crate::process::ProcessState;
use crate::settings::{HttpSettings, Venue};
use crate::supervisor::{Slot, Supervisor};

/// What every handler can reach.
pub struct OpsState {
    pub process: Arc<ProcessState>,
    pub supervisor: Addr<Supervisor>,
    pub broker: Slot<BrokerActor>,
    pub metrics: Slot<MetricsActor>,
    pub cache: Cache,
    pub venue: Venue,
}

/// Binds and starts the server; returns it (to be spawned) and the bound address.
pub fn start(settings: &HttpSettings, state: OpsState) -> std::io::Result<(Server, SocketAddr)> {
    let state = web::Data::new(state);
    let server = HttpServer::new(move || App::new().app_data(state.clone()).configure(ops::routes))
        .workers(settings.workers)
        .disable_signals()
        // The drain already waited for the work that matters; requests still open get a moment.
        .shutdown_timeout(2)
        .bind((settings.bind, settings.port))?;
    let addr = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| std::io::Error::other("the HTTP server bound no address"))?;
    Ok((server.run(), addr))
}
