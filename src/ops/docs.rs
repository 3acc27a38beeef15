//! `/openapi.json` generated from the handlers' annotations, and Swagger UI at `/docs`, served
//! from files embedded in the binary (no internet needed).

use std::sync::{Arc, OnceLock};

use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::app::App;
use crate::error::Error;
use crate::http::{Req, Resp};

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Every documented route. A test checks that each route of the router is listed here.
#[derive(OpenApi)]
#[openapi(
    info(title = "Wealth Coach AI", description = "The API of the Wealth Coach AI app."),
    modifiers(&BearerAuth),
    paths(
        super::health::root,
        super::health::health,
        super::health::api_health,
        super::health::detailed,
        super::health::ready,
        super::observe::metrics_json,
        super::observe::metrics_prometheus,
        super::observe::stats,
        openapi_json,
        swagger,
        crate::auth::handlers::send_otp,
        crate::auth::handlers::verify_otp,
        crate::auth::handlers::login_otp,
        crate::auth::handlers::register,
        crate::auth::handlers::login,
        crate::auth::handlers::refresh,
        crate::auth::handlers::logout,
        crate::auth::handlers::check_mobile,
        crate::auth::handlers::password_requirements,
        crate::auth::me::get_me,
        crate::auth::me::patch_me,
        crate::auth::me::delete_me,
        crate::budget::routes::get_allocations,
        crate::budget::routes::get_summary,
        crate::budget::routes::get_history,
        crate::budget::routes::set_budget,
        crate::budget::routes::record_actual,
        crate::budget::routes::get_category,
        crate::budget::routes::put_allocation,
        crate::budget::routes::delete_allocation,
        crate::budget::routes::get_monthly_budget,
        crate::budget::routes::create_transaction,
        crate::budget::routes::list_transactions,
        crate::budget::routes::get_balance,
        crate::budget::routes::patch_transaction,
        crate::budget::routes::delete_transaction,
        crate::profile::routes::submit,
        crate::profile::routes::status,
        crate::profile::routes::profile,
        crate::profile::routes::get_preferences,
        crate::profile::routes::patch_preferences,
        crate::profile::routes::export,
        crate::chat::http::message,
        crate::chat::http::message_stream,
        crate::chat::http::sessions,
        crate::chat::http::session_messages,
        crate::chat::http::delete_conversation,
    )
)]
pub struct ApiDoc;

pub fn document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    })
}

#[utoipa::path(get, path = "/openapi.json", tag = "service",
    responses((status = 200, description = "This OpenAPI 3.1 document", content_type = "application/json")))]
pub fn openapi_json(_app: &App, _req: &Req) -> Result<Resp, Error> {
    Ok(Resp::bytes(
        200,
        "application/json",
        document().as_bytes().to_vec(),
    ))
}

#[utoipa::path(get, path = "/docs", tag = "service",
    responses((status = 200, description = "Swagger UI", content_type = "text/html"),
              (status = 301, description = "To `/docs/`, so the page's relative links resolve")))]
pub fn swagger(app: &App, req: &Req) -> Result<Resp, Error> {
    if !app.config.enable_docs {
        return Err(Error::not_found("Not Found"));
    }
    if req.path == "/docs" {
        return Ok(Resp::empty(301).with_header("Location", "/docs/"));
    }
    static CONFIG: OnceLock<Arc<utoipa_swagger_ui::Config<'static>>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| Arc::new(utoipa_swagger_ui::Config::from("/openapi.json")));
    let file = req.param("file");
    match utoipa_swagger_ui::serve(file, config.clone()) {
        Ok(Some(f)) => {
            let content_type: &'static str = match f.content_type.as_str() {
                t if t.starts_with("text/html") => "text/html; charset=utf-8",
                t if t.starts_with("text/css") => "text/css; charset=utf-8",
                t if t.contains("javascript") => "text/javascript; charset=utf-8",
                "image/png" => "image/png",
                "application/json" => "application/json",
                _ => "application/octet-stream",
            };
            Ok(Resp::bytes(200, content_type, f.bytes.into_owned())
                .with_header("Cache-Control", "public, max-age=3600"))
        }
        Ok(None) => Err(Error::not_found("Not Found")),
        Err(e) => Err(Error::internal(format!("swagger ui: {e}"))),
    }
}
