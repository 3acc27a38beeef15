//! Income and expense transactions. Every write moves the month's `monthly_budgets` totals in
//! the same database transaction, so the totals always equal what the rows add up to.

use rusqlite::types::Value as Sql;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::catalog::Catalog;
use super::dates::{self, DayRange};
use super::money::{self, Money};
use super::period::Period;
use super::spending::{self, Spend};
use super::versions::{self, IfMatch};
use crate::error::{Error, Result};
use crate::input::{FromJson, Invalid};
use crate::notify::hub::Event;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Kind {
    Income,
    Expense,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Income => "income",
            Kind::Expense => "expense",
        }
    }

    fn parse(s: &str) -> Option<Kind> {
        match s {
            "income" => Some(Kind::Income),
            "expense" => Some(Kind::Expense),
            _ => None,
        }
    }
}

impl FromJson for Kind {
    fn from_json(v: &Value) -> Result<Self, Invalid> {
        v.as_str()
            .and_then(Kind::parse)
            .ok_or_else(|| Invalid::new("Input should be 'income' or 'expense'", "enum"))
    }
}

/// `transaction_date` as sent. With `Z` or an offset it is that instant; without one it is
/// the user's wall clock in `APP_TIMEZONE` (a date alone is local midnight), resolved by
/// `instant` once the zone is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TxDate {
    Instant(jiff::Timestamp),
    Local(jiff::civil::DateTime),
}

impl FromJson for TxDate {
    fn from_json(v: &Value) -> Result<Self, Invalid> {
        let Some(s) = v.as_str().map(str::trim) else {
            return Err(Invalid::new(
                "Input should be a valid date or datetime string",
                "datetime_type",
            ));
        };
        let bad = || {
            Invalid::new(
                "Input should be a valid ISO 8601 date or datetime",
                "datetime_parsing",
            )
        };
        // Whole seconds: the contract's timestamps carry no fractions.
        let (d, year) = if s.len() == 10 {
            let d: jiff::civil::Date = s.parse().map_err(|_| bad())?;
            (
                TxDate::Local(d.to_datetime(jiff::civil::Time::midnight())),
                d.year(),
            )
        } else if let Ok(t) = s.parse::<jiff::Timestamp>() {
            let t = jiff::Timestamp::from_second(t.as_second()).map_err(|_| bad())?;
            (
                TxDate::Instant(t),
                t.to_zoned(jiff::tz::TimeZone::UTC).year(),
            )
        } else {
            let dt: jiff::civil::DateTime = s.parse().map_err(|_| bad())?;
            let dt = dt.with().subsec_nanosecond(0).build().map_err(|_| bad())?;
            (TxDate::Local(dt), dt.year())
        };
        if !dates::YEARS.contains(&year) {
            return Err(Invalid::new(
                "Date must be between 2020 and 2100",
                "value_error",
            ));
        }
        Ok(d)
    }
}

impl TxDate {
    /// The instant this date names, a local one read in `tz`.
    pub(crate) fn instant(self, tz: &jiff::tz::TimeZone) -> Result<jiff::Timestamp> {
        match self {
            TxDate::Instant(t) => Ok(t),
            TxDate::Local(dt) => dates::local_instant(tz, dt),
        }
    }
}

#[derive(Serialize, ToSchema, Clone, Debug)]
pub(crate) struct TransactionResponse {
    pub(crate) id: String,
    #[serde(rename = "type")]
    #[schema(rename = "type")]
    pub(crate) kind: Kind,
    pub(crate) category: String,
    #[schema(value_type = f64)]
    pub(crate) amount: Money,
    pub(crate) label: String,
    #[schema(example = "2025-10-18T00:00:00Z")]
    pub(crate) transaction_date: String,
    pub(crate) month: u32,
    pub(crate) year: i32,
    pub(crate) created_at: String,
    /// The allocation type this expense counts against (its `spent_amount`); `null` when
    /// unlinked.
    #[schema(format = "uuid")]
    pub(crate) allocation_type_id: Option<String>,
    /// The recurring rule that posted this transaction (`/recurring/{id}/confirm` or the
    /// server's auto-post); `null` for an ordinary one. Kept when the rule is deleted.
    #[schema(required = true)]
    pub(crate) recurring_id: Option<String>,
    /// The rule's occurrence (a local date) this transaction posted; `null` for an ordinary one.
    #[schema(format = Date, required = true)]
    pub(crate) occurrence_date: Option<String>,
    /// Grows with every change of the transaction (`sync`'s triggers keep it).
    pub(crate) version: i64,
}

