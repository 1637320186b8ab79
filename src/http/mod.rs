//! The ops HTTP server (actix-web): probes, health, metrics, strategies, orders.
//!
//! Invariants:
//! - actix-web's own signal handling is off: herd's shutdown sequence stops the server last,
//!   after the drain, so probes and `/metrics` answer throughout it.
//! - Handlers never call the broker venue, and never reach into an actor's state: they ask
//!   actors by message, or read `ProcessState`.

pub mod ops;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use actix::Addr;
use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};
use serde::{Deserialize, Serialize};

use crate::broker::{BrokerActor, MarketCacheActor};
use crate::domain::{InvalidSetting, Slot, Venue};
use crate::metrics::MetricsActor;
use crate::process::ProcessState;
use crate::supervisor::Supervisor;

/// `[http]`: the ops/admin HTTP server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub bind: IpAddr,
    /// `PORT` (the seeds' name) or `HERD__HTTP__PORT`.
    pub port: u16,
    /// Worker threads; ops traffic is light, so a small number keeps the footprint small.
    pub workers: usize,
}

impl HttpSettings {
    pub fn check(&self) -> Result<(), InvalidSetting> {
        if self.workers == 0 || self.workers > 64 {
            return Err(InvalidSetting::new(
                "http.workers",
                self.workers,
                "must be between 1 and 64",
            ));
        }
        Ok(())
    }
}

/// What every handler can reach.
pub struct OpsState {
    pub process: Arc<ProcessState>,
    pub supervisor: Addr<Supervisor>,
    pub broker: Slot<BrokerActor>,
    pub metrics: Slot<MetricsActor>,
    pub cache: Slot<MarketCacheActor>,
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
