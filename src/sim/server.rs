//! The simulator's HTTP server: binding, serving on the caller's actix runtime, stopping.
//!
//! Invariants:
//! - No signal handlers (herd owns process signals); one worker thread.
//! - `start` returns once the socket is bound, so the port is known and connections queue.
//! - `stop` is graceful but bounded: hung (fault-injected) requests get one second.
//! - Every response carries [`SPEED_HEADER`]: a herd pointed at a simulator run as a separate
//!   process reads its speed there, so its schedules and bar timing follow the simulated clock.

use std::net::SocketAddr;

use actix_web::dev::ServerHandle;
use actix_web::middleware::DefaultHeaders;
use actix_web::{App, HttpServer, web};
use chrono::{DurationRound, TimeDelta};

use super::api;
use super::clock::SimClock;
use super::config::SimConfig;
use super::market::{Market, Replay, ReplayError};
use super::state::SimState;
use super::value::SimConfigError;

/// The response header that tells a client this venue is a herd simulator, and its speed.
pub const SPEED_HEADER: &str = "x-herd-sim-speed";

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(transparent)]
    Config(#[from] SimConfigError),
    #[error("sim.csv_dir: {0}")]
    Replay(#[from] ReplayError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A running simulator.
pub struct SimServer {
    addr: SocketAddr,
    /// Shared with the handlers: the clock's speed can change at run time.
    state: web::Data<SimState>,
    handle: ServerHandle,
    task: actix_web::rt::task::JoinHandle<std::io::Result<()>>,
}

impl SimServer {
    /// Binds `addr` (port 0 allowed), starts serving, returns once listening. Must be called
    /// inside an actix System (herd's own, or `#[actix_web::test]`).
    pub async fn start(config: SimConfig, addr: SocketAddr) -> Result<SimServer, SimError> {
        config.validate()?;
        let replay = match &config.csv_dir {
            Some(dir) => Replay::load(dir)?,
            None => Replay::default(),
        };
        let start = match (config.start_time()?, replay.span()) {
            (Some(t), _) => t,
            // Replaying without a start: a fifth into the data (one to thirty days), so
            // strategies have lookback at once and most of the data is still ahead.
            (None, Some((first, last))) => {
                let lead = ((last - first) / 5).clamp(TimeDelta::days(1), TimeDelta::days(30));
                let t = first + lead;
                t.duration_trunc(TimeDelta::minutes(1)).unwrap_or(t)
            }
            (None, None) => SimClock::default_start(),
        };
        let market = Market::new(config.market(), start, replay);
        let speed = config.speed;
        let state = web::Data::new(SimState::new(config, start, market));
        let shared = state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .wrap(DefaultHeaders::new().add((SPEED_HEADER, speed.to_string())))
                .app_data(state.clone())
                .configure(api::configure)
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .on_connect(api::on_connect)
        .bind(addr)
        .map_err(|source| SimError::Bind { addr, source })?;
        let bound = server.addrs().first().copied().unwrap_or(addr);
        let server = server.run();
        let handle = server.handle();
        let task = actix_web::rt::spawn(server);
        tracing::info!(addr = %bound, speed, "simulator listening");
        Ok(SimServer {
            addr: bound,
            state: shared,
            handle,
            task,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`: serves both the trading and the market data paths.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sim seconds per real second now (`POST /__sim/clock` may have changed it).
    pub fn speed(&self) -> f64 {
        self.state.clock.speed()
    }

    /// Graceful stop of the HTTP server.
    pub async fn stop(self) {
        self.handle.stop(true).await;
        let _ = self.task.await;
    }
}
