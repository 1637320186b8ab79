//! The OpenAPI 3 document of herd's HTTP API, served at `/openapi.json`.
//!
//! Generated from the handlers' `#[utoipa::path]` annotations and the types they answer, so it
//! cannot drift from the code; `tests/openapi.rs` checks that every route the server answers
//! is in it. No Swagger UI is served: the document is for tools and any OpenAPI viewer.

use actix_web::{HttpResponse, web};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{admin, ops};

pub const OPENAPI: &str = "/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "herd",
        description = "Ops and admin API of herd, which hosts many trading strategies in one process."
    ),
    paths(
        ops::livez,
        ops::live,
        ops::readyz,
        ops::ready,
        ops::health,
        ops::metrics,
        ops::strategies,
        ops::strategy,
        ops::orders,
        ops::positions,
        ops::cache_stats,
        openapi,
        admin::reset_breakers,
        admin::command_breaker,
        admin::set_trading,
        admin::control_strategy,
        admin::restart_child,
        admin::clear_cache,
        admin::execute_all,
        admin::seed_reset_breakers,
        admin::seed_clear_cache,
    ),
    modifiers(&AdminToken),
    tags(
        (name = "probes", description = "Kubernetes probes and the Prometheus scrape"),
        (name = "ops", description = "Read-only state"),
        (name = "admin", description = "Operator actions: token-protected, audited, refused while draining")
    )
)]
struct ApiDoc;

/// The two ways to send the admin token.
struct AdminToken;

impl Modify for AdminToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Admin-Token"))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document, built once.
pub struct Document(String);

impl Document {
    pub fn build() -> Result<Self, serde_json::Error> {
        let mut doc = ApiDoc::openapi();
        doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
        doc.to_json().map(Self)
    }
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "ops",
    responses((status = 200, description = "the OpenAPI 3 document", content_type = "application/json")))]
pub(super) async fn openapi(doc: web::Data<Document>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(doc.0.clone())
}
