//! The few server internals the functional suites reach for past the HTTP API (forging a
//! token, deactivating a user behind the API's back, the route table, the in-process event
//! bus), named in this one file, so a change inside src/ has one place to fix here. The
//! database (`t.app().db`) and the clock (`t.app().clock`) are reached through `TestApp`.

pub use wealthcoach::auth::tokens::{TokenClaims, hash_token};
pub use wealthcoach::auth::users::set_active;
pub use wealthcoach::notify::hub::Event;
pub use wealthcoach::ops::docs::document as openapi_document;
pub use wealthcoach::random;
pub use wealthcoach::routes;
