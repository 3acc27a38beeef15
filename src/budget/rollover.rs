//! Rollover: what is left of a type's budget in one month carried into the next. Settings are
//! stored (`allocation_rollover`, one per type and first month); the carry is computed when a
//! month is read, never stored, so an edit to a past month shows in every later month at once.
//!
//! Per type and month m: `available(m) = budget(m) + carry_in(m) − actual(m)`. `carry_in(m)` is
//! 0 under `none` and in the first month of the setting in force; otherwise, from
//! `available(m−1)`: `surplus` carries only a positive amount, `both` a negative one too, and a
//! cap bounds the positive side. A month with no row is budget 0 and actual 0.
//!
//! Only the setting in force at m matters (a later setting starts its own chain), so a read
//! needs the settings plus one indexed range query of `user_allocations` from the earliest
//! first month of a carrying setting to m; the fold runs in memory.

use std::collections::HashMap;

use rusqlite::{Connection, Transaction, params};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::allocations::Row;
use super::catalog::Catalog;
use super::money::{self, Money};
use super::period::Period;
use crate::error::{Error, Result};
use crate::input::{FromJson, Invalid};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RolloverMode {
    /// No carry.
    None,
    /// A positive remainder carries (up to the cap).
    Surplus,
    /// The remainder carries, overspending too (the cap bounds the positive side only).
    Both,
}

impl RolloverMode {
    fn as_str(self) -> &'static str {
        match self {
            RolloverMode::None => "none",
            RolloverMode::Surplus => "surplus",
            RolloverMode::Both => "both",
        }
    }

    fn parse(s: &str) -> Option<RolloverMode> {
        match s {
            "none" => Some(RolloverMode::None),
            "surplus" => Some(RolloverMode::Surplus),
            "both" => Some(RolloverMode::Both),
            _ => None,
        }
    }
}

impl FromJson for RolloverMode {
    fn from_json(v: &Value) -> std::result::Result<Self, Invalid> {
        v.as_str()
            .and_then(RolloverMode::parse)
            .ok_or_else(|| Invalid::new("Input should be 'none', 'surplus' or 'both'", "enum"))
    }
}

/// One stored setting: from its month onward, until a later setting of the same type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Setting {
    pub(crate) type_id: String,
    pub(crate) from: Period,
    pub(crate) mode: RolloverMode,
    /// Bounds a positive carry; `None` is no bound.
    pub(crate) cap: Option<Money>,
}

/// A setting as the API shows it.
#[derive(Serialize, ToSchema, Debug)]
pub(crate) struct SettingOut {
    pub(crate) allocation_type_id: String,
    pub(crate) mode: RolloverMode,
    /// `null`: no cap.
    #[schema(value_type = Option<f64>)]
    pub(crate) cap: Option<Money>,
    pub(crate) from_month: u32,
    pub(crate) from_year: i32,
}

impl From<Setting> for SettingOut {
    fn from(s: Setting) -> SettingOut {
        SettingOut {
            allocation_type_id: s.type_id,
            mode: s.mode,
            cap: s.cap,
            from_month: s.from.month,
            from_year: s.from.year,
        }
    }
}

/// A type's budget and actual for one month: what the fold reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Figures {
    pub(crate) budget: Money,
    pub(crate) actual: Money,
}

/// The month after `p` (years past 2100 never occur: the fold stops at a routable month).
fn following(p: Period) -> Period {
    if p.month == 12 {
        Period {
            year: p.year + 1,
            month: 1,
        }
    } else {
        Period {
            year: p.year,
            month: p.month + 1,
        }
    }
}

/// What `available` carries into the next month under `mode` and `cap`.
fn carry_of(mode: RolloverMode, cap: Option<Money>, available: Money) -> Money {
    let capped = |m: Money| cap.map_or(m, |c| m.min(c));
    match mode {
        RolloverMode::None => Money::ZERO,
        RolloverMode::Surplus => capped(available.max(Money::ZERO)),
        RolloverMode::Both if available > Money::ZERO => capped(available),
        RolloverMode::Both => available,
    }
}

/// `carry_in(at)` of one type under `setting`, the setting in force at `at` (so
/// `setting.from <= at`), with `month(p)` giving the type's figures of month p.
/// `None` if the sums overflow.
pub(crate) fn carry_in(
    setting: &Setting,
    at: Period,
    month: impl Fn(Period) -> Figures,
) -> Option<Money> {
    if setting.mode == RolloverMode::None {
        return Some(Money::ZERO);
    }
    let mut carry = Money::ZERO;
    let mut p = setting.from;
    while p < at {
        let f = month(p);
        let available = f.budget.checked_add(carry)?.checked_sub(f.actual)?;
        carry = carry_of(setting.mode, setting.cap, available);
        p = following(p);
    }
    Some(carry)
}

