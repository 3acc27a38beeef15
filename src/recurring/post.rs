//! Posting an occurrence: the one path by which a rule becomes a transaction, taken by
//! `POST /recurring/{id}/confirm` and by the ticker alike. It goes through
//! `transactions::create`, the domain code of `POST /transactions`, so month totals,
//! `spent_amount` and `budget_alert` move exactly as for any transaction, in the caller's
//! database transaction. "At most once" is the unique index on (`recurring_id`,
//! `occurrence_date`): a second post fails there with 409 `already_posted`.

use jiff::civil::{Date, Time};
use rusqlite::Transaction;
use serde_json::json;

use super::rules::{self, Stamp, Stored};
use crate::budget::catalog::Catalog;
use crate::budget::money::Money;
use crate::budget::transactions::{
    self, NewTransaction, Occurrence, TransactionResponse, TxDate, Written,
};
use crate::error::Result;
use crate::notify::hub::Event;
use crate::notify::store;

/// A posted occurrence, and what to publish once it has committed (`budget_alert`,
/// `bill_posted`).
pub(crate) struct Posted {
    pub(crate) transaction: TransactionResponse,
    pub(crate) events: Vec<Event>,
}

/// Where a post happens: the catalogue, `APP_TIMEZONE` and the write's time.
pub(crate) struct Place<'a> {
    pub(crate) catalog: &'a Catalog,
    pub(crate) tz: &'a jiff::tz::TimeZone,
    pub(crate) now: &'a str,
}

/// Posts occurrence `date` of `rule` (with `amount` instead of the rule's, if given): a
/// transaction dated at local midnight of that date, with the rule's figures; a skip mark on
/// it goes; `bill_posted` is stored once per occurrence.
pub(crate) fn post(
    tx: &Transaction<'_>,
    at: &Place<'_>,
    user: &str,
    rule: &Stored,
    date: Date,
    amount: Option<Money>,
) -> Result<Posted> {
    let spec = &rule.spec;
    let new = NewTransaction {
        kind: spec.kind,
        category: spec.category.clone(),
        amount: amount.unwrap_or(spec.amount),
        label: spec.label.clone(),
        date: TxDate::Local(date.to_datetime(Time::midnight())),
        allocation_type_id: spec.allocation_type_id.clone(),
        occurrence: Some(Occurrence {
            recurring_id: rule.id.clone(),
            date,
        }),
    };
    let Written { value, mut alerts } =
        transactions::create(tx, at.catalog, at.tz, user, &new, at.now)?;
    rules::unskip(tx, &rule.id, date)?;
    let payload = json!({
        "recurring_id": rule.id,
        "date": date.to_string(),
        "label": value.label,
        "amount": value.amount.to_number(),
        "transaction_id": value.id,
    });
    let key = format!("bill_posted:{}:{date}", rule.id);
    if let Some(s) = store::notify(tx, user, "bill_posted", payload, Some(&key), at.now)? {
        alerts.push(s.event());
    }
    Ok(Posted {
        transaction: value,
        events: alerts,
    })
}

/// `POST /recurring/{id}/confirm`: posts one occurrence of the user's rule, a future or a
/// skipped one too.
pub(crate) fn confirm(
    tx: &Transaction<'_>,
    at: &Place<'_>,
    stamp: &Stamp<'_>,
    user: &str,
    id: &str,
    date: Date,
    amount: Option<Money>,
) -> Result<Posted> {
    let rule = rules::load(tx, user, id)?;
    // The same order as skip: a posted occurrence stays 409 even when a later change of the
    // rule moved its dates away from it.
    if rules::posted(tx, id, date)?.is_some() {
        return Err(rules::already_posted());
    }
    if !rule.spec.schedule().is_occurrence(date) {
        return Err(rules::not_an_occurrence(date));
    }
    let posted = post(tx, at, user, &rule, date, amount)?;
    // What is left to remind about has changed: the ticker works it out again.
    rules::touch(tx, user, id, stamp)?;
    Ok(posted)
}
