//! Recurring rules of one user: create, read, change, delete, skip an occurrence, and the
//! upcoming view. Plain functions over a connection; `routes` parses the requests.
//!
//! What has happened to an occurrence is never stored on the rule: a posted one is a
//! transaction carrying `recurring_id` + `occurrence_date`, a skipped one is a row of
//! `recurring_skips`. So changing a rule changes only the occurrences that are neither, and
//! the views read those marks for a whole window in one query each, never one per rule.

use std::collections::{HashMap, HashSet};

use jiff::ToSpan;
use jiff::civil::Date;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;
use utoipa::ToSchema;

use super::schedule::{End, Frequency, Schedule};
use crate::budget::catalog::Catalog;
use crate::budget::money::Money;
use crate::budget::transactions::Kind;
use crate::error::{Error, Result};

/// A rule as the client describes it. `Spec::checked` is the only way to trust one: the
/// cross-field rules hold for every `Spec` that reaches the database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Spec {
    pub(crate) kind: Kind,
    pub(crate) category: String,
    pub(crate) label: String,
    pub(crate) amount: Money,
    pub(crate) allocation_type_id: Option<String>,
    pub(crate) frequency: Frequency,
    pub(crate) start_date: Date,
    pub(crate) end_date: Option<Date>,
    pub(crate) occurrences: Option<u32>,
    pub(crate) auto_post: bool,
    pub(crate) remind_days_before: u32,
}

impl Spec {
    /// The rules that span fields. `sent` says which fields this request carried, so that a
    /// PATCH names the field it changed rather than the one already stored.
    pub(crate) fn checked(self, catalog: &Catalog, sent: impl Fn(&str) -> bool) -> Result<Spec> {
        if self.end_date.is_some() && self.occurrences.is_some() {
            let field = if sent("end_date") && !sent("occurrences") {
                "end_date"
            } else {
                "occurrences"
            };
            return Err(Error::validation(
                &["body", field],
                "Give end_date or occurrences, not both",
                "value_error",
            ));
        }
        if let Some(end) = self.end_date
            && end < self.start_date
        {
            let field = if sent("end_date") {
                "end_date"
            } else {
                "start_date"
            };
            return Err(Error::validation(
                &["body", field],
                "end_date must not be before start_date",
                "value_error",
            ));
        }
        if let Some(ty) = &self.allocation_type_id {
            if self.kind != Kind::Expense {
                return Err(Error::Unprocessable {
                    code: "allocation_requires_expense",
                    detail: "Only an expense can be linked to an allocation type".into(),
                });
            }
            if !catalog.has_type(ty) {
                return Err(Error::NotFound {
                    code: "allocation_type_not_found",
                    detail: format!("Allocation type with id '{ty}' not found"),
                });
            }
        }
        Ok(self)
    }

    pub(crate) fn schedule(&self) -> Schedule {
        let end = match (self.end_date, self.occurrences) {
            (Some(d), _) => End::OnOrBefore(d),
            (None, Some(n)) => End::After(n),
            (None, None) => End::Never,
        };
        Schedule {
            start: self.start_date,
            frequency: self.frequency,
            end,
        }
    }
}

/// What a PATCH carries. The nullable fields are `Some(None)` when sent as `null` (cleared).
#[derive(Default)]
pub(crate) struct Changes {
    pub(crate) kind: Option<Kind>,
    pub(crate) category: Option<String>,
    pub(crate) label: Option<String>,
    pub(crate) amount: Option<Money>,
    pub(crate) allocation_type_id: Option<Option<String>>,
    pub(crate) frequency: Option<Frequency>,
    pub(crate) start_date: Option<Date>,
    pub(crate) end_date: Option<Option<Date>>,
    pub(crate) occurrences: Option<Option<u32>>,
    pub(crate) auto_post: Option<bool>,
    pub(crate) remind_days_before: Option<u32>,
}

impl Changes {
    fn sent(&self, field: &str) -> bool {
        match field {
            "end_date" => self.end_date.is_some(),
            "occurrences" => self.occurrences.is_some(),
            _ => false,
        }
    }

