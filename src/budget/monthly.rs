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
pub(crate) struct MonthlyCategory {
    pub(crate) name: String,
    pub(crate) label: String,
    pub(crate) icon: String,
    pub(crate) icon_color: String,
    #[schema(value_type = f64)]
    pub(crate) target_percentage: Percent,
    /// current_balance × target_percentage / 100, rounded half-even to the paisa.
    #[schema(value_type = f64)]
    pub(crate) allocated_amount: Money,
    #[schema(value_type = f64)]
    pub(crate) actual_invested: Money,
    /// actual_invested − allocated_amount
    #[schema(value_type = f64)]
    pub(crate) difference: Money,
    /// `perfect` (0), `under` (< 0) or `over` (> 0).
    pub(crate) status: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct MonthlyBudgetResponse {
    pub(crate) month: u32,
    pub(crate) year: i32,
    #[schema(value_type = f64)]
    pub(crate) current_balance: Money,
    #[schema(value_type = f64)]
    pub(crate) total_income: Money,
    #[schema(value_type = f64)]
    pub(crate) total_expense: Money,
    pub(crate) categories: Vec<MonthlyCategory>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) message: Option<String>,
}

/// The month's actual amounts summed per category id.
fn actual_by_category(c: &Connection, user: &str, p: Period) -> Result<HashMap<String, Money>> {
    let mut stmt = c.prepare_cached(
        "SELECT t.category_id, sum(ua.recorded_amount + ua.spent_amount) FROM user_allocations ua
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

pub(crate) fn monthly_budget(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::money::testing::Money;
    use crate::budget::testing::{allocate, memory, transaction, type_id, user, write};
    use crate::budget::transactions::Kind::{Expense, Income};

    const OCTOBER: Period = Period {
        year: 2025,
        month: 10,
    };

    #[test]
    fn a_month_without_transactions_says_so() {
        let c = memory();
        let catalog = Catalog::load(&c).expect("catalogue");
        let asha = user(&c, "asha@example.com");
        let m = monthly_budget(&c, &catalog, &asha, OCTOBER).expect("view");
        assert_eq!((m.month, m.year), (10, 2025));
        assert_eq!(m.current_balance, Money::ZERO);
        assert_eq!(
            (m.total_income, m.total_expense),
            (Money::ZERO, Money::ZERO)
        );
        assert!(m.categories.is_empty());
        assert_eq!(
            m.message.as_deref(),
            Some("No transactions yet for this month")
        );
    }

    #[test]
    fn the_balance_is_split_by_target_and_set_against_what_was_put_in() {
        let mut c = memory();
        let catalog = Catalog::load(&c).expect("catalogue");
        let (asha, ravi) = (user(&c, "asha@example.com"), user(&c, "ravi@example.com"));
        let utc = jiff::tz::TimeZone::UTC;
        let (funds, holidays) = (
            type_id(&catalog, "freedom", 1),
            type_id(&catalog, "spending", 5),
        );
        write(&mut c, |tx| {
            transaction(tx, &utc, &asha, Income, 100_000, "2025-10-05T10:00:00Z");
            transaction(tx, &utc, &asha, Expense, 40_000, "2025-10-06T10:00:00Z");
            // Another month and another user: not in this view.
            transaction(tx, &utc, &asha, Income, 999_999, "2025-11-01T00:00:00Z");
            transaction(tx, &utc, &ravi, Income, 777_777, "2025-10-05T10:00:00Z");
            allocate(tx, &catalog, &asha, &funds, OCTOBER, (0, 7_500));
            allocate(tx, &catalog, &asha, &holidays, OCTOBER, (0, 30_000));
            allocate(tx, &catalog, &asha, &funds, OCTOBER.prev(), (0, 1_000));
            allocate(tx, &catalog, &ravi, &holidays, OCTOBER, (0, 5_000));
        });
        let m = monthly_budget(&c, &catalog, &asha, OCTOBER).expect("view");
        assert_eq!(m.message, None);
        assert_eq!(m.total_income, Money(100_000));
        assert_eq!(m.total_expense, Money(40_000));
        assert_eq!(m.current_balance, Money(60_000));
        assert_eq!(m.categories.len(), catalog.categories.len());
        let line = |name: &str| {
            let l = m.categories.iter().find(|l| l.name == name).expect(name);
            (
                l.allocated_amount,
                l.actual_invested,
                l.difference,
                l.status.as_str(),
            )
        };
        // freedom 10 % of ₹600 is ₹60; ₹75 went in.
        assert_eq!(
            line("freedom"),
            (Money(6_000), Money(7_500), Money(1_500), "over")
        );
        // spending 50 %: ₹300, and exactly that went in.
        assert_eq!(
            line("spending"),
            (Money(30_000), Money(30_000), Money(0), "perfect")
        );
        assert_eq!(
            line("health"),
            (Money(6_000), Money(0), Money(-6_000), "under")
        );
    }
}