/// The occurrence of a recurring rule a new transaction posts. The unique index on
/// (`recurring_id`, `occurrence_date`) refuses a second one.
pub(crate) struct Occurrence {
    pub(crate) recurring_id: String,
    pub(crate) date: jiff::civil::Date,
}

pub(crate) struct NewTransaction {
    pub(crate) kind: Kind,
    pub(crate) category: String,
    pub(crate) amount: Money,
    pub(crate) label: String,
    pub(crate) date: TxDate,
    pub(crate) allocation_type_id: Option<String>,
    /// Set when a recurring rule posts it.
    pub(crate) occurrence: Option<Occurrence>,
}

/// A write's result: the transaction as stored (absent after a delete), and the
/// `budget_alert`s to publish once the write has committed.
pub(crate) struct Written<T> {
    pub(crate) value: T,
    pub(crate) alerts: Vec<Event>,
}

/// The fields a PATCH may change.
#[derive(Default)]
pub(crate) struct Changes {
    pub(crate) kind: Option<Kind>,
    pub(crate) category: Option<String>,
    pub(crate) amount: Option<Money>,
    pub(crate) label: Option<String>,
    pub(crate) date: Option<TxDate>,
    /// `Some(None)`: unlink (`null` sent); `None`: keep the link as it is.
    pub(crate) allocation_type_id: Option<Option<String>>,
    /// The versions the client's `If-Match` names; `None`: the last write wins.
    pub(crate) expected: Option<IfMatch>,
}

pub(crate) const COLUMNS: &str =
    "id, type, category, amount, label, transaction_date, month, year, created_at,
     allocation_type_id, recurring_id, occurrence_date, version";

pub(crate) fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TransactionResponse> {
    let kind: String = r.get(1)?;
    Ok(TransactionResponse {
        id: r.get(0)?,
        kind: Kind::parse(&kind).unwrap_or(Kind::Expense),
        category: r.get(2)?,
        amount: r.get(3)?,
        label: r.get(4)?,
        transaction_date: r.get(5)?,
        month: r.get(6)?,
        year: r.get(7)?,
        created_at: r.get(8)?,
        allocation_type_id: r.get(9)?,
        recurring_id: r.get(10)?,
        occurrence_date: r.get(11)?,
        version: r.get(12)?,
    })
}

/// Adds `amount` (may be negative) and `count` to a month's totals.
fn move_totals(
    tx: &Transaction<'_>,
    user: &str,
    p: Period,
    kind: Kind,
    amount: Money,
    count: i64,
    now: &str,
) -> Result<()> {
    let (income, expense) = match kind {
        Kind::Income => (amount, Money::ZERO),
        Kind::Expense => (Money::ZERO, amount),
    };
    if count < 0 {
        // Taking out: the month's row exists (the transaction was counted in it), and an
        // upsert would check its CHECK (totals ≥ 0) against the negative delta itself.
        let n = tx.prepare_cached("UPDATE monthly_budgets SET total_income = total_income + ?4, total_expense = total_expense + ?5,
                 transaction_count = transaction_count + ?6, updated_at = ?7
             WHERE user_id = ?1 AND year = ?2 AND month = ?3")?.execute(params![user, p.year, p.month, income, expense, count, now],
        )?;
        if n != 1 {
            return Err(Error::internal(
                "monthly totals missing for a counted transaction",
            ));
        }
        return Ok(());
    }
    tx.prepare_cached("INSERT INTO monthly_budgets (user_id, year, month, total_income, total_expense, transaction_count, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT(user_id, year, month) DO UPDATE SET
             total_income = total_income + excluded.total_income,
             total_expense = total_expense + excluded.total_expense,
             transaction_count = transaction_count + excluded.transaction_count,
             updated_at = excluded.updated_at")?.execute(params![user, p.year, p.month, income, expense, count, now],
    )?;
    Ok(())
}