/// The rollover of one type in a month: the mode in force and its carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Carry {
    pub(crate) mode: RolloverMode,
    pub(crate) carry_in: Money,
}

/// Everything a month's view needs: the month's rows and, for each type with a setting in
/// force, its carry.
pub(crate) struct MonthView {
    /// The month's rows, by allocation type id.
    pub(crate) rows: HashMap<String, Row>,
    /// By allocation type id; a type missing here has mode `none` and no carry.
    pub(crate) carries: HashMap<String, Carry>,
}

/// For each type with a setting at or before `at`, the one in force at `at`. With
/// `category`, only that category's types.
fn in_force(
    c: &Connection,
    user: &str,
    at: Period,
    category: Option<&str>,
) -> Result<Vec<Setting>> {
    let mut stmt = c.prepare_cached(
        "SELECT r.allocation_type_id, r.year, r.month, r.mode, r.cap
         FROM allocation_rollover r JOIN allocation_types t ON t.id = r.allocation_type_id
         WHERE r.user_id = ?1 AND (r.year, r.month) <= (?2, ?3)
           AND (?4 IS NULL OR t.category_id = ?4)
         ORDER BY r.allocation_type_id, r.year, r.month",
    )?;
    let all = stmt
        .query_map(params![user, at.year, at.month, category], setting_of)?
        .collect::<rusqlite::Result<Vec<Setting>>>()?;
    // Ordered by type then month: the last of each type is the one in force.
    let mut latest: Vec<Setting> = Vec::new();
    for s in all {
        match latest.last_mut() {
            Some(last) if last.type_id == s.type_id => *last = s,
            _ => latest.push(s),
        }
    }
    Ok(latest)
}

fn setting_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<Setting> {
    let mode: String = r.get(3)?;
    Ok(Setting {
        type_id: r.get(0)?,
        from: Period {
            year: r.get(1)?,
            month: r.get(2)?,
        },
        // The table's CHECK admits only the three names.
        mode: RolloverMode::parse(&mode).unwrap_or(RolloverMode::None),
        cap: r.get(4)?,
    })
}

/// A user's rows over several months: type id → month → row.
type Rows = HashMap<String, HashMap<Period, Row>>;

/// The user's rows from `from` to `to`, both included: one indexed range query (the unique
/// index leads with user_id, year, month).
fn rows_between(c: &Connection, user: &str, from: Period, to: Period) -> Result<Rows> {
    let mut stmt = c.prepare_cached(
        "SELECT allocation_type_id, year, month, id, budget_amount, recorded_amount, spent_amount
         FROM user_allocations
         WHERE user_id = ?1 AND (year, month) >= (?2, ?3) AND (year, month) <= (?4, ?5)",
    )?;
    let mut found = stmt.query(params![user, from.year, from.month, to.year, to.month])?;
    let mut rows = Rows::new();
    // Up to 34 rows per month asked: only the asked month's rows keep their id, and a type id
    // is copied once per type, not once per row.
    while let Some(r) = found.next()? {
        let p = Period {
            year: r.get(1)?,
            month: r.get(2)?,
        };
        let row = Row {
            id: if p == to { r.get(3)? } else { String::new() },
            budget: r.get(4)?,
            recorded: r.get(5)?,
            spent: r.get(6)?,
        };
        let type_id = r.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?;
        match rows.get_mut(type_id) {
            Some(months) => {
                months.insert(p, row);
            }
            None => {
                rows.insert(type_id.to_string(), HashMap::from([(p, row)]));
            }
        }
    }
    Ok(rows)
}

/// The carry of every type in `settings` at `at`, from the rows of the months before.
fn carries(settings: &[Setting], at: Period, rows: &Rows) -> Result<HashMap<String, Carry>> {
    let mut out = HashMap::with_capacity(settings.len());
    for s in settings {
        let of_type = rows.get(&s.type_id);
        let month = |p: Period| -> Figures {
            // An overflowing actual cannot come from stored amounts (each ≤ 10^13).
            of_type
                .and_then(|months| months.get(&p))
                .map(|r| Figures {
                    budget: r.budget,
                    actual: r.actual().unwrap_or(Money::ZERO),
                })
                .unwrap_or_default()
        };
        let carry_in = carry_in(s, at, month).ok_or_else(money::overflow)?;
        out.insert(
            s.type_id.clone(),
            Carry {
                mode: s.mode,
                carry_in,
            },
        );
    }
    Ok(out)
}

/// The first month whose rows the carries at `at` need (`at` itself when none carries).
fn earliest(settings: &[Setting], at: Period) -> Period {
    settings
        .iter()
        .filter(|s| s.mode != RolloverMode::None)
        .map(|s| s.from)
        .fold(at, Period::min)
}

