//! Money: the allocation catalogue, a user's monthly allocations, the monthly budget view and
//! transactions, all in integer minor units.

pub mod allocations;
pub mod cache;
pub mod catalog;
pub mod dates;
pub mod handlers;
pub mod idempotency;
pub mod money;
pub mod monthly;
pub mod period;
pub mod transactions;

use crate::app::App;
use crate::http::{Route, route};
use handlers::{allocations as a, monthly as m, transactions as t};

pub fn routes() -> Vec<Route<App>> {
    vec![
        route("GET", "/api/v1/allocations", a::get_allocations),
        route("GET", "/api/v1/allocations/summary", a::get_summary),
        route("GET", "/api/v1/allocations/history", a::get_history),
        route("POST", "/api/v1/allocations/budget", a::set_budget),
        route("POST", "/api/v1/allocations/actual", a::record_actual),
        route(
            "GET",
            "/api/v1/allocations/{allocation_id}",
            a::get_category,
        ),
        route(
            "PUT",
            "/api/v1/allocations/{allocation_id}",
            a::put_allocation,
        ),
        route(
            "DELETE",
            "/api/v1/allocations/{allocation_id}",
            a::delete_allocation,
        ),
        route("GET", "/api/v1/monthly-budget", m::get_monthly_budget),
        route("POST", "/api/v1/transactions", t::create_transaction),
        route("GET", "/api/v1/transactions", t::list_transactions),
        route("GET", "/api/v1/transactions/balance", t::get_balance),
        route("PATCH", "/api/v1/transactions/{id}", t::patch_transaction),
        route("DELETE", "/api/v1/transactions/{id}", t::delete_transaction),
    ]
}
