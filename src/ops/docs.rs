//! `/openapi.json` generated from the handlers' annotations, and Swagger UI at `/docs`, served
//! from files embedded in the binary (no internet needed).

use std::sync::{Arc, OnceLock};

use serde::Serialize;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, Response};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::app::App;
use crate::error::Error;
use crate::http::router::Class;
use crate::http::{Req, Resp, Router};

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

/// The body of every error response.
#[derive(Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    /// A sentence, or for a 422 with field errors the list of them.
    pub(crate) detail: ErrorDetail,
    /// What went wrong, in snake_case: `not_found`, `validation_error`, `token_expired`, ...
    #[schema(example = "not_found")]
    pub(crate) code: String,
}

#[allow(dead_code)] // an OpenAPI schema of what `Error::body` writes
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum ErrorDetail {
    Message(String),
    Fields(Vec<FieldProblem>),
}

/// One field error, FastAPI style: `{"loc": ["body", "otp"], "msg": "Field required", "type": "missing"}`.
#[derive(Serialize, ToSchema)]
pub(crate) struct FieldProblem {
    /// Where: `body`, `query` or `path`, then the field name (or a byte offset for broken JSON).
    pub(crate) loc: Vec<LocPart>,
    pub(crate) msg: String,
    #[serde(rename = "type")]
    #[schema(example = "missing")]
    pub(crate) kind: String,
}

#[allow(dead_code)] // an OpenAPI schema of what `Error::body` writes
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum LocPart {
    Name(String),
    Offset(u64),
}

/// The answers the server itself gives on any route of a kind, whatever the handler: every
/// error response gets the `ErrorBody` schema (what `Error::body` writes), bearer routes can
/// answer 401 and 403 (deactivated account), routes with a body 413, 415 and 422, routes with
/// query parameters 422, and the routes under the rate limits (all of which use the database)
/// 429 and 503.
struct ErrorResponses<'r> {
    routes: &'r Router<App>,
}

fn error_content() -> RefOr<Content> {
    RefOr::T(Content::new(Some(Ref::from_schema_name("ErrorBody"))))
}

fn default_description(status: &str) -> &'static str {
    match status {
        "200" => "OK",
        "201" => "Created",
        "400" => "A business rule refused the request",
        "401" => "No, bad, expired or revoked token (`WWW-Authenticate: Bearer`)",
        "403" => "Account deactivated (`account_deactivated`) or not allowed",
        "404" => "Not found (also another user's)",
        "413" => "Body over `MAX_BODY_BYTES` (`payload_too_large`)",
        "415" => "Body declared as a form, multipart or XML (`unsupported_media_type`)",
        "422" => "Invalid input: `detail` lists the field errors",
        "429" => "Too many requests (`Retry-After`)",
        "502" | "504" => "The upstream failed or timed out",
        "503" => "The database is busy or unavailable (`Retry-After`)",
        _ => "Error",
    }
}

fn has_param(op: &Operation, place: ParameterIn) -> bool {
    op.parameters
        .iter()
        .flatten()
        .any(|p| matches!(p, RefOr::T(p) if p.parameter_in == place))
}

/// Routes whose handler reads `Fields::body_or_empty`: no body at all is a valid request, which
/// utoipa's `request_body = T` cannot say.
const OPTIONAL_BODIES: &[(&str, &str)] = &[("POST", "/api/v1/auth/logout")];

impl utoipa::Modify for ErrorResponses<'_> {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        for (path, item) in api.paths.paths.iter_mut() {
            let ops = [
                ("GET", &mut item.get),
                ("POST", &mut item.post),
                ("PUT", &mut item.put),
                ("PATCH", &mut item.patch),
                ("DELETE", &mut item.delete),
            ];
            for (method, op) in ops {
                let Some(op) = op.as_mut() else { continue };
                let class = self
                    .routes
                    .routes()
                    .iter()
                    .find(|r| r.method == method && r.pattern == path.as_str())
                    .map(|r| r.class);
                let mut add = Vec::new();
                if op.security.is_some() {
                    add.extend(["401", "403"]);
                }
                if matches!(method, "POST" | "PUT" | "PATCH") {
                    add.extend(["413", "415", "422"]);
                }
                if has_param(op, ParameterIn::Query) {
                    add.push("422");
                }
                if matches!(class, Some(Class::Api | Class::Chat | Class::Sensitive)) {
                    add.extend(["429", "503"]);
                }
                if OPTIONAL_BODIES.contains(&(method, path.as_str()))
                    && let Some(RefOr::T(body)) = op.request_body.as_mut()
                {
                    body.required = Some(utoipa::openapi::Required::False);
                }
                let header_param = has_param(op, ParameterIn::Header);
                let responses = &mut op.responses.responses;
                for status in add {
                    responses
                        .entry(status.to_string())
                        .or_insert_with(|| RefOr::T(Response::new(default_description(status))));
                }
                for (status, response) in responses.iter_mut() {
                    let RefOr::T(r) = response else { continue };
                    if r.description.is_empty() {
                        r.description = default_description(status).into();
                    }
                    let is_error = status.parse::<u16>().is_ok_and(|s| s >= 400);
                    if is_error && r.content.is_empty() {
                        r.content.insert("application/json".into(), error_content());
                    }
                }
                // tiny_http answers a header value with a control character (even a tab) or a
                // non-ASCII byte itself, before routing: 400 with no body, connection closed.
                if header_param {
                    responses.entry("400".into()).or_insert_with(|| {
                        RefOr::T(Response::new(
                            "A header value the HTTP layer cannot read (a control character or a \
                             non-ASCII byte): an empty body, and the connection is closed",
                        ))
                    });
                }
            }
        }
    }
}