    fn apply(self, old: Spec) -> Spec {
        Spec {
            kind: self.kind.unwrap_or(old.kind),
            category: self.category.unwrap_or(old.category),
            label: self.label.unwrap_or(old.label),
            amount: self.amount.unwrap_or(old.amount),
            allocation_type_id: self.allocation_type_id.unwrap_or(old.allocation_type_id),
            frequency: self.frequency.unwrap_or(old.frequency),
            start_date: self.start_date.unwrap_or(old.start_date),
            end_date: self.end_date.unwrap_or(old.end_date),
            occurrences: self.occurrences.unwrap_or(old.occurrences),
            auto_post: self.auto_post.unwrap_or(old.auto_post),
            remind_days_before: self.remind_days_before.unwrap_or(old.remind_days_before),
        }
    }
}

/// A rule as every route answers it.
#[derive(Serialize, ToSchema, Clone, Debug, PartialEq)]
#[schema(as = RecurringRule)]
pub(crate) struct RuleResponse {
    pub(crate) id: String,
    #[serde(rename = "type")]
    #[schema(rename = "type")]
    pub(crate) kind: Kind,
    pub(crate) category: String,
    pub(crate) label: String,
    #[schema(value_type = f64)]
    pub(crate) amount: Money,
    pub(crate) allocation_type_id: Option<String>,
    pub(crate) frequency: Frequency,
    #[schema(format = Date, example = "2025-01-31")]
    pub(crate) start_date: String,
    #[schema(format = Date)]
    pub(crate) end_date: Option<String>,
    pub(crate) occurrences: Option<u32>,
    pub(crate) auto_post: bool,
    pub(crate) remind_days_before: u32,
    /// The earliest occurrence on or after today (local date) that is neither posted nor
    /// skipped; null when there is none.
    #[schema(format = Date)]
    pub(crate) next_date: Option<String>,
    pub(crate) created_at: String,
}

/// A stored rule.
pub(crate) struct Stored {
    pub(crate) id: String,
    pub(crate) spec: Spec,
    pub(crate) created_at: String,
}

impl Stored {
    /// The local date the rule was created on: the ticker posts nothing before it.
    pub(crate) fn created_on(&self, tz: &jiff::tz::TimeZone) -> Result<Date> {
        let t: jiff::Timestamp = self.created_at.parse().map_err(Error::internal)?;
        Ok(t.to_zoned(tz.clone()).date())
    }
}

impl Stored {
    fn answer(self, next: Option<Date>) -> RuleResponse {
        let s = self.spec;
        RuleResponse {
            id: self.id,
            kind: s.kind,
            category: s.category,
            label: s.label,
            amount: s.amount,
            allocation_type_id: s.allocation_type_id,
            frequency: s.frequency,
            start_date: s.start_date.to_string(),
            end_date: s.end_date.map(|d| d.to_string()),
            occurrences: s.occurrences,
            auto_post: s.auto_post,
            remind_days_before: s.remind_days_before,
            next_date: next.map(|d| d.to_string()),
            created_at: self.created_at,
        }
    }
}

const COLUMNS: &str = "id, type, category, label, amount, allocation_type_id, frequency, \
                       start_date, end_date, occurrences, auto_post, remind_days_before, created_at";

fn bad_column(i: usize, what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        i,
        rusqlite::types::Type::Text,
        format!("stored {what} does not parse").into(),
    )
}

