//! Money: the allocation catalogue, a user's monthly allocations, the monthly budget view and
//! transactions, all in integer minor units.

pub(crate) mod alerts;
pub(crate) mod allocations;
pub(crate) mod cache;
pub(crate) mod catalog;
pub(crate) mod dates;
pub(crate) mod export;
pub(crate) mod handlers;
pub(crate) mod idempotency;
pub(crate) mod money;
pub(crate) mod monthly;
pub mod period;
pub(crate) mod rollover;
pub(crate) mod spending;
#[cfg(test)]
pub(crate) mod testing;
pub(crate) mod transactions;
pub(crate) mod versions;

use crate::api::ApiPath;
use crate::app::App;
use crate::http::Route;
use handlers::{allocations as a, monthly as m, rollover as r, transactions as t};

pub fn routes() -> Vec<Route<App>> {
    vec![
        a::__path_get_allocations::route(a::get_allocations),
        a::__path_get_summary::route(a::get_summary),
        a::__path_get_history::route(a::get_history),
        r::__path_get_rollover::route(r::get_rollover),
        r::__path_put_rollover::route(r::put_rollover),
        a::__path_set_budget::route(a::set_budget),
        a::__path_record_actual::route(a::record_actual),
        a::__path_get_category::route(a::get_category),
        a::__path_put_allocation::route(a::put_allocation),
        a::__path_delete_allocation::route(a::delete_allocation),
        m::__path_get_monthly_budget::route(m::get_monthly_budget),
        t::__path_create_transaction::route(t::create_transaction),
        t::__path_list_transactions::route(t::list_transactions),
        t::__path_get_balance::route(t::get_balance),
        t::__path_patch_transaction::route(t::patch_transaction),
        t::__path_delete_transaction::route(t::delete_transaction),
    ]
}
