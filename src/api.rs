//! One registration per route. `P::route(handler)` takes the method and path from the
//! handler's `#[utoipa::path]` (`P` is the `__path_<handler>` type that attribute generates),
//! and the route carries how it adds itself to the OpenAPI document. So each area's route list
//! is both the route table and the list of documented operations (`ops::docs::document`).
//!
//! utoipa's public `Path` trait gives the method, the path and the operation, but not the
//! operation's tags nor the schemas its bodies name: those come from the `__dev` traits the
//! `#[derive(OpenApi)]` macro itself calls. They are used here and nowhere else, and
//! `ops::docs` has a test that compares the document with the handlers' attributes.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use utoipa::__dev::{SchemaReferences, Tags};
use utoipa::Path;
use utoipa::openapi::OpenApi;
use utoipa::openapi::path::HttpMethod;

use crate::http::router::{Class, Handler, Route};

/// The `__path_<handler>` type of a `#[utoipa::path]`, turned into its route:
/// `a::__path_get_allocations::route(a::get_allocations)`.
pub(crate) trait ApiPath: Path + for<'t> Tags<'t> + SchemaReferences + Sized {
    /// The documented route, method and pattern as the attribute declares them.
    fn route<S>(handler: Handler<S>) -> Route<S> {
        let method = Self::methods().first().map_or("GET", method_name);
        Route {
            method,
            pattern: intern(Self::path()),
            handler,
            class: Class::Api,
            slow: false,
            documented: true,
            doc: Some(describe::<Self>),
        }
    }
}

impl<P: Path + for<'t> Tags<'t> + SchemaReferences> ApiPath for P {}

/// Adds the operation of `P` to the document, with its tags and the schemas it names, as
/// `#[derive(OpenApi)]` would for an entry of its `paths(...)`.
fn describe<P>(api: &mut OpenApi)
where
    P: Path + for<'t> Tags<'t> + SchemaReferences,
{
    let mut operation = P::operation();
    operation
        .tags
        .get_or_insert_with(Vec::new)
        .extend(P::tags().into_iter().map(String::from));
    api.paths
        .add_path_operation(P::path(), P::methods(), operation);
    let mut schemas = Vec::new();
    P::schemas(&mut schemas);
    api.components
        .get_or_insert_with(Default::default)
        .schemas
        .extend(schemas);
}

fn method_name(m: &HttpMethod) -> &'static str {
    match m {
        HttpMethod::Get => "GET",
        HttpMethod::Post => "POST",
        HttpMethod::Put => "PUT",
        HttpMethod::Delete => "DELETE",
        HttpMethod::Options => "OPTIONS",
        HttpMethod::Head => "HEAD",
        HttpMethod::Patch => "PATCH",
        HttpMethod::Trace => "TRACE",
    }
}

/// Route patterns are `&'static str` (the router lends their `{name}`s to each request); the
/// attribute's path is a `String`, so each distinct one is leaked once and reused.
fn intern(s: String) -> &'static str {
    static SEEN: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut seen = SEEN
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(known) = seen.get(s.as_str()) {
        return known;
    }
    let leaked: &'static str = Box::leak(s.into_boxed_str());
    seen.insert(leaked);
    leaked
}

#[cfg(test)]
mod tests {
    /// `a::__path_x::route(a::y)` would serve `y` at `x`'s path and document `x`: every
    /// route list names the same handler twice.
    #[test]
    fn each_route_is_the_handler_its_attribute_belongs_to() {
        let mut seen = 0;
        let lists = [
            "ops/mod",
            "auth/mod",
            "budget/mod",
            "recurring/mod",
            "chat/mod",
            "profile/mod",
            "export",
            "notify/mod",
            "sync/mod",
        ];
        for list in lists {
            let file = format!("{}/src/{list}.rs", env!("CARGO_MANIFEST_DIR"));
            let src = std::fs::read_to_string(&file).expect("route list");
            let pieces: Vec<&str> = src.split("::route(").collect();
            for pair in pieces.windows(2) {
                let path_type = pair[0]
                    .rsplit(|c: char| c.is_whitespace() || c == '[')
                    .next()
                    .unwrap_or_default();
                let handler = pair[1].split(')').next().unwrap_or_default();
                let handler = handler.trim().trim_end_matches(',');
                assert_eq!(path_type.replacen("__path_", "", 1), handler, "{file}");
                seen += 1;
            }
        }
        assert!(seen >= 47, "{seen}");
    }
}