fn date_column(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Option<Date>> {
    r.get::<_, Option<String>>(i)?
        .map(|s| s.parse::<Date>().map_err(|_| bad_column(i, "date")))
        .transpose()
}

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Stored> {
    let kind: String = r.get(1)?;
    let frequency: String = r.get(6)?;
    Ok(Stored {
        id: r.get(0)?,
        spec: Spec {
            // The table's CHECK allows these two only.
            kind: if kind == "income" {
                Kind::Income
            } else {
                Kind::Expense
            },
            category: r.get(2)?,
            label: r.get(3)?,
            amount: r.get(4)?,
            allocation_type_id: r.get(5)?,
            frequency: Frequency::parse(&frequency).ok_or_else(|| bad_column(6, "frequency"))?,
            start_date: date_column(r, 7)?.ok_or_else(|| bad_column(7, "start_date"))?,
            end_date: date_column(r, 8)?,
            occurrences: r.get(9)?,
            auto_post: r.get(10)?,
            remind_days_before: r.get(11)?,
        },
        created_at: r.get(12)?,
    })
}

pub(crate) fn not_found() -> Error {
    Error::NotFound {
        code: "recurring_not_found",
        detail: "Recurring transaction not found".into(),
    }
}

pub(crate) fn load(c: &Connection, user: &str, id: &str) -> Result<Stored> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM recurring WHERE id = ?1 AND user_id = ?2"
    ))?
    .query_row(params![id, user], from_row)
    .optional()?
    .ok_or_else(not_found)
}

/// The dates of one rule, or of all the user's rules, that are posted or skipped and fall on
/// or after `from`: what `next_date` must step over.
pub(crate) fn taken_since(
    c: &Connection,
    user: &str,
    rule: Option<&str>,
    from: Date,
) -> Result<HashMap<String, HashSet<Date>>> {
    let mut stmt = c.prepare_cached(&taken_sql(rule.is_some()))?;
    let from = from.to_string();
    let rows = match rule {
        Some(id) => stmt.query_map(params![user, from, id], id_and_date)?,
        None => stmt.query_map(params![user, from], id_and_date)?,
    };
    let mut taken: HashMap<String, HashSet<Date>> = HashMap::new();
    for row in rows {
        let (id, date) = row?;
        taken.entry(id).or_default().insert(date);
    }
    Ok(taken)
}

/// Both halves walk each rule's own index range ((recurring_id, occurrence_date) of the
/// transactions, the skips' primary key) from `?2` on; `?3` narrows to one rule.
fn taken_sql(one_rule: bool) -> String {
    let scope = if one_rule { "AND r.id = ?3" } else { "" };
    format!(
        "SELECT t.recurring_id, t.occurrence_date FROM recurring r
           JOIN transactions t ON t.recurring_id = r.id AND t.occurrence_date >= ?2
          WHERE r.user_id = ?1 AND +t.user_id = ?1 {scope}
         UNION ALL
         SELECT s.recurring_id, s.occurrence_date FROM recurring r
           JOIN recurring_skips s ON s.recurring_id = r.id AND s.occurrence_date >= ?2
          WHERE r.user_id = ?1 {scope}"
    )
}

fn id_and_date(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, Date)> {
    Ok((
        r.get(0)?,
        date_column(r, 1)?.ok_or_else(|| bad_column(1, "date"))?,
    ))
}

/// The first occurrence on or after `today` that is not in `taken`.
pub(crate) fn next_date(s: &Schedule, today: Date, taken: &HashSet<Date>) -> Option<Date> {
    let (first, _) = s.first_on_or_after(today)?;
    (first..)
        .map_while(|n| s.nth(n))
        .find(|d| !taken.contains(d))
}

fn answer_one(c: &Connection, user: &str, rule: Stored, today: Date) -> Result<RuleResponse> {
    let taken = taken_since(c, user, Some(&rule.id), today)?;
    let none = HashSet::new();
    let next = next_date(
        &rule.spec.schedule(),
        today,
        taken.get(&rule.id).unwrap_or(&none),
    );
    Ok(rule.answer(next))
}

pub(crate) fn get(c: &Connection, user: &str, id: &str, today: Date) -> Result<RuleResponse> {
    let rule = load(c, user, id)?;
    answer_one(c, user, rule, today)
}

