//! HTTP: the listener and its handler pool, routing, request parsing and the error mapping.

pub(crate) mod framing;
pub(crate) mod later;
pub(crate) mod middleware;
pub(crate) mod pool;
pub(crate) mod ratelimit;
pub mod request;
pub(crate) mod response;
pub(crate) mod router;
pub(crate) mod server;
pub(crate) mod write;

pub(crate) use request::Req;
pub(crate) use response::Resp;
pub(crate) use router::{Route, Router, route};
pub(crate) use server::State;