pub(crate) fn get(c: &Connection, user: &str, id: &str) -> Result<Option<TransactionResponse>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM transactions WHERE id = ?1 AND user_id = ?2"
    ))?
    .query_row(params![id, user], from_row)
    .optional()?)
}

pub(crate) fn not_found() -> Error {
    Error::NotFound {
        code: "transaction_not_found",
        detail: "Transaction not found".into(),
    }
}

pub(crate) fn create(
    tx: &Transaction<'_>,
    catalog: &Catalog,
    tz: &jiff::tz::TimeZone,
    user: &str,
    t: &NewTransaction,
    now: &str,
) -> Result<Written<TransactionResponse>> {
    // Time-ordered (the real clock, not the test clock: ids are opaque, only their order
    // in the index matters).
    let id = crate::random::uuid_v7(jiff::Timestamp::now().as_millisecond().max(0) as u64);
    insert(tx, catalog, tz, user, &id, t, now)
}

/// A transaction id made by the client (an offline device), any UUID version. Only the
/// hyphenated form is taken, in either case; it is kept in lowercase, as the server's are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ClientId(String);

impl FromJson for ClientId {
    fn from_json(v: &Value) -> Result<Self, Invalid> {
        let bad = || {
            Invalid::new(
                "Input should be a UUID (8-4-4-4-12 hexadecimal digits)",
                "uuid_parsing",
            )
        };
        let s = v.as_str().ok_or_else(bad)?;
        // `Uuid::try_parse` also takes the simple, braced and URN forms: the length keeps
        // the one form the contract's ids have.
        if s.len() != 36 {
            return Err(bad());
        }
        let id = uuid::Uuid::try_parse(s).map_err(|_| bad())?;
        Ok(ClientId(id.hyphenated().to_string()))
    }
}

/// What `POST /transactions` with a client-made id did.
pub(crate) enum Posted {
    /// A new row (201).
    Created(Written<TransactionResponse>),
    /// The id was this user's already, with the same content: a retry, answered with the
    /// stored row (200) and nothing written.
    Replayed(TransactionResponse),
}

fn id_conflict() -> Error {
    Error::Conflict {
        code: "id_conflict",
        detail: "This transaction id is already taken by another transaction".into(),
    }
}

/// `create` under the client's id. The same id with the same content is a retry of the
/// first POST; with other content, someone else's id, or the id of a deleted transaction it
/// is a 409 that says nothing about the row it met.
pub(crate) fn create_with_id(
    tx: &Transaction<'_>,
    catalog: &Catalog,
    tz: &jiff::tz::TimeZone,
    user: &str,
    id: &ClientId,
    t: &NewTransaction,
    now: &str,
) -> Result<Posted> {
    let owner: Option<String> = tx
        .prepare_cached("SELECT user_id FROM transactions WHERE id = ?1")?
        .query_row([&id.0], |r| r.get(0))
        .optional()?;
    match owner {
        Some(o) if o != user => return Err(id_conflict()),
        Some(_) => {
            let stored = get(tx, user, &id.0)?.ok_or_else(not_found)?;
            return if same_content(tz, &stored, t)? {
                Ok(Posted::Replayed(stored))
            } else {
                Err(id_conflict())
            };
        }
        None => {}
    }
    // Deleted ids stay taken while their tombstone is kept (90 days), so a late retry of a
    // create cannot bring back what another device deleted (one seek: sql/0011).
    let deleted = tx
        .prepare_cached(
            "SELECT 1 FROM sync_tombstones
             WHERE user_id = ?1 AND kind = 'transactions' AND row_id = ?2",
        )?
        .query_row(params![user, id.0], |_| Ok(()))
        .optional()?
        .is_some();
    if deleted {
        return Err(id_conflict());
    }
    insert(tx, catalog, tz, user, &id.0, t, now).map(Posted::Created)
}