/// Every rule of the user, by `next_date` (rules with none last), then creation.
pub(crate) fn list(c: &Connection, user: &str, today: Date) -> Result<Vec<RuleResponse>> {
    let rules = user_rules(c, user)?;
    let taken = taken_since(c, user, None, today)?;
    let none = HashSet::new();
    let mut out: Vec<(Option<Date>, RuleResponse)> = rules
        .into_iter()
        .map(|r| {
            let next = next_date(&r.spec.schedule(), today, taken.get(&r.id).unwrap_or(&none));
            (next, r.answer(next))
        })
        .collect();
    out.sort_by(|(a, x), (b, y)| {
        let key = |d: &Option<Date>| (d.is_none(), *d);
        key(a)
            .cmp(&key(b))
            .then_with(|| x.created_at.cmp(&y.created_at))
            .then_with(|| x.id.cmp(&y.id))
    });
    Ok(out.into_iter().map(|(_, r)| r).collect())
}

fn user_rules(c: &Connection, user: &str) -> Result<Vec<Stored>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM recurring WHERE user_id = ?1"
    ))?;
    let rules = stmt
        .query_map([user], from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rules)
}

/// The write time of a rule. `next_action` becomes today: the ticker looks at the rule again
/// at its next tick and works out the real date itself.
pub(crate) struct Stamp<'a> {
    pub(crate) today: Date,
    pub(crate) now: &'a str,
}

pub(crate) fn create(
    tx: &Transaction<'_>,
    user: &str,
    spec: &Spec,
    at: &Stamp<'_>,
) -> Result<RuleResponse> {
    let id = crate::random::uuid_v7(jiff::Timestamp::now().as_millisecond().max(0) as u64);
    store(
        tx,
        "INSERT INTO recurring (id, user_id, type, category, label, amount, allocation_type_id,
             frequency, start_date, end_date, occurrences, auto_post, remind_days_before,
             next_action, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?15)",
        &id,
        user,
        spec,
        at,
    )?;
    get(tx, user, &id, at.today)
}

/// Runs `sql` (an insert or an update of one rule) with the rule's columns as ?1..?15: id,
/// user, the spec's fields in table order, `next_action` (today: the ticker looks again) and
/// the time of the write.
fn store(
    tx: &Transaction<'_>,
    sql: &str,
    id: &str,
    user: &str,
    spec: &Spec,
    at: &Stamp<'_>,
) -> Result<()> {
    tx.prepare_cached(sql)?.execute(params![
        id,
        user,
        spec.kind.as_str(),
        spec.category,
        spec.label,
        spec.amount,
        spec.allocation_type_id,
        spec.frequency.as_str(),
        spec.start_date.to_string(),
        spec.end_date.map(|d| d.to_string()),
        spec.occurrences,
        spec.auto_post,
        spec.remind_days_before,
        at.today.to_string(),
        at.now,
    ])?;
    Ok(())
}

/// Changes a rule; the merged result is checked as a new one would be. Posted transactions
/// are never touched, and skips stay where they are.
pub(crate) fn update(
    tx: &Transaction<'_>,
    catalog: &Catalog,
    user: &str,
    id: &str,
    changes: Changes,
    at: &Stamp<'_>,
) -> Result<RuleResponse> {
    let old = load(tx, user, id)?;
    let sent: HashSet<&str> = ["end_date", "occurrences"]
        .into_iter()
        .filter(|f| changes.sent(f))
        .collect();
    let spec = changes
        .apply(old.spec)
        .checked(catalog, |f| sent.contains(f))?;
    store(
        tx,
        "UPDATE recurring SET type = ?3, category = ?4, label = ?5, amount = ?6,
             allocation_type_id = ?7, frequency = ?8, start_date = ?9, end_date = ?10,
             occurrences = ?11, auto_post = ?12, remind_days_before = ?13, next_action = ?14,
             updated_at = ?15
         WHERE id = ?1 AND user_id = ?2",
        id,
        user,
        &spec,
        at,
    )?;
    get(tx, user, id, at.today)
}

/// Deletes a rule and its skips (cascade); the transactions it posted stay.
pub(crate) fn delete(tx: &Transaction<'_>, user: &str, id: &str) -> Result<()> {
    let n = tx
        .prepare_cached("DELETE FROM recurring WHERE id = ?1 AND user_id = ?2")?
        .execute(params![id, user])?;
    if n == 0 {
        return Err(not_found());
    }
    Ok(())
}

