//! `spent_amount`: what a user's expenses linked to an allocation type add up to in a month.
//! The transaction write path moves it here, in the same database transaction as the month
//! totals, by the difference between the transaction as it was and as it becomes; nothing
//! ever recomputes it from scratch, so it stays exact only because every write goes through
//! these functions.

use rusqlite::{Transaction, params};

use super::alerts::{self, Watch};
use super::catalog::Catalog;
use super::money::{self, Money};
use super::period::Period;
use super::transactions::{Kind, TransactionResponse};
use crate::error::{Error, Result};
use crate::notify::hub::Event;

/// Where a transaction's amount counts as spent: a linked expense's type and month.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Spend<'a> {
    pub(crate) type_id: &'a str,
    pub(crate) period: Period,
    pub(crate) amount: Money,
}

impl<'a> Spend<'a> {
    /// `None` unless the transaction is an expense linked to a type.
    pub(crate) fn of(
        kind: Kind,
        type_id: Option<&'a str>,
        period: Period,
        amount: Money,
    ) -> Option<Spend<'a>> {
        match (kind, type_id) {
            (Kind::Expense, Some(type_id)) => Some(Spend {
                type_id,
                period,
                amount,
            }),
            _ => None,
        }
    }

    /// What a stored transaction counts.
    pub(crate) fn stored(t: &'a TransactionResponse) -> Option<Spend<'a>> {
        let p = Period {
            year: t.year,
            month: t.month,
        };
        Spend::of(t.kind, t.allocation_type_id.as_deref(), p, t.amount)
    }
}

/// `spent_amount` of one (type, month) moved by `delta` paise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Move<'a> {
    pub(crate) type_id: &'a str,
    pub(crate) period: Period,
    pub(crate) delta: Money,
}

/// The moves that take `before` out and put `after` in (`None`: created, deleted, or not a
/// linked expense). The same (type, month) on both sides is one net move, none if it is 0.
pub(crate) fn moves<'a>(
    before: Option<Spend<'a>>,
    after: Option<Spend<'a>>,
) -> Result<Vec<Move<'a>>> {
    let out = |s: Spend<'a>| -> Result<Move<'a>> {
        Ok(Move {
            type_id: s.type_id,
            period: s.period,
            delta: s.amount.checked_neg().ok_or_else(money::overflow)?,
        })
    };
    let put = |s: Spend<'a>| Move {
        type_id: s.type_id,
        period: s.period,
        delta: s.amount,
    };
    Ok(match (before, after) {
        (None, None) => vec![],
        (Some(b), None) => vec![out(b)?],
        (None, Some(a)) => vec![put(a)],
        (Some(b), Some(a)) if (b.type_id, b.period) == (a.type_id, a.period) => {
            let delta = a.amount.checked_sub(b.amount).ok_or_else(money::overflow)?;
            if delta == Money::ZERO {
                vec![]
            } else {
                vec![Move { delta, ..put(a) }]
            }
        }
        (Some(b), Some(a)) => vec![out(b)?, put(a)],
    })
}

/// Moves `spent_amount` of (user, type, month) by `delta`. Adding creates the month's row
/// when the type has none (budget 0, recorded 0); taking out needs the row and must not go
/// below 0 (the table's CHECK refuses it): either failing means the books were already wrong,
/// so it is an internal error and the whole write rolls back.
pub(crate) fn shift(
    tx: &Transaction<'_>,
    user: &str,
    type_id: &str,
    p: Period,
    delta: Money,
    now: &str,
) -> Result<()> {
    if delta >= Money::ZERO {
        // One statement on the hot path (a linked POST): insert or add.
        tx.prepare_cached(
            "INSERT INTO user_allocations (id, user_id, allocation_type_id, year, month, spent_amount,
                                           created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
             ON CONFLICT(user_id, year, month, allocation_type_id) DO UPDATE SET
                 spent_amount = spent_amount + excluded.spent_amount,
                 updated_at = excluded.updated_at",
        )?
        .execute(params![
            crate::random::uuid(),
            user,
            type_id,
            p.year,
            p.month,
            delta,
            now
        ])?;
        return Ok(());
    }
    // An upsert would check the CHECK (spent ≥ 0) against the negative value it would insert.
    let n = tx
        .prepare_cached(
            "UPDATE user_allocations SET spent_amount = spent_amount + ?5, updated_at = ?6
             WHERE user_id = ?1 AND allocation_type_id = ?2 AND year = ?3 AND month = ?4",
        )?
        .execute(params![user, type_id, p.year, p.month, delta, now])
        .map_err(|e| {
            Error::internal(format!(
                "spent_amount would go below 0 for {type_id} {p:?}: {e}"
            ))
        })?;
    if n != 1 {
        return Err(Error::internal(format!(
            "no allocation row holds the spending of {type_id} {p:?}"
        )));
    }
    Ok(())
}

