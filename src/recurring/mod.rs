//! Recurring transactions and bills: rules, their occurrence dates (`schedule`, a pure
//! function), confirm/skip, and the ticker that posts and reminds.

// Used by the rules and the ticker, which land next.
#[allow(dead_code)]
pub(crate) mod schedule;