/// Whether `t` says what `stored` says, compared as stored: money as amounts, the date as
/// its instant, the link; an ordinary POST never posts a rule's occurrence.
fn same_content(
    tz: &jiff::tz::TimeZone,
    stored: &TransactionResponse,
    t: &NewTransaction,
) -> Result<bool> {
    let date = crate::clock::iso(t.date.instant(tz)?);
    Ok(stored.kind == t.kind
        && stored.category == t.category
        && stored.amount == t.amount
        && stored.label == t.label
        && stored.transaction_date == date
        && stored.allocation_type_id == t.allocation_type_id
        && stored.recurring_id.is_none()
        && t.occurrence.is_none())
}

fn insert(
    tx: &Transaction<'_>,
    catalog: &Catalog,
    tz: &jiff::tz::TimeZone,
    user: &str,
    id: &str,
    t: &NewTransaction,
    now: &str,
) -> Result<Written<TransactionResponse>> {
    let link = t.allocation_type_id.as_deref();
    spending::check_link(catalog, t.kind, link)?;
    let at = t.date.instant(tz)?;
    let p = period_in_range(tz, at)?;
    let date = crate::clock::iso(at);
    let moves = spending::moves(None, Spend::of(t.kind, link, p, t.amount))?;
    let watches = spending::watch(tx, catalog, user, &moves)?;
    let (rule, occurrence) = match &t.occurrence {
        Some(o) => (Some(o.recurring_id.as_str()), Some(o.date.to_string())),
        None => (None, None),
    };
    let inserted = tx.prepare_cached("INSERT INTO transactions (id, user_id, type, category, amount, label, transaction_date, year, month,
                                   created_at, updated_at, allocation_type_id, recurring_id, occurrence_date)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11, ?12, ?13)")?.execute(params![id, user, t.kind.as_str(), t.category, t.amount, t.label, date, p.year, p.month, now, link, rule, occurrence],
    );
    match inserted {
        Ok(_) => {}
        // Only an occurrence can break a unique constraint here (a client's id was looked
        // up first, in this transaction): it is posted already, by a concurrent confirm or
        // the ticker.
        Err(e) if t.occurrence.is_some() && is_unique_violation(&e) => {
            return Err(crate::recurring::rules::already_posted());
        }
        Err(e) => return Err(e.into()),
    }
    move_totals(tx, user, p, t.kind, t.amount, 1, now)?;
    spending::apply(tx, user, &moves, now)?;
    let alerts = spending::check(tx, user, watches, now)?;
    let value =
        get(tx, user, id)?.ok_or_else(|| Error::internal("inserted transaction vanished"))?;
    Ok(Written { value, alerts })
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
}

/// The date's month in `APP_TIMEZONE`, refused when its year is outside 2020..2100: the year
/// as sent is checked on input, but a zone can move an instant across a year end
/// (2100-12-31T20:00Z is 2101 in Kolkata), and no route could ever read such a month back.
fn period_in_range(tz: &jiff::tz::TimeZone, t: jiff::Timestamp) -> Result<Period> {
    let p = Period::containing(tz, t);
    Period::new(p.year, p.month).ok_or_else(|| {
        Error::validation(
            &["body", "transaction_date"],
            "Date must be between 2020 and 2100 in the app's time zone",
            "value_error",
        )
    })
}

