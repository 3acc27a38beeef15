//! HTTP: the listener and its handler pool, routing, request parsing and the error mapping.

pub mod framing;
pub mod middleware;
pub mod ratelimit;
pub mod request;
pub mod response;
pub mod router;
pub mod server;

pub use request::Req;
pub use response::Resp;
pub use router::{Route, Router, route};
pub use server::State;
