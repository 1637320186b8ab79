//! HTTP routes of the simulator, by endpoint group.
//!
//! - `trading`: account, clock, calendar, assets, positions.
//! - `orders`: orders (submit, list, get, cancel).
//! - `data`: market data (bars, latest trade/quote/bar, snapshots).
//! - `control`: `/__sim/*`, outside Alpaca's namespace: state, stats, faults, clock.
//! - `gateway`: the middleware every `/v2` request passes (rate limit, auth, faults, stats).
//!
//! Invariants:
//! - `/v2/orders:by_client_order_id` is a literal path registered before `/v2/orders/{id}`.
//! - Unknown paths and wrong methods get Alpaca-shaped 404/405 bodies.

mod control;
mod data;
mod error;
mod gateway;
mod order_body;
mod orders;
mod params;
mod trading;

use std::any::Any;

use actix_web::dev::Extensions;
use actix_web::http::StatusCode;
use actix_web::middleware::from_fn;
use actix_web::{HttpRequest, HttpResponse, Resource, web};

pub use error::ApiError;
use params::Params;

/// The authenticated API key id of a request (its account), set by the gateway.
#[derive(Debug, Clone)]
pub struct ApiKey(pub String);

fn resource(path: &str) -> Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        40510000,
        "method not allowed",
    ))
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found("endpoint not found"))
}

/// Query parameters of a request (a malformed query string is an Alpaca 422).
pub fn query(req: &HttpRequest) -> Result<Params, ApiError> {
    web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map(|p| Params::new(p.into_inner()))
        .map_err(|_| ApiError::invalid("malformed query string"))
}

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("")
            .wrap(from_fn(gateway::gateway))
            // Trading API.
            .service(resource("/v2/account").route(web::get().to(trading::account)))
            .service(resource("/v2/clock").route(web::get().to(trading::clock)))
            .service(resource("/v2/calendar").route(web::get().to(trading::calendar)))
            .service(resource("/v2/assets/{symbol}").route(web::get().to(trading::asset)))
            .service(
                resource("/v2/positions")
                    .route(web::get().to(trading::positions))
                    .route(web::delete().to(trading::close_all_positions)),
            )
            .service(
                resource("/v2/positions/{symbol}")
                    .route(web::get().to(trading::position))
                    .route(web::delete().to(trading::close_position)),
            )
            .service(
                resource("/v2/orders:by_client_order_id")
                    .route(web::get().to(orders::by_client_order_id)),
            )
            .service(
                resource("/v2/orders")
                    .route(web::get().to(orders::list))
                    .route(web::post().to(orders::submit))
                    .route(web::delete().to(orders::cancel_all)),
            )
            .service(
                resource("/v2/orders/{id}")
                    .route(web::get().to(orders::get))
                    .route(web::delete().to(orders::cancel)),
            )
            // Market data API.
            .service(resource("/v2/stocks/bars").route(web::get().to(data::bars)))
            .service(resource("/v2/stocks/bars/latest").route(web::get().to(data::latest_bars)))
            .service(resource("/v2/stocks/trades/latest").route(web::get().to(data::latest_trades)))
            .service(resource("/v2/stocks/quotes/latest").route(web::get().to(data::latest_quotes)))
            .service(resource("/v2/stocks/snapshots").route(web::get().to(data::snapshots)))
            .service(resource("/v2/stocks/{symbol}/bars").route(web::get().to(data::symbol_bars)))
            .service(
                resource("/v2/stocks/{symbol}/bars/latest")
                    .route(web::get().to(data::symbol_latest_bar)),
            )
            .service(
                resource("/v2/stocks/{symbol}/trades/latest")
                    .route(web::get().to(data::symbol_latest_trade)),
            )
            .service(
                resource("/v2/stocks/{symbol}/quotes/latest")
                    .route(web::get().to(data::symbol_latest_quote)),
            )
            .service(
                resource("/v2/stocks/{symbol}/snapshot")
                    .route(web::get().to(data::symbol_snapshot)),
            )
            // Control plane.
            .service(resource("/__sim/state").route(web::get().to(control::state)))
            .service(
                resource("/__sim/stats")
                    .route(web::get().to(control::stats))
                    .route(web::delete().to(control::reset_stats)),
            )
            .service(
                resource("/__sim/faults")
                    .route(web::get().to(control::faults))
                    .route(web::post().to(control::set_faults))
                    .route(web::delete().to(control::clear_faults)),
            )
            .service(
                resource("/__sim/clock")
                    .route(web::get().to(control::clock))
                    .route(web::post().to(control::set_clock)),
            )
            .service(
                resource("/__sim/foreign_orders")
                    .route(web::post().to(control::place_foreign_order)),
            )
            .default_service(web::to(not_found)),
    );
}

/// Keeps a duplicate of each connection's socket so that an injected "connection reset" can
/// shut the socket down before any response byte is written.
pub fn on_connect(conn: &dyn Any, ext: &mut Extensions) {
    gateway::remember_socket(conn, ext);
}

/// A JSON 200 response.
pub fn ok_json(body: &impl serde::Serialize) -> HttpResponse {
    HttpResponse::Ok().json(body)
}