/// A month's rows and carries: the settings read, then one range query.
pub(crate) fn month_view(c: &Connection, user: &str, at: Period) -> Result<MonthView> {
    let settings = in_force(c, user, at, None)?;
    let all = rows_between(c, user, earliest(&settings, at), at)?;
    let carries = carries(&settings, at, &all)?;
    let rows = all
        .into_iter()
        .filter_map(|(t, mut months)| months.remove(&at).map(|r| (t, r)))
        .collect();
    Ok(MonthView { rows, carries })
}

/// Σ carry_in of a category's types in a month (the `budget_alert` limit adds it).
pub(crate) fn category_carry_in(
    c: &Connection,
    user: &str,
    category_id: &str,
    at: Period,
) -> Result<Money> {
    let settings = in_force(c, user, at, Some(category_id))?;
    let from = earliest(&settings, at);
    if from == at {
        return Ok(Money::ZERO);
    }
    let rows = rows_between(c, user, from, at)?;
    let carries = carries(&settings, at, &rows)?;
    Money::total(carries.values().map(|c| c.carry_in)).ok_or_else(money::overflow)
}

/// `PUT /allocations/rollover`: stores a setting, replacing one of the same type and month.
pub(crate) fn put(
    tx: &Transaction<'_>,
    catalog: &Catalog,
    user: &str,
    s: &Setting,
    now: &str,
) -> Result<()> {
    if !catalog.has_type(&s.type_id) {
        return Err(Error::NotFound {
            code: "allocation_type_not_found",
            detail: format!("Allocation type with id '{}' not found", s.type_id),
        });
    }
    tx.execute(
        "INSERT INTO allocation_rollover (user_id, allocation_type_id, year, month, mode, cap, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT(user_id, allocation_type_id, year, month) DO UPDATE SET
             mode = excluded.mode, cap = excluded.cap, updated_at = excluded.updated_at",
        params![user, s.type_id, s.from.year, s.from.month, s.mode.as_str(), s.cap, now],
    )?;
    Ok(())
}

