//! Fixtures for the unit tests of the money and chat domain: a fresh in-memory database with
//! the real migrations, and users created the way registration creates them.

use rusqlite::{Connection, Transaction};

use crate::auth::users::{self, NewUser};

/// An empty database at the current schema, foreign keys enforced as in the server.
pub(crate) fn memory() -> Connection {
    let mut c = Connection::open_in_memory().expect("memory db");
    c.execute_batch("PRAGMA foreign_keys = ON").expect("pragma");
    crate::db::apply_migrations(&mut c).expect("migrations");
    c
}

/// A new user with this email; returns its id.
pub(crate) fn user(c: &Connection, email: &str) -> String {
    let u = NewUser {
        mobile_e164: None,
        mobile_display: None,
        email: Some(email),
        full_name: "Test User",
        password_hash: None,
    };
    users::insert(c, &u, "2025-10-01T00:00:00Z")
        .expect("insert user")
        .id
}

/// Runs `f` in a transaction and commits it, as `Db::write` does.
pub(crate) fn write<T>(c: &mut Connection, f: impl FnOnce(&Transaction<'_>) -> T) -> T {
    let tx = c.transaction().expect("begin");
    let out = f(&tx);
    tx.commit().expect("commit");
    out
}

/// An instant, from ISO 8601.
pub(crate) fn at(iso: &str) -> jiff::Timestamp {
    iso.parse().expect("timestamp")
}

/// Records a transaction of `paise` at the instant `iso`, in `APP_TIMEZONE` = `tz`.
pub(crate) fn transaction(
    tx: &Transaction<'_>,
    tz: &jiff::tz::TimeZone,
    user: &str,
    kind: super::transactions::Kind,
    paise: i64,
    iso: &str,
) {
    let t = super::transactions::NewTransaction {
        kind,
        category: "test".into(),
        amount: super::money::testing::Money(paise),
        label: "test".into(),
        date: super::transactions::TxDate::Instant(at(iso)),
        allocation_type_id: None,
        occurrence: None,
    };
    // Unlinked: the catalogue is not consulted.
    let catalog = super::catalog::Catalog::default();
    super::transactions::create(tx, &catalog, tz, user, &t, "2025-10-01T00:00:00Z")
        .expect("transaction");
}

/// Sets the budget and the actual amount of one allocation type for the month.
pub(crate) fn allocate(
    tx: &Transaction<'_>,
    catalog: &super::catalog::Catalog,
    user: &str,
    type_id: &str,
    p: super::period::Period,
    (budget, actual): (i64, i64),
) {
    use super::allocations::{Change, Mode, upsert};
    use super::money::testing::Money;
    let now = "2025-10-01T00:00:00Z";
    upsert(
        tx,
        catalog,
        user,
        type_id,
        p,
        Change::Budget(Money(budget)),
        now,
    )
    .expect("budget");
    let actual = Change::Actual {
        amount: Money(actual),
        mode: Mode::Set,
        notes: None,
    };
    upsert(tx, catalog, user, type_id, p, actual, now).expect("actual");
}

/// The id of the allocation type at `index` in the category named `category`.
pub(crate) fn type_id(catalog: &super::catalog::Catalog, category: &str, index: usize) -> String {
    let cat = catalog.categories.iter().find(|c| c.name == category);
    cat.expect("category").types[index].id.clone()
}