pub(crate) fn update(
    tx: &Transaction<'_>,
    catalog: &Catalog,
    tz: &jiff::tz::TimeZone,
    user: &str,
    id: &str,
    ch: &Changes,
    now: &str,
) -> Result<Written<TransactionResponse>> {
    let old = get(tx, user, id)?.ok_or_else(not_found)?;
    // Checked in the writing transaction: no other write can come between.
    versions::check(ch.expected.as_ref(), &old)?;
    let kind = ch.kind.unwrap_or(old.kind);
    let link = match &ch.allocation_type_id {
        Some(new) => new.as_deref(),
        None => old.allocation_type_id.as_deref(),
    };
    // Also refuses making a linked expense an income while it stays linked.
    spending::check_link(catalog, kind, link)?;
    let amount = ch.amount.unwrap_or(old.amount);
    let category = ch.category.clone().unwrap_or_else(|| old.category.clone());
    let label = ch.label.clone().unwrap_or_else(|| old.label.clone());
    let (date, p) = match ch.date {
        Some(d) => {
            let at = d.instant(tz)?;
            (crate::clock::iso(at), period_in_range(tz, at)?)
        }
        None => (
            old.transaction_date.clone(),
            Period {
                year: old.year,
                month: old.month,
            },
        ),
    };
    let moves = spending::moves(Spend::stored(&old), Spend::of(kind, link, p, amount))?;
    let watches = spending::watch(tx, catalog, user, &moves)?;
    // Take the old amount out of its month, put the new one into its (maybe other) month.
    take_out(tx, user, &old, now)?;
    move_totals(tx, user, p, kind, amount, 1, now)?;
    spending::apply(tx, user, &moves, now)?;
    tx.prepare_cached("UPDATE transactions SET type = ?3, category = ?4, amount = ?5, label = ?6, transaction_date = ?7,
             year = ?8, month = ?9, updated_at = ?10, allocation_type_id = ?11
         WHERE id = ?1 AND user_id = ?2")?.execute(params![id, user, kind.as_str(), category, amount, label, date, p.year, p.month, now, link],
    )?;
    let alerts = spending::check(tx, user, watches, now)?;
    let value = get(tx, user, id)?.ok_or_else(not_found)?;
    Ok(Written { value, alerts })
}

/// Deleting can only lower a category's spending, so it never alerts.
pub(crate) fn delete(
    tx: &Transaction<'_>,
    user: &str,
    id: &str,
    expected: Option<&IfMatch>,
    now: &str,
) -> Result<()> {
    let old = get(tx, user, id)?.ok_or_else(not_found)?;
    versions::check(expected, &old)?;
    tx.prepare_cached("DELETE FROM transactions WHERE id = ?1 AND user_id = ?2")?
        .execute(params![id, user])?;
    take_out(tx, user, &old, now)?;
    spending::apply(tx, user, &spending::moves(Spend::stored(&old), None)?, now)
}

/// Removes a stored transaction's amount and count from its month's totals.
fn take_out(tx: &Transaction<'_>, user: &str, old: &TransactionResponse, now: &str) -> Result<()> {
    let p = Period {
        year: old.year,
        month: old.month,
    };
    let amount = old.amount.checked_neg().ok_or_else(money::overflow)?;
    move_totals(tx, user, p, old.kind, amount, -1, now)
}

/// Which transactions a list covers: one month (by its stored `month`/`year`), or whole local
/// days (by the `transaction_date` instant).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Window {
    Month(Period),
    Days(DayRange),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Filter {
    pub(crate) window: Window,
    pub(crate) kind: Option<Kind>,
    pub(crate) category: Option<String>,
    /// Only the expenses linked to this type.
    pub(crate) allocation_type_id: Option<String>,
    pub(crate) limit: u32,
    pub(crate) offset: u32,
}

