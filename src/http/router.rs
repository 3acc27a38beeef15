//! Method + path pattern → handler. Patterns are `/api/v1/things/{id}`; a static segment
//! beats a `{param}` one, so `/allocations/summary` wins over `/allocations/{id}`. Generic over
//! the state `S` handlers receive, so this layer names no application type.

use super::request::Req;
use super::response::Resp;
use crate::error::Error;

pub(crate) type Handler<S> = fn(&S, &Req) -> Result<Resp, Error>;

/// How the cross-cutting checks treat a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// Health, docs and metrics: never rate limited.
    Exempt,
    /// Everything else under the general limits.
    Api,
    /// Chat: also under the chat limit.
    Chat,
    /// Lookups that reveal whether an account exists: a tight per-address limit, always on.
    Sensitive,
}

pub struct Route<S> {
    pub method: &'static str,
    pub pattern: &'static str,
    pub(crate) handler: Handler<S>,
    pub(crate) class: Class,
    /// Waits on the outside world (an upstream, the SMS gateway): after the checks, the
    /// handler runs on the slow pool (`pool`), never on a handler thread.
    pub(crate) slow: bool,
    /// In the OpenAPI document; `doc` adds it there.
    pub documented: bool,
    /// Adds this route's operation to the OpenAPI document, from its handler's
    /// `#[utoipa::path]` (`ApiPath::route` in src/api.rs sets it).
    pub(crate) doc: Option<fn(&mut utoipa::openapi::OpenApi)>,
}

/// A route the API document does not describe (Swagger UI's files behind `/docs`); the
/// documented ones are built with `ApiPath::route` (src/api.rs).
pub(crate) const fn route<S>(
    method: &'static str,
    pattern: &'static str,
    handler: Handler<S>,
) -> Route<S> {
    Route {
        method,
        pattern,
        handler,
        class: Class::Api,
        slow: false,
        documented: false,
        doc: None,
    }
}

impl<S> Route<S> {
    pub(crate) const fn exempt(mut self) -> Route<S> {
        self.class = Class::Exempt;
        self
    }
    pub(crate) const fn undocumented(mut self) -> Route<S> {
        self.documented = false;
        self.doc = None;
        self
    }
    pub(crate) const fn sensitive(mut self) -> Route<S> {
        self.class = Class::Sensitive;
        self
    }
    pub(crate) const fn chat(mut self) -> Route<S> {
        self.class = Class::Chat;
        self
    }
    pub(crate) const fn slow(mut self) -> Route<S> {
        self.slow = true;
        self
    }
}

/// Values of a route's `{name}` segments.
pub(crate) type Params = Vec<(&'static str, String)>;

pub(crate) enum Match<'r, S> {
    Found(&'r Route<S>, Params),
    MethodNotAllowed(Vec<&'static str>),
    NotFound,
}

pub struct Router<S> {
    routes: Vec<Route<S>>,
    /// Each route's pattern split once at start: `find` runs on every request, and splitting
    /// ~80 patterns per request showed in the profile (README "Performance").
    segments: Vec<Vec<Segment>>,
}

#[derive(Clone, Copy)]
enum Segment {
    Static(&'static str),
    Param(&'static str),
}

fn compile(pattern: &'static str) -> Vec<Segment> {
    pattern
        .split('/')
        .map(
            |p| match p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Some(name) => Segment::Param(name),
                None => Segment::Static(p),
            },
        )
        .collect()
}

/// Static segments matched, or `None` if the pattern does not fit the path's segments.
fn fit(pattern: &[Segment], path: &[&str]) -> Option<usize> {
    if pattern.len() != path.len() {
        return None;
    }
    let mut statics = 0;
    for (p, g) in pattern.iter().zip(path) {
        match p {
            Segment::Param(_) if g.is_empty() => return None,
            Segment::Param(_) => {}
            Segment::Static(s) if s == g => statics += 1,
            Segment::Static(_) => return None,
        }
    }
    Some(statics)
}

/// The values of a fitting pattern's `{name}` segments, percent-decoded.
fn params(pattern: &[Segment], path: &[&str]) -> Params {
    pattern
        .iter()
        .zip(path)
        .filter_map(|(p, g)| match p {
            Segment::Param(name) => Some((*name, super::request::percent_decode(g))),
            Segment::Static(_) => None,
        })
        .collect()
}

impl<S> Router<S> {
    pub(crate) fn new(routes: Vec<Route<S>>) -> Router<S> {
        let segments = routes.iter().map(|r| compile(r.pattern)).collect();
        Router { routes, segments }
    }

    pub fn routes(&self) -> &[Route<S>] {
        &self.routes
    }

    pub(crate) fn find(&self, method: &str, path: &str) -> Match<'_, S> {
        // A trailing slash names the same resource (`/api/v1/health/`).
        let path = if path.len() > 1 {
            path.trim_end_matches('/')
        } else {
            path
        };
        let path = if path.is_empty() { "/" } else { path };
        let got: Vec<&str> = path.split('/').collect();
        // HEAD is answered like GET, without the body (tiny_http drops it).
        let method = if method == "HEAD" { "GET" } else { method };
        let mut best: Option<(usize, usize)> = None;
        let mut allow: Vec<&'static str> = Vec::new();
        for (i, (r, pattern)) in self.routes.iter().zip(&self.segments).enumerate() {
            let Some(statics) = fit(pattern, &got) else {
                continue;
            };
            if !allow.contains(&r.method) {
                allow.push(r.method);
            }
            if r.method == method && best.is_none_or(|(s, _)| statics > s) {
                best = Some((statics, i));
            }
        }
        match best {
            Some((_, i)) => Match::Found(&self.routes[i], params(&self.segments[i], &got)),
            None if allow.is_empty() => Match::NotFound,
            None => {
                if allow.contains(&"GET") {
                    allow.push("HEAD");
                }
                allow.push("OPTIONS");
                Match::MethodNotAllowed(allow)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(_: &(), _: &Req) -> Result<Resp, Error> {
        Ok(Resp::empty(204))
    }

    fn router() -> Router<()> {
        Router::new(vec![
            route("GET", "/api/v1/allocations/{allocation_id}", h),
            route("PUT", "/api/v1/allocations/{allocation_id}", h),
            route("GET", "/api/v1/allocations/summary", h),
            route("GET", "/", h),
        ])
    }

    #[test]
    fn static_beats_param_and_params_are_decoded() {
        let r = router();
        match r.find("GET", "/api/v1/allocations/summary") {
            Match::Found(route, params) => {
                assert_eq!(route.pattern, "/api/v1/allocations/summary");
                assert!(params.is_empty());
            }
            _ => panic!("expected a match"),
        }
        match r.find("GET", "/api/v1/allocations/a%20b/") {
            Match::Found(_, params) => {
                assert_eq!(params, vec![("allocation_id", "a b".to_string())])
            }
            _ => panic!("expected a match"),
        }
    }

    #[test]
    fn wrong_method_lists_allow_and_unknown_is_404() {
        let r = router();
        match r.find("DELETE", "/api/v1/allocations/x") {
            Match::MethodNotAllowed(allow) => {
                assert_eq!(allow, vec!["GET", "PUT", "HEAD", "OPTIONS"])
            }
            _ => panic!("expected 405"),
        }
        assert!(matches!(r.find("GET", "/nope"), Match::NotFound));
        assert!(matches!(
            r.find("GET", "/api/v1/allocations/"),
            Match::NotFound
        ));
        assert!(matches!(r.find("HEAD", "/"), Match::Found(..)));
    }
}
