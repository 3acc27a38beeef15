//! `/monthly-budget`: the month's balance split by the category targets, against what was
//! actually put into each category.

use rusqlite::{Connection, params};
use serde::Serialize;
use std::collections::HashMap;
use utoipa::ToSchema;

use super::catalog::Catalog;
use super::money::{self, Money, Percent};
use super::period::Period;
use super::transactions;
use crate::error::Result;

#[derive(Serialize, ToSchema)]
pub struct MonthlyCategory {
    pub name: String,
    pub label: String,
    pub icon: String,
    pub icon_color: String,
    #[schema(value_type = f64)]
    pub target_percentage: Percent,
    /// current_balance × target_percentage / 100, rounded half-even to the paisa.
    #[schema(value_type = f64)]
    pub allocated_amount: Money,
    #[schema(value_type = f64)]
    pub actual_invested: Money,
    /// actual_invested − allocated_amount
    #[schema(value_type = f64)]
    pub difference: Money,
    /// `perfect` (0), `under` (< 0) or `over` (> 0).
    pub status: String,
}

#[derive(Serialize, ToSchema)]
pub struct MonthlyBudgetResponse {
    pub month: u32,
    pub year: i32,
    #[schema(value_type = f64)]
    pub current_balance: Money,
    #[schema(value_type = f64)]
    pub total_income: Money,
    #[schema(value_type = f64)]
    pub total_expense: Money,
    pub categories: Vec<MonthlyCategory>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The month's actual amounts summed per category id.
fn actual_by_category(c: &Connection, user: &str, p: Period) -> Result<HashMap<String, Money>> {
    let mut stmt = c.prepare_cached(
        "SELECT t.category_id, sum(ua.actual_amount) FROM user_allocations ua
         JOIN allocation_types t ON t.id = ua.allocation_type_id
         WHERE ua.user_id = ?1 AND ua.year = ?2 AND ua.month = ?3 GROUP BY t.category_id",
    )?;
    let map = stmt
        .query_map(params![user, p.year, p.month], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(map)
}

pub fn monthly_budget(
    c: &Connection,
    catalog: &Catalog,
    user: &str,
    p: Period,
) -> Result<MonthlyBudgetResponse> {
    let totals = transactions::totals(c, user, p)?;
    let balance = totals.balance()?;
    if totals.transaction_count == 0 {
        return Ok(MonthlyBudgetResponse {
            month: p.month,
            year: p.year,
            current_balance: Money::ZERO,
            total_income: Money::ZERO,
            total_expense: Money::ZERO,
            categories: Vec::new(),
            message: Some("No transactions yet for this month".into()),
        });
    }
    let actual = actual_by_category(c, user, p)?;
    let categories = catalog
        .categories
        .iter()
        .map(|cat| {
            let allocated = balance
                .percent_bp(cat.target.0)
                .ok_or_else(money::overflow)?;
            let invested = actual.get(&cat.id).copied().unwrap_or_default();
            let difference = invested
                .checked_sub(allocated)
                .ok_or_else(money::overflow)?;
            Ok(MonthlyCategory {
                name: cat.name.clone(),
                label: cat.label.clone(),
                icon: cat.icon.clone(),
                icon_color: cat.icon_color.clone(),
                target_percentage: cat.target,
                allocated_amount: allocated,
                actual_invested: invested,
                difference,
                status: match difference.cmp(&Money::ZERO) {
                    std::cmp::Ordering::Equal => "perfect",
                    std::cmp::Ordering::Less => "under",
                    std::cmp::Ordering::Greater => "over",
                }
                .into(),
            })
        })
        .collect::<Result<_>>()?;
    Ok(MonthlyBudgetResponse {
        month: p.month,
        year: p.year,
        current_balance: balance,
        total_income: totals.total_income,
        total_expense: totals.total_expense,
        categories,
        message: None,
    })
}