/// Newest `transaction_date` first.
pub(crate) fn list(c: &Connection, user: &str, f: &Filter) -> Result<Vec<TransactionResponse>> {
    // A window is two bounds: year/month (an index prefix), or a transaction_date range, whose
    // fixed-width `...Z` text orders as the instants do.
    let (column_a, column_b, a, b) = match f.window {
        Window::Month(p) => (
            "year = ?2",
            "month = ?3",
            Sql::Integer(i64::from(p.year)),
            Sql::Integer(i64::from(p.month)),
        ),
        Window::Days(r) => (
            "transaction_date >= ?2",
            "transaction_date < ?3",
            Sql::Text(crate::clock::iso(r.start)),
            Sql::Text(crate::clock::iso(r.end)),
        ),
    };
    // LIMIT and OFFSET are written into the SQL (validated integers): SQLite re-prepares a
    // statement whose LIMIT is a bound parameter every time it is rebound.
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM transactions
         WHERE user_id = ?1 AND {column_a} AND {column_b}
           AND (?4 IS NULL OR type = ?4) AND (?5 IS NULL OR category = ?5)
           AND (?6 IS NULL OR allocation_type_id = ?6)
         ORDER BY transaction_date DESC, created_at DESC, id
         LIMIT {} OFFSET {}",
        f.limit, f.offset
    ))?;
    let rows = stmt
        .query_map(
            params![
                user,
                a,
                b,
                f.kind.map(Kind::as_str),
                f.category,
                f.allocation_type_id
            ],
            from_row,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

#[derive(Serialize, ToSchema, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Totals {
    #[schema(value_type = f64)]
    pub(crate) total_income: Money,
    #[schema(value_type = f64)]
    pub(crate) total_expense: Money,
    pub(crate) transaction_count: i64,
}

impl Totals {
    /// income − expense.
    pub(crate) fn balance(&self) -> Result<Money> {
        money::balance(self.total_income, self.total_expense).ok_or_else(money::overflow)
    }
}

