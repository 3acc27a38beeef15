//! Money: the allocation catalogue, a user's monthly allocations, the monthly budget view and
//! transactions, all in integer minor units.

pub mod allocations;
pub mod cache;
pub mod catalog;
pub mod dates;
pub mod idempotency;
pub mod money;
pub mod monthly;
pub mod period;
pub mod routes;
pub mod transactions;

use crate::http::{Route, route};

pub fn routes() -> Vec<Route> {
    vec![
        route("GET", "/api/v1/allocations", routes::get_allocations),
        route("GET", "/api/v1/allocations/summary", routes::get_summary),
        route("GET", "/api/v1/allocations/history", routes::get_history),
        route("POST", "/api/v1/allocations/budget", routes::set_budget),
        route("POST", "/api/v1/allocations/actual", routes::record_actual),
        route(
            "GET",
            "/api/v1/allocations/{allocation_id}",
            routes::get_category,
        ),
        route(
            "PUT",
            "/api/v1/allocations/{allocation_id}",
            routes::put_allocation,
        ),
        route(
            "DELETE",
            "/api/v1/allocations/{allocation_id}",
            routes::delete_allocation,
        ),
        route("GET", "/api/v1/monthly-budget", routes::get_monthly_budget),
        route("POST", "/api/v1/transactions", routes::create_transaction),
        route("GET", "/api/v1/transactions", routes::list_transactions),
        route("GET", "/api/v1/transactions/balance", routes::get_balance),
        route(
            "PATCH",
            "/api/v1/transactions/{id}",
            routes::patch_transaction,
        ),
        route(
            "DELETE",
            "/api/v1/transactions/{id}",
            routes::delete_transaction,
        ),
    ]
}