pub(crate) fn apply(tx: &Transaction<'_>, user: &str, moves: &[Move<'_>], now: &str) -> Result<()> {
    for m in moves {
        shift(tx, user, m.type_id, m.period, m.delta, now)?;
    }
    Ok(())
}

/// Before the write: a `budget_alert` watch on each (category, month) that a move adds to.
/// Only an addition can take a category over its limit; a category touched twice (a PATCH
/// between two of its types) is watched once, so it alerts at most once.
pub(crate) fn watch(
    tx: &Transaction<'_>,
    catalog: &Catalog,
    user: &str,
    moves: &[Move<'_>],
) -> Result<Vec<Watch>> {
    let mut seen: Vec<(&str, Period)> = Vec::new();
    let mut watches = Vec::new();
    for m in moves.iter().filter(|m| m.delta > Money::ZERO) {
        let category = catalog
            .category_of_type(m.type_id)
            .ok_or_else(|| type_not_found(m.type_id))?;
        if seen.contains(&(category.id.as_str(), m.period)) {
            continue;
        }
        seen.push((category.id.as_str(), m.period));
        watches.push(alerts::watch(tx, catalog, user, m.type_id, m.period)?);
    }
    Ok(watches)
}

/// After the write: the alerts to publish once it has committed.
pub(crate) fn check(
    tx: &Transaction<'_>,
    user: &str,
    watches: Vec<Watch>,
    now: &str,
) -> Result<Vec<Event>> {
    let mut events = Vec::new();
    for w in watches {
        events.extend(alerts::check(tx, user, w, now)?);
    }
    Ok(events)
}

/// The link a transaction is to have, checked against the catalogue and its kind: an unknown
/// type is a 404, a linked income a 422.
pub(crate) fn check_link(catalog: &Catalog, kind: Kind, type_id: Option<&str>) -> Result<()> {
    let Some(type_id) = type_id else {
        return Ok(());
    };
    if !catalog.has_type(type_id) {
        return Err(type_not_found(type_id));
    }
    if kind != Kind::Expense {
        return Err(Error::Unprocessable {
            code: "allocation_requires_expense",
            detail: "Only an expense can be linked to an allocation type".into(),
        });
    }
    Ok(())
}

pub(crate) fn type_not_found(type_id: &str) -> Error {
    Error::NotFound {
        code: "allocation_type_not_found",
        detail: format!("Allocation type with id '{type_id}' not found"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::money::testing::Money as M;

    const OCT: Period = Period {
        year: 2025,
        month: 10,
    };
    const NOV: Period = Period {
        year: 2025,
        month: 11,
    };

    fn spend(type_id: &str, period: Period, paise: i64) -> Option<Spend<'_>> {
        Spend::of(Kind::Expense, Some(type_id), period, M(paise))
    }

    fn mv(type_id: &str, period: Period, delta: i64) -> Move<'_> {
        Move {
            type_id,
            period,
            delta: M(delta),
        }
    }

    #[test]
    fn only_a_linked_expense_counts() {
        assert_eq!(Spend::of(Kind::Income, Some("a"), OCT, M(5)), None);
        assert_eq!(Spend::of(Kind::Expense, None, OCT, M(5)), None);
        assert!(spend("a", OCT, 5).is_some());
    }

    #[test]
    fn moves_are_the_difference() {
        let ok = |b, a| moves(b, a).expect("moves");
        assert_eq!(ok(None, None), vec![]);
        assert_eq!(ok(None, spend("a", OCT, 500)), vec![mv("a", OCT, 500)]);
        assert_eq!(ok(spend("a", OCT, 500), None), vec![mv("a", OCT, -500)]);
        // Same type and month: one net move, or none.
        assert_eq!(
            ok(spend("a", OCT, 500), spend("a", OCT, 200)),
            vec![mv("a", OCT, -300)]
        );
        assert_eq!(ok(spend("a", OCT, 500), spend("a", OCT, 500)), vec![]);
        // Another month or another type: out of one, into the other.
        assert_eq!(
            ok(spend("a", OCT, 500), spend("a", NOV, 700)),
            vec![mv("a", OCT, -500), mv("a", NOV, 700)]
        );
        assert_eq!(
            ok(spend("a", OCT, 500), spend("b", OCT, 500)),
            vec![mv("a", OCT, -500), mv("b", OCT, 500)]
        );
    }
}