/// The month's totals as kept in `monthly_budgets` (zeros for a month without rows).
pub(crate) fn totals(c: &Connection, user: &str, p: Period) -> Result<Totals> {
    // Cached: every chat question reads these too.
    Ok(c.prepare_cached(
        "SELECT total_income, total_expense, transaction_count FROM monthly_budgets
         WHERE user_id = ?1 AND year = ?2 AND month = ?3",
    )?
    .query_row(params![user, p.year, p.month], |r| {
        Ok(Totals {
            total_income: r.get(0)?,
            total_expense: r.get(1)?,
            transaction_count: r.get(2)?,
        })
    })
    .optional()?
    .unwrap_or(Totals {
        total_income: Money::ZERO,
        total_expense: Money::ZERO,
        transaction_count: 0,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dates() {
        let d = |s: &str, zone: &str| {
            let tz = jiff::tz::TimeZone::get(zone).expect("zone");
            TxDate::from_json(&json!(s))
                .ok()
                .and_then(|d| d.instant(&tz).ok())
                .map(crate::clock::iso)
        };
        let cases = [
            ("2025-10-18", "UTC", "2025-10-18T00:00:00Z"),
            ("2025-10-18T10:30:00", "UTC", "2025-10-18T10:30:00Z"),
            ("2025-10-18T10:30:00Z", "UTC", "2025-10-18T10:30:00Z"),
            ("2025-10-18T10:30:00+05:30", "UTC", "2025-10-18T05:00:00Z"),
            ("2025-10-18T10:30:00.123Z", "UTC", "2025-10-18T10:30:00Z"),
            // Without an offset: the wall clock in the app's zone.
            ("2025-10-18", "Asia/Kolkata", "2025-10-17T18:30:00Z"),
            (
                "2025-10-31T20:00:00",
                "Asia/Kolkata",
                "2025-10-31T14:30:00Z",
            ),
            (
                "2025-10-31T20:00:00.9",
                "Asia/Kolkata",
                "2025-10-31T14:30:00Z",
            ),
            ("2025-11-01", "America/New_York", "2025-11-01T04:00:00Z"),
            // With one: that instant, whatever the zone.
            (
                "2025-10-18T10:30:00Z",
                "Asia/Kolkata",
                "2025-10-18T10:30:00Z",
            ),
            (
                "2025-10-18T10:30:00-04:00",
                "Asia/Kolkata",
                "2025-10-18T14:30:00Z",
            ),
        ];
        for (input, zone, want) in cases {
            assert_eq!(d(input, zone).as_deref(), Some(want), "{input} in {zone}");
        }
        for bad in [
            "2025-13-01",
            "18/10/2025",
            "",
            "2019-12-31",
            "2019-12-31T23:00:00",
            "yesterday",
            "2025-02-30",
        ] {
            assert!(TxDate::from_json(&json!(bad)).is_err(), "{bad}");
        }
        assert!(TxDate::from_json(&json!(20251018)).is_err());
    }

    /// A linked, keyed expense through the group commit, as `POST /transactions` runs it,
    /// compiles no SQL once one has run: every statement comes from the writer's cache.
    /// Compiling one uncached query was 28% of the group thread's time under POST load.
    #[test]
    fn a_posted_expense_compiles_no_sql_after_the_first() {
        use std::sync::{Arc, Mutex};

        use rusqlite::hooks::{AuthAction, AuthContext, Authorization};

        use crate::budget::idempotency::{self, Keyed};

        let (temp, _config) = crate::db::testing::on_disk(&[]);
        let db = &temp.db;
        let compiled = Arc::new(Mutex::new(Vec::<String>::new()));
        let seen = compiled.clone();
        let (user, catalog) = db
            .write(|tx| {
                // SQLite asks the authorizer while it compiles a statement, never when it runs
                // one. Set first: setting it expires what was compiled before. BEGIN and
                // COMMIT (once per batch, run by rusqlite) are left out.
                tx.authorizer(Some(move |ctx: AuthContext<'_>| {
                    if !matches!(ctx.action, AuthAction::Transaction { .. }) {
                        let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
                        seen.push(format!("{:?}", ctx.action));
                    }
                    Authorization::Allow
                }))?;
                let user = crate::budget::testing::user(tx, "asha@example.com");
                Ok((user, Arc::new(Catalog::load(tx)?)))
            })
            .expect("setup");
        let link = catalog.categories[0].types[0].id.clone();
        let post = |n: i64| {
            let (user, catalog) = (user.clone(), catalog.clone());
            let new = NewTransaction {
                kind: Kind::Expense,
                category: "groceries".into(),
                amount: crate::budget::money::testing::Money(1_000 + n),
                label: format!("shop {n}"),
                date: TxDate::Instant(crate::budget::testing::at("2026-11-10T10:00:00Z")),
                allocation_type_id: Some(link.clone()),
                occurrence: None,
            };
            let keyed = Keyed {
                key: format!("key-{n}"),
                hash: format!("hash-{n}"),
            };
            db.write_in_group(move |tx| {
                idempotency::run(tx, &user, Some(&keyed), 1_764_900_000, || {
                    let w = create(tx, &catalog, &jiff::tz::TimeZone::UTC, &user, &new, "now")?;
                    Ok((201, w.value.id.into_bytes(), w.alerts))
                })
            })
            .expect("post")
        };
        let taken = || std::mem::take(&mut *compiled.lock().unwrap_or_else(|p| p.into_inner()));

        post(1);
        let first = taken();
        assert!(
            first.len() > 10,
            "the first POST compiles its statements: {first:?}"
        );
        let (status, id, _) = post(2);
        assert_eq!(status, 201);
        let again = taken();
        assert!(
            again.is_empty(),
            "compiled again on the second POST: {again:?}"
        );
        let stored = db
            .read(|c| get(c, &user, &String::from_utf8_lossy(&id)))
            .expect("read")
            .expect("the second POST was stored");
        assert_eq!(stored.allocation_type_id.as_deref(), Some(link.as_str()));
    }
}