/// What the document holds besides the routes: its info and the error schemas. The paths come
/// from the route list itself (`crate::api::ApiPath`), so a route is written once.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Wealth Coach AI",
        description = "The API of the Wealth Coach AI app."
    ),
    components(schemas(ErrorBody, ErrorDetail, FieldProblem, LocPart))
)]
pub(crate) struct ApiDoc;

/// The document of these routes: each documented route adds its operation, then the answers
/// every route of its kind can give are added.
pub(crate) fn build(routes: &Router<App>) -> utoipa::openapi::OpenApi {
    let mut api = ApiDoc::openapi();
    for doc in routes.routes().iter().filter_map(|r| r.doc) {
        doc(&mut api);
    }
    BearerAuth.modify(&mut api);
    ErrorResponses { routes }.modify(&mut api);
    api
}

pub fn document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        build(&crate::routes())
            .to_pretty_json()
            .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    })
}

#[utoipa::path(get, path = "/openapi.json", tag = "service",
    responses((status = 200, description = "This OpenAPI 3.1 document", content_type = "application/json")))]
pub(crate) fn openapi_json(_app: &App, _req: &Req) -> Result<Resp, Error> {
    Ok(Resp::bytes(
        200,
        "application/json",
        document().as_bytes().to_vec(),
    ))
}

#[utoipa::path(get, path = "/docs", tag = "service",
    responses((status = 200, description = "Swagger UI", content_type = "text/html"),
              (status = 301, description = "To `/docs/`, so the page's relative links resolve")))]
pub(crate) fn swagger(app: &App, req: &Req) -> Result<Resp, Error> {
    if !app.config.features.docs {
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

#[cfg(test)]
mod tests {
    use serde_json::Value;

    /// One operation per documented route and no other: a route list entry cannot add a
    /// second method, and no operation comes from anywhere else.
    #[test]
    fn the_document_has_exactly_the_documented_routes() {
        let doc: Value = serde_json::from_str(super::document()).expect("JSON");
        let mut ops: Vec<String> = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("operations").keys() {
                ops.push(format!("{} {path}", method.to_ascii_uppercase()));
            }
        }
        let mut routes: Vec<String> = crate::routes()
            .routes()
            .iter()
            .filter(|r| r.documented)
            .map(|r| format!("{} {}", r.method, r.pattern))
            .collect();
        ops.sort();
        routes.sort();
        assert_eq!(ops, routes);
    }

    /// Every error a route documents has the shared body (but two answers that are not ours:
    /// tiny_http's empty 400 and the readiness probe's own 503), and every bearer route
    /// documents 401 and 403.
    #[test]
    fn error_responses_share_one_schema() {
        let doc: Value = serde_json::from_str(super::document()).expect("JSON");
        let error_ref = "#/components/schemas/ErrorBody";
        assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
        let mut checked = 0;
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("operations") {
                let responses = op["responses"].as_object().expect("responses");
                for (status, r) in responses {
                    let code: u16 = status.parse().expect("numeric status");
                    let schema = &r["content"]["application/json"]["schema"]["$ref"];
                    // A 412 (`If-Match`) is the error body plus the row as it is now.
                    let own = (code == 400 && r["content"].is_null())
                        || (path == "/api/v1/ready" && code == 503)
                        || (code == 412 && schema == "#/components/schemas/VersionMismatch");
                    if code >= 400 && !own {
                        assert_eq!(schema, error_ref, "{method} {path} {status}");
                        checked += 1;
                    }
                    assert!(r["description"].as_str().is_some_and(|d| !d.is_empty()));
                }
                if op["security"].is_array() {
                    for status in ["401", "403"] {
                        assert!(responses.contains_key(status), "{method} {path} {status}");
                    }
                }
            }
        }
        assert!(checked > 100, "{checked}");
    }
}