pub(crate) fn already_posted() -> Error {
    Error::Conflict {
        code: "already_posted",
        detail: "This occurrence is already posted".into(),
    }
}

pub(crate) fn not_an_occurrence(date: Date) -> Error {
    Error::Unprocessable {
        code: "not_an_occurrence",
        detail: format!("{date} is not an occurrence of this rule"),
    }
}

/// The id of the transaction that posted this occurrence, if any.
pub(crate) fn posted(c: &Connection, rule: &str, date: Date) -> Result<Option<String>> {
    Ok(c.prepare_cached(
        "SELECT id FROM transactions WHERE recurring_id = ?1 AND occurrence_date = ?2",
    )?
    .query_row(params![rule, date.to_string()], |r| r.get(0))
    .optional()?)
}

/// Skips one occurrence; skipping it again changes nothing and answers the same.
pub(crate) fn skip(
    tx: &Transaction<'_>,
    user: &str,
    id: &str,
    date: Date,
    at: &Stamp<'_>,
) -> Result<()> {
    let rule = load(tx, user, id)?;
    if posted(tx, id, date)?.is_some() {
        return Err(already_posted());
    }
    if !rule.spec.schedule().is_occurrence(date) {
        return Err(not_an_occurrence(date));
    }
    tx.prepare_cached(
        "INSERT INTO recurring_skips (recurring_id, occurrence_date, user_id, created_at)
         VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
    )?
    .execute(params![id, date.to_string(), user, at.now])?;
    touch(tx, user, id, at)
}

/// After a write that changes what is left to do for a rule (a skip, a confirm): the ticker
/// looks at it again at its next tick.
pub(crate) fn touch(tx: &Transaction<'_>, user: &str, id: &str, at: &Stamp<'_>) -> Result<()> {
    tx.prepare_cached(
        "UPDATE recurring SET next_action = ?3, updated_at = ?4 WHERE id = ?1 AND user_id = ?2",
    )?
    .execute(params![id, user, at.today.to_string(), at.now])?;
    Ok(())
}

/// Whether this occurrence is skipped.
pub(crate) fn is_skipped(c: &Connection, rule: &str, date: Date) -> Result<bool> {
    Ok(c.prepare_cached(
        "SELECT 1 FROM recurring_skips WHERE recurring_id = ?1 AND occurrence_date = ?2",
    )?
    .query_row(params![rule, date.to_string()], |_| Ok(()))
    .optional()?
    .is_some())
}

/// Drops a skip mark (a skipped occurrence that gets confirmed).
pub(crate) fn unskip(tx: &Transaction<'_>, rule: &str, date: Date) -> Result<()> {
    tx.prepare_cached(
        "DELETE FROM recurring_skips WHERE recurring_id = ?1 AND occurrence_date = ?2",
    )?
    .execute(params![rule, date.to_string()])?;
    Ok(())
}