/// Every setting of the user, in catalogue order, then by month.
pub(crate) fn list(c: &Connection, catalog: &Catalog, user: &str) -> Result<Vec<Setting>> {
    let mut stmt = c.prepare_cached(
        "SELECT allocation_type_id, year, month, mode, cap FROM allocation_rollover
         WHERE user_id = ?1",
    )?;
    let mut all = stmt
        .query_map(params![user], setting_of)?
        .collect::<rusqlite::Result<Vec<Setting>>>()?;
    let order: HashMap<&str, usize> = catalog
        .categories
        .iter()
        .flat_map(|c| &c.types)
        .enumerate()
        .map(|(i, t)| (t.id.as_str(), i))
        .collect();
    all.sort_by_key(|s| (order.get(s.type_id.as_str()).copied(), s.from));
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::money::testing::Money;

    fn month(year: i32, month: u32) -> Period {
        Period { year, month }
    }

    fn setting(mode: RolloverMode, cap: Option<i64>, from: Period) -> Setting {
        Setting {
            type_id: "t".into(),
            from,
            mode,
            cap: cap.map(Money),
        }
    }

    /// Budget `budget` every month, the given actuals by month (others 0).
    fn figures(budget: i64, actuals: &[(Period, i64)]) -> impl Fn(Period) -> Figures + '_ {
        move |p| Figures {
            budget: Money(budget),
            actual: Money(actuals.iter().find(|(m, _)| *m == p).map_or(0, |(_, a)| *a)),
        }
    }

    const JAN: Period = Period {
        year: 2025,
        month: 1,
    };
    const FEB: Period = Period {
        year: 2025,
        month: 2,
    };

    #[test]
    fn the_contracts_example() {
        let surplus = setting(RolloverMode::Surplus, None, JAN);
        let both = setting(RolloverMode::Both, None, JAN);
        // 75 spent in January: 25 carries; February's available is 100 + 25 − 0.
        let spent75 = figures(10_000, &[(JAN, 7_500)]);
        assert_eq!(carry_in(&surplus, FEB, &spent75), Some(Money(2_500)));
        // 120 spent: nothing under surplus, −20 under both.
        let spent120 = figures(10_000, &[(JAN, 12_000)]);
        assert_eq!(carry_in(&surplus, FEB, &spent120), Some(Money(0)));
        assert_eq!(carry_in(&both, FEB, &spent120), Some(Money(-2_000)));
        // The setting's first month carries nothing.
        assert_eq!(carry_in(&surplus, JAN, &spent75), Some(Money(0)));
    }

    #[test]
    fn the_chain_accumulates_and_crosses_a_year() {
        let s = setting(RolloverMode::Surplus, None, month(2024, 11));
        // 100 a month, nothing spent: 100 more every month after the first.
        let none_spent = figures(10_000, &[]);
        assert_eq!(
            carry_in(&s, month(2024, 12), &none_spent),
            Some(Money(10_000))
        );
        assert_eq!(
            carry_in(&s, month(2025, 2), &none_spent),
            Some(Money(30_000))
        );
        // A month with no row at all (budget 0) keeps the chain going.
        let gaps = |p: Period| Figures {
            budget: Money(if p == month(2024, 11) { 5_000 } else { 0 }),
            actual: Money(0),
        };
        assert_eq!(carry_in(&s, month(2025, 3), gaps), Some(Money(5_000)));
    }

    #[test]
    fn a_cap_bounds_the_positive_side_only() {
        let surplus = setting(RolloverMode::Surplus, Some(3_000), JAN);
        let none_spent = figures(10_000, &[]);
        assert_eq!(carry_in(&surplus, FEB, &none_spent), Some(Money(3_000)));
        // Under the cap each month: 100 + 30 − 0 capped again to 30.
        assert_eq!(
            carry_in(&surplus, month(2025, 4), &none_spent),
            Some(Money(3_000))
        );
        let both = setting(RolloverMode::Both, Some(3_000), JAN);
        assert_eq!(carry_in(&both, FEB, &none_spent), Some(Money(3_000)));
        // Overspending by 70 is carried whole, beyond the cap.
        let over = figures(10_000, &[(JAN, 17_000)]);
        assert_eq!(carry_in(&both, FEB, &over), Some(Money(-7_000)));
        // A zero cap carries nothing positive.
        let zero = setting(RolloverMode::Surplus, Some(0), JAN);
        assert_eq!(carry_in(&zero, FEB, &none_spent), Some(Money(0)));
    }

    #[test]
    fn both_carries_debt_forward_until_repaid() {
        let both = setting(RolloverMode::Both, None, JAN);
        // Jan: 100 − 250 = −150; Feb: 100 − 150 − 0 = −50; Mar: 100 − 50 = 50 → April 50.
        let big = figures(10_000, &[(JAN, 25_000)]);
        assert_eq!(carry_in(&both, FEB, &big), Some(Money(-15_000)));
        assert_eq!(carry_in(&both, month(2025, 3), &big), Some(Money(-5_000)));
        assert_eq!(carry_in(&both, month(2025, 4), &big), Some(Money(5_000)));
        // Surplus forgets the debt: February starts from 0 again.
        let surplus = setting(RolloverMode::Surplus, None, JAN);
        assert_eq!(
            carry_in(&surplus, month(2025, 3), &big),
            Some(Money(10_000))
        );
    }

    #[test]
    fn none_carries_nothing() {
        let none = setting(RolloverMode::None, None, JAN);
        let none_spent = figures(10_000, &[]);
        assert_eq!(carry_in(&none, month(2025, 6), &none_spent), Some(Money(0)));
    }

    fn row(budget: i64, recorded: i64) -> Row {
        Row {
            id: "r".into(),
            budget: Money(budget),
            recorded: Money(recorded),
            spent: Money(0),
        }
    }

    #[test]
    fn a_later_setting_takes_over_and_none_stops() {
        // What `in_force` hands `carries`: per type, only the latest setting at `at`.
        let months = [JAN, FEB, month(2025, 3)].map(|p| (p, row(10_000, 0)));
        let rows: Rows = [("t".to_string(), months.into_iter().collect())].into();
        let jan = setting(RolloverMode::Surplus, None, JAN);
        let at = month(2025, 4);
        let c = carries(std::slice::from_ref(&jan), at, &rows).expect("fold");
        assert_eq!(c["t"].carry_in, Money(30_000));
        // A `both` from March starts a chain of its own: only March's 100 carries.
        let march = setting(RolloverMode::Both, None, month(2025, 3));
        assert_eq!(earliest(std::slice::from_ref(&march), at), month(2025, 3));
        let c = carries(&[march], at, &rows).expect("fold");
        assert_eq!(c["t"].carry_in, Money(10_000));
        assert_eq!(c["t"].mode, RolloverMode::Both);
        // `none` from March: nothing, and no earlier month is read.
        let stop = setting(RolloverMode::None, None, month(2025, 3));
        assert_eq!(earliest(std::slice::from_ref(&stop), at), at);
        let c = carries(&[stop], at, &rows).expect("fold");
        assert_eq!(c["t"].carry_in, Money(0));
        assert_eq!(c["t"].mode, RolloverMode::None);
    }

    #[test]
    fn recorded_and_spent_both_count_as_actual() {
        let jan = Row {
            id: "r".into(),
            budget: Money(10_000),
            recorded: Money(3_000),
            spent: Money(4_000),
        };
        let rows: Rows = [("t".to_string(), [(JAN, jan)].into())].into();
        let s = setting(RolloverMode::Surplus, None, JAN);
        let c = carries(&[s], FEB, &rows).expect("fold");
        assert_eq!(c["t"].carry_in, Money(3_000));
    }
}
