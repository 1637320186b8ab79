//! The HTTP server (actix-web): the ops endpoints (`ops.rs`), the token-protected admin API
//! (`admin.rs`), and what every request passes through (`context.rs`: request id, error shape,
//! slow-request log).
//!
//! Invariants:
//! - actix-web's own signal handling is off: herd's shutdown sequence stops the server last,
//!   after the drain, so probes and `/metrics` answer throughout it.
//! - Handlers never call the broker venue, and never reach into an actor's state: they ask
//!   actors by message, or read `ProcessState`.

pub mod admin;
mod context;
pub mod error;
mod limit;
mod openapi;
pub mod ops;
mod trace;

pub use limit::{EndpointClass, InboundLimiter, RateLimitSettings};

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use actix::Addr;
use actix_cors::Cors;
use actix_web::dev::Server;
use actix_web::http::header;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpRequest, HttpServer, web};
use serde::{Deserialize, Serialize};

use crate::broker::{Brokers, MarketCacheActor, SharedBars};
use crate::domain::{HumanDuration, InvalidSetting, Secret, Slot, Venue, positive};
use crate::journal::Journal;
use crate::metrics::{Metrics, MetricsActor};
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
    /// The admin API's token (`HERD_ADMIN_TOKEN` or `ADMIN_TOKEN`); unset, the admin API is
    /// disabled, never open.
    #[serde(default)]
    pub admin_token: Secret,
    /// Internal details of a failure in error bodies. Off in production: there they are only
    /// in the log, under the body's `error_id`.
    pub error_details: bool,
    /// A request slower than this is logged with its timing.
    pub slow_request: HumanDuration,
    pub rate_limit: RateLimitSettings,
    /// Origins a browser may call herd from (`https://ops.example.com`); none by default.
    pub cors_origins: Vec<String>,
}

/// The shortest admin token accepted: 16 bytes, 128 bits if random.
pub const ADMIN_TOKEN_MIN_BYTES: usize = 16;

impl HttpSettings {
    pub fn check(&self) -> Result<(), InvalidSetting> {
        if self.workers == 0 || self.workers > 64 {
            return Err(InvalidSetting::new(
                "http.workers",
                self.workers,
                "must be between 1 and 64",
            ));
        }
        let token = self.admin_token.expose().len();
        if self.admin_token.is_set() && token < ADMIN_TOKEN_MIN_BYTES {
            return Err(InvalidSetting::new(
                "http.admin_token (HERD_ADMIN_TOKEN)",
                format!("[redacted, {token} bytes]"),
                format!(
                    "must be at least {ADMIN_TOKEN_MIN_BYTES} bytes (e.g. `openssl rand -hex 32`), or unset to disable the admin API"
                ),
            ));
        }
        positive("http.slow_request", self.slow_request)?;
        self.rate_limit.check()?;
        for (i, origin) in self.cors_origins.iter().enumerate() {
            if !is_origin(origin) {
                return Err(InvalidSetting::new(
                    format!("http.cors_origins[{i}]"),
                    format!("{origin:?}"),
                    "must be an origin: http:// or https://, a host, an optional port, no path (`*` is not accepted: list the origins)",
                ));
            }
        }
        Ok(())
    }
}

/// `scheme://host[:port]` and nothing more, as browsers send it in `Origin`.
fn is_origin(origin: &str) -> bool {
    let Some(rest) = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
    else {
        return false;
    };
    !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

/// What every handler can reach.
pub struct OpsState {
    pub settings: HttpSettings,
    pub limiter: InboundLimiter,
    /// The metric handles (HTTP requests, rate-limit refusals).
    pub counters: Arc<Metrics>,
    pub process: Arc<ProcessState>,
    pub supervisor: Addr<Supervisor>,
    /// Every account's broker, the first account's first.
    pub brokers: Brokers,
    pub metrics: Slot<MetricsActor>,
    pub cache: Slot<MarketCacheActor>,
    pub venue: Venue,
    /// Where every admin call is recorded.
    pub journal: Option<Journal>,
    /// The market-data cache replicas share (its state is on `/health`).
    pub shared_bars: SharedBars,
}

/// Binds and starts the server; returns it (to be spawned) and the bound address.
pub fn start(settings: &HttpSettings, state: OpsState) -> std::io::Result<(Server, SocketAddr)> {
    let state = web::Data::new(state);
    let document = web::Data::new(openapi::Document::build().map_err(std::io::Error::other)?);
    let origins = settings.cors_origins.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(document.clone())
            .wrap(cors(&origins))
            .wrap(from_fn(context::request_context))
            .configure(ops::routes)
            .configure(admin::routes)
            .route(openapi::OPENAPI, web::get().to(openapi::openapi))
            .default_service(web::to(no_route))
    })
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

/// Cross-origin calls from the configured origins only; with none configured, browsers get no
/// CORS headers and refuse cross-origin calls, as without the middleware.
fn cors(origins: &[String]) -> Cors {
    let cors = origins
        .iter()
        .fold(Cors::default(), |cors, origin| cors.allowed_origin(origin));
    cors.allowed_methods(["GET", "POST"])
        .allowed_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            header::HeaderName::from_static(admin::TOKEN_HEADER),
            header::HeaderName::from_static(context::REQUEST_ID_HEADER),
        ])
        .expose_headers([header::HeaderName::from_static(context::REQUEST_ID_HEADER)])
        .max_age(3600)
}

/// Every path and method no route serves: a JSON 404 like every other error.
async fn no_route(req: HttpRequest) -> Result<actix_web::HttpResponse, error::ApiError> {
    Err(error::ApiError::not_found(format!(
        "no route {} {}",
        req.method(),
        req.path()
    )))
}