/// The rules the ticker has something to do for on or before `today` (the partial index on
/// `next_action`), as (user, rule id).
pub(crate) fn due(c: &Connection, today: Date) -> Result<Vec<(String, String)>> {
    let rows = c
        .prepare_cached(DUE)?
        .query_map([today.to_string()], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

const DUE: &str = "SELECT user_id, id FROM recurring
     WHERE next_action IS NOT NULL AND next_action <= ?1 ORDER BY next_action, id";

/// Stores when the ticker next has something to do for a rule (`None`: never again, until a
/// write sets it to today).
pub(crate) fn set_next_action(tx: &Transaction<'_>, id: &str, next: Option<Date>) -> Result<()> {
    tx.prepare_cached("UPDATE recurring SET next_action = ?2 WHERE id = ?1")?
        .execute(params![id, next.map(|d| d.to_string())])?;
    Ok(())
}

#[derive(Serialize, ToSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Status {
    Upcoming,
    Due,
    Overdue,
    Posted,
    Skipped,
}

/// One occurrence in the upcoming view. A posted one shows its transaction as it is now
/// (it may have been edited since); the others show the rule.
#[derive(Serialize, ToSchema, Clone, Debug, PartialEq)]
#[schema(as = UpcomingOccurrence)]
pub(crate) struct Item {
    pub(crate) recurring_id: String,
    #[schema(format = Date)]
    pub(crate) date: String,
    #[serde(rename = "type")]
    #[schema(rename = "type")]
    pub(crate) kind: Kind,
    pub(crate) category: String,
    pub(crate) label: String,
    #[schema(value_type = f64)]
    pub(crate) amount: Money,
    pub(crate) status: Status,
    pub(crate) transaction_id: Option<String>,
}

/// How far back the upcoming view looks, in days before today.
pub(crate) const LOOK_BACK_DAYS: i32 = 31;

/// A posted occurrence: its transaction's id and figures.
struct Posted {
    transaction_id: String,
    kind: Kind,
    category: String,
    label: String,
    amount: Money,
}

/// The status of an occurrence that is neither posted nor skipped, by its date.
pub(crate) fn due_status(date: Date, today: Date) -> Status {
    match date.cmp(&today) {
        std::cmp::Ordering::Less => Status::Overdue,
        std::cmp::Ordering::Equal => Status::Due,
        std::cmp::Ordering::Greater => Status::Upcoming,
    }
}

/// The user's posted occurrences in `?2..=?3`: per rule, a range of the transactions'
/// (recurring_id, occurrence_date) index. The `+` keeps SQLite from walking all of the user's
/// transactions by their user_id index instead (it did, without it).
const POSTED_IN_WINDOW: &str =
    "SELECT t.recurring_id, t.occurrence_date, t.id, t.type, t.category, t.label, t.amount
       FROM recurring r
       JOIN transactions t ON t.recurring_id = r.id AND t.occurrence_date BETWEEN ?2 AND ?3
      WHERE r.user_id = ?1 AND +t.user_id = ?1";

/// The user's skips in `?2..=?3`: per rule, a range of the skips' primary key.
const SKIPPED_IN_WINDOW: &str = "SELECT s.recurring_id, s.occurrence_date FROM recurring r
       JOIN recurring_skips s ON s.recurring_id = r.id AND s.occurrence_date BETWEEN ?2 AND ?3
      WHERE r.user_id = ?1";

/// Every occurrence of every rule of the user from `LOOK_BACK_DAYS` before `today` to `days`
/// after it, both included, by date then rule id. Three queries, whatever the number of rules.
pub(crate) fn upcoming(c: &Connection, user: &str, today: Date, days: u32) -> Result<Vec<Item>> {
    let from = today
        .checked_sub(LOOK_BACK_DAYS.days())
        .map_err(Error::internal)?;
    let to = today
        .checked_add(i64::from(days).days())
        .map_err(Error::internal)?;
    let (from_s, to_s) = (from.to_string(), to.to_string());
    let rules = user_rules(c, user)?;

    let mut posted: HashMap<(String, Date), Posted> = HashMap::new();
    let mut stmt = c.prepare_cached(POSTED_IN_WINDOW)?;
    let rows = stmt.query_map(params![user, from_s, to_s], |r| {
        let (rule, date) = id_and_date(r)?;
        let kind: String = r.get(3)?;
        Ok((
            (rule, date),
            Posted {
                transaction_id: r.get(2)?,
                kind: if kind == "income" {
                    Kind::Income
                } else {
                    Kind::Expense
                },
                category: r.get(4)?,
                label: r.get(5)?,
                amount: r.get(6)?,
            },
        ))
    })?;
    for row in rows {
        let (key, p) = row?;
        posted.insert(key, p);
    }

    let mut skipped: HashSet<(String, Date)> = HashSet::new();
    let mut stmt = c.prepare_cached(SKIPPED_IN_WINDOW)?;
    for row in stmt.query_map(params![user, from_s, to_s], id_and_date)? {
        skipped.insert(row?);
    }

    let mut items = Vec::new();
    for rule in &rules {
        let schedule = rule.spec.schedule();
        let mut dates: Vec<Date> = schedule.between(from, to).map(|(_, d)| d).collect();
        // A posted occurrence stays in the view even when a later change of the rule moved
        // its dates away from it.
        dates.extend(
            posted
                .keys()
                .filter(|(id, d)| *id == rule.id && !schedule.is_occurrence(*d))
                .map(|(_, d)| *d),
        );
        for date in dates {
            let key = (rule.id.clone(), date);
            let item = match posted.get(&key) {
                Some(p) => Item {
                    recurring_id: rule.id.clone(),
                    date: date.to_string(),
                    kind: p.kind,
                    category: p.category.clone(),
                    label: p.label.clone(),
                    amount: p.amount,
                    status: Status::Posted,
                    transaction_id: Some(p.transaction_id.clone()),
                },
                None => Item {
                    recurring_id: rule.id.clone(),
                    date: date.to_string(),
                    kind: rule.spec.kind,
                    category: rule.spec.category.clone(),
                    label: rule.spec.label.clone(),
                    amount: rule.spec.amount,
                    status: if skipped.contains(&key) {
                        Status::Skipped
                    } else {
                        due_status(date, today)
                    },
                    transaction_id: None,
                },
            };
            items.push(item);
        }
    }
    // `YYYY-MM-DD` orders as the dates do.
    items.sort_by(|a, b| {
        a.date
            .cmp(&b.date)
            .then_with(|| a.recurring_id.cmp(&b.recurring_id))
    });
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn monthly_from(start: Date) -> Schedule {
        Schedule {
            start,
            frequency: Frequency::Monthly,
            end: End::Never,
        }
    }

    #[test]
    fn next_date_steps_over_taken_occurrences() {
        let s = monthly_from(date(2025, 1, 31));
        let none = HashSet::new();
        assert_eq!(
            next_date(&s, date(2025, 2, 1), &none),
            Some(date(2025, 2, 28))
        );
        assert_eq!(
            next_date(&s, date(2025, 2, 28), &none),
            Some(date(2025, 2, 28)),
            "today itself counts"
        );
        let taken: HashSet<Date> = [date(2025, 2, 28), date(2025, 3, 31)].into();
        assert_eq!(
            next_date(&s, date(2025, 2, 1), &taken),
            Some(date(2025, 4, 30))
        );
        let once = Schedule {
            end: End::After(2),
            ..s
        };
        assert_eq!(next_date(&once, date(2025, 2, 1), &taken), None);
        assert_eq!(next_date(&once, date(2025, 3, 1), &none), None);
    }

    #[test]
    fn status_follows_the_date() {
        let today = date(2025, 3, 15);
        assert_eq!(due_status(date(2025, 3, 14), today), Status::Overdue);
        assert_eq!(due_status(today, today), Status::Due);
        assert_eq!(due_status(date(2025, 3, 16), today), Status::Upcoming);
    }

    fn spec() -> Spec {
        Spec {
            kind: Kind::Expense,
            category: "bills".into(),
            label: "Rent".into(),
            amount: crate::budget::money::testing::Money(100_000),
            allocation_type_id: None,
            frequency: Frequency::Monthly,
            start_date: date(2025, 1, 31),
            end_date: None,
            occurrences: None,
            auto_post: false,
            remind_days_before: 2,
        }
    }

    /// The window's queries walk indexes: the user's rules, then per rule a range of its
    /// posted occurrences and of its skips; never a scan of all transactions or skips.
    #[test]
    fn the_window_queries_use_indexes() {
        let c = crate::budget::testing::memory();
        let (all, one) = (taken_sql(false), taken_sql(true));
        for sql in [POSTED_IN_WINDOW, SKIPPED_IN_WINDOW, &all, &one, DUE] {
            let mut stmt = c
                .prepare(
                    &format!("EXPLAIN QUERY PLAN {sql}")
                        .replace("?2", "'2025-01-01'")
                        .replace("?3", "'x'")
                        .replace("?1", "'u'"),
                )
                .expect("plan");
            let plan: Vec<String> = stmt
                .query_map([], |r| r.get::<_, String>(3))
                .expect("rows")
                .collect::<rusqlite::Result<_>>()
                .expect("plan rows");
            let steps = plan
                .iter()
                .filter(|l| l.starts_with("SEARCH") || l.starts_with("SCAN"));
            for step in steps {
                assert!(
                    step.contains("idx_recurring_user")
                        || step.contains("idx_transactions_occurrence")
                        || step.contains("sqlite_autoindex_recurring_skips")
                        || step.contains("sqlite_autoindex_recurring_1")
                        || step.contains("idx_recurring_next_action"),
                    "{sql}: {plan:?}"
                );
            }
        }
    }

    #[test]
    fn the_view_marks_skips_and_keeps_the_rule_figures() {
        let mut c = crate::budget::testing::memory();
        let user = crate::budget::testing::user(&c, "r@example.com");
        let at = Stamp {
            today: date(2025, 3, 15),
            now: "2025-03-15T10:00:00Z",
        };
        let rule = crate::budget::testing::write(&mut c, |tx| {
            let r = create(tx, &user, &spec(), &at).expect("create");
            skip(tx, &user, &r.id, date(2025, 2, 28), &at).expect("skip");
            r
        });
        assert_eq!(rule.next_date.as_deref(), Some("2025-03-31"));
        let items = upcoming(&c, &user, at.today, 30).expect("upcoming");
        let got: Vec<(String, Status)> = items.iter().map(|i| (i.date.clone(), i.status)).collect();
        assert_eq!(
            got,
            [
                ("2025-02-28".to_string(), Status::Skipped),
                ("2025-03-31".to_string(), Status::Upcoming)
            ]
        );
        assert!(
            items
                .iter()
                .all(|i| i.label == "Rent" && i.transaction_id.is_none())
        );
        let other = crate::budget::testing::user(&c, "o@example.com");
        assert!(
            upcoming(&c, &other, at.today, 30)
                .expect("other")
                .is_empty()
        );
    }

    fn field_of(e: Error) -> String {
        match e {
            Error::Validation(list) => list[0].loc[1].as_str().unwrap_or_default().to_string(),
            other => other.code().to_string(),
        }
    }

    #[test]
    fn cross_field_rules_name_the_field_sent() {
        let catalog = Catalog::default();
        let all = |_: &str| true;
        let both = Spec {
            end_date: Some(date(2025, 6, 30)),
            occurrences: Some(3),
            ..spec()
        };
        let e = both.clone().checked(&catalog, all).err().map(field_of);
        assert_eq!(e.as_deref(), Some("occurrences"));
        let e = both
            .checked(&catalog, |f| f == "end_date")
            .err()
            .map(field_of);
        assert_eq!(e.as_deref(), Some("end_date"));
        let early = Spec {
            end_date: Some(date(2025, 1, 30)),
            ..spec()
        };
        let e = early.clone().checked(&catalog, all).err().map(field_of);
        assert_eq!(e.as_deref(), Some("end_date"));
        let e = early.checked(&catalog, |_| false).err().map(field_of);
        assert_eq!(e.as_deref(), Some("start_date"));
        let same_day = Spec {
            end_date: Some(date(2025, 1, 31)),
            ..spec()
        };
        assert!(same_day.checked(&catalog, all).is_ok());
        let linked_income = Spec {
            kind: Kind::Income,
            allocation_type_id: Some("x".into()),
            ..spec()
        };
        let e = linked_income.checked(&catalog, all).err().map(field_of);
        assert_eq!(e.as_deref(), Some("allocation_requires_expense"));
        let unknown = Spec {
            allocation_type_id: Some("x".into()),
            ..spec()
        };
        let e = unknown.checked(&catalog, all).err().map(field_of);
        assert_eq!(e.as_deref(), Some("allocation_type_not_found"));
    }
}
