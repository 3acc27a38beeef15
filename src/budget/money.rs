//! Money as integer minor units (paise). Parsed from a JSON number or a numeric string with at
//! most two decimals, written back as a JSON number with at most two decimals. No float ever
//! does arithmetic on an amount.
//!
//! `Money` is closed: its paise are read with `minor()`, and a value comes only from a checked
//! constructor (`from_minor`, `parse_decimal`, JSON), from the database (what we stored), or
//! from checked arithmetic (`checked_add`, `checked_sub`, `checked_neg`, `percent_bp`, `total`),
//! which returns `None` rather than wrap.

use rusqlite::types::{FromSql, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::error::Error;
use crate::input::{FromJson, Invalid};

/// Amounts above 10^13 (in major units) are refused.
pub(crate) const MAX_MAJOR: i64 = 10_000_000_000_000;
const MAX_MINOR: i64 = MAX_MAJOR * 100;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Money(i64);

impl Money {
    pub(crate) const ZERO: Money = Money(0);

    /// An amount of `minor` paise, if it is within what a single amount may be (±10^13).
    pub(crate) fn from_minor(minor: i64) -> Option<Money> {
        (-MAX_MINOR..=MAX_MINOR)
            .contains(&minor)
            .then_some(Money(minor))
    }

    pub(crate) fn minor(self) -> i64 {
        self.0
    }

    /// The same amount, if it is within what a single amount may be (±10^13).
    pub(crate) fn capped(self) -> Option<Money> {
        Money::from_minor(self.0)
    }

    /// Exact decimal text: `1250.5`, `50000`, `-0.05`.
    pub(crate) fn to_decimal_string(self) -> String {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let (whole, cents) = (abs / 100, abs % 100);
        match cents {
            0 => format!("{sign}{whole}"),
            c if c % 10 == 0 => format!("{sign}{whole}.{}", c / 10),
            c => format!("{sign}{whole}.{c:02}"),
        }
    }

    /// `₹12,34,567.50`: rupees with Indian digit grouping, for text meant for people.
    pub(crate) fn to_inr(self) -> String {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let whole = (abs / 100).to_string();
        let cents = abs % 100;
        // The last three digits, then groups of two.
        let grouped = if whole.len() <= 3 {
            whole
        } else {
            let (head, tail) = whole.split_at(whole.len() - 3);
            let mut groups: Vec<&str> = Vec::new();
            let mut rest = head;
            while rest.len() > 2 {
                let (h, t) = rest.split_at(rest.len() - 2);
                groups.push(t);
                rest = h;
            }
            groups.push(rest);
            groups.reverse();
            format!("{},{tail}", groups.join(","))
        };
        format!("{sign}₹{grouped}.{cents:02}")
    }

    /// Parses `"1250.50"`, `"1250"`, `"-3.1"`: digits, at most one point, at most two decimals.
    pub(crate) fn parse_decimal(s: &str) -> Result<Money, Invalid> {
        let s = s.trim();
        let bad = || {
            Invalid::new(
                "Input should be a valid number with at most 2 decimal places",
                "decimal_parsing",
            )
        };
        let (neg, body) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        let (whole, frac) = body.split_once('.').unwrap_or((body, ""));
        if whole.is_empty() && frac.is_empty() {
            return Err(bad());
        }
        if !whole.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        // `1.50` and `1.500` are the same number; only significant decimals count.
        let frac = frac.trim_end_matches('0');
        if frac.len() > 2 {
            return Err(Invalid::new(
                "Amount must have at most 2 decimal places",
                "decimal_max_places",
            ));
        }
        let whole = whole.trim_start_matches('0');
        if whole.len() > 14 {
            return Err(too_big());
        }
        let whole: i64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| bad())?
        };
        let cents: i64 = format!("{frac:0<2}").parse().map_err(|_| bad())?;
        let minor = whole
            .checked_mul(100)
            .and_then(|w| w.checked_add(cents))
            .ok_or_else(too_big)?;
        Money::from_minor(if neg { -minor } else { minor }).ok_or_else(too_big)
    }

    pub(crate) fn checked_add(self, o: Money) -> Option<Money> {
        self.0.checked_add(o.0).map(Money)
    }

    pub(crate) fn checked_sub(self, o: Money) -> Option<Money> {
        self.0.checked_sub(o.0).map(Money)
    }

    pub(crate) fn checked_neg(self) -> Option<Money> {
        self.0.checked_neg().map(Money)
    }

    /// `self × basis_points / 10_000`, rounded half to even, in integers; `None` if the result
    /// does not fit.
    pub(crate) fn percent_bp(self, bp: i64) -> Option<Money> {
        let scaled = div_half_even(i128::from(self.0) * i128::from(bp), 10_000);
        i64::try_from(scaled).ok().map(Money)
    }

    /// The sum of `amounts`, or `None` if it does not fit.
    pub(crate) fn total(amounts: impl IntoIterator<Item = Money>) -> Option<Money> {
        amounts
            .into_iter()
            .try_fold(Money::ZERO, |sum, m| sum.checked_add(m))
    }
}

/// A month's balance: income − expense. The one place it is computed (the balance route, the
/// monthly view, the coach's context).
pub(crate) fn balance(income: Money, expense: Money) -> Option<Money> {
    income.checked_sub(expense)
}

/// What a failed money operation answers. Stored amounts are each at most 10^13 and SQLite
/// refuses an overflowing sum, so this is a bug, not a client's doing: a 500.
pub(crate) fn overflow() -> Error {
    Error::internal("money arithmetic overflowed")
}

/// Stored amounts are integer paise; what we stored was checked on the way in.
impl FromSql for Money {
    fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
        i64::column_result(v).map(Money)
    }
}

impl ToSql for Money {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.0))
    }
}

/// `num / den` rounded half to even (banker's rounding); `den` > 0.
pub(crate) fn div_half_even(num: i128, den: i128) -> i128 {
    let q = num.div_euclid(den);
    let r = num.rem_euclid(den);
    match (2 * r).cmp(&den) {
        std::cmp::Ordering::Less => q,
        std::cmp::Ordering::Greater => q + 1,
        std::cmp::Ordering::Equal => q + (q & 1),
    }
}

fn too_big() -> Invalid {
    Invalid::new("Amount must be at most 10000000000000", "less_than_equal")
}

impl Money {
    /// Rupees as an exact JSON number: serde_json's `arbitrary_precision` keeps a number's
    /// text, so the exact decimal goes out with no float in between, however large the total.
    pub(crate) fn to_number(self) -> serde_json::Number {
        self.to_decimal_string()
            .parse()
            .unwrap_or_else(|_| serde_json::Number::from(self.0 / 100))
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_number().serialize(s)
    }
}

impl FromJson for Money {
    fn from_json(v: &Value) -> Result<Self, Invalid> {
        match v {
            // serde_json prints a parsed number in its shortest exact form, so its text
            // carries the decimals the client sent (`1250.55`, `0.1`, `1e3`).
            Value::Number(n) => {
                let text = n.to_string();
                if text.contains(['e', 'E']) {
                    let f = n
                        .as_f64()
                        .ok_or_else(|| Invalid::new("Invalid number", "decimal_parsing"))?;
                    if f.fract() != 0.0 || f.abs() > MAX_MAJOR as f64 {
                        return Err(too_big_or_places(f));
                    }
                    return Money::parse_decimal(&format!("{f:.0}"));
                }
                Money::parse_decimal(&text)
            }
            Value::String(s) => Money::parse_decimal(s),
            _ => Err(Invalid::new(
                "Input should be a valid number",
                "decimal_type",
            )),
        }
    }
}

fn too_big_or_places(f: f64) -> Invalid {
    if f.abs() > MAX_MAJOR as f64 {
        too_big()
    } else {
        Invalid::new(
            "Amount must have at most 2 decimal places",
            "decimal_max_places",
        )
    }
}

/// An amount that must be ≥ 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NonNegative(pub Money);

impl FromJson for NonNegative {
    fn from_json(v: &Value) -> Result<Self, Invalid> {
        let m = Money::from_json(v)?;
        if m.0 < 0 {
            return Err(Invalid::new(
                "Input should be greater than or equal to 0",
                "greater_than_equal",
            ));
        }
        Ok(NonNegative(m))
    }
}

/// An amount that must be > 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Positive(pub Money);

impl FromJson for Positive {
    fn from_json(v: &Value) -> Result<Self, Invalid> {
        let m = Money::from_json(v)?;
        if m.0 <= 0 {
            return Err(Invalid::new(
                "Input should be greater than 0",
                "greater_than",
            ));
        }
        Ok(Positive(m))
    }
}

/// A percentage held in basis points (10.0 % is 1000), written as a JSON number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Percent(pub i64);

impl Serialize for Percent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // `10.0`, `12.34`: as the catalogue writes them.
        let frac = (self.0 % 100).abs();
        let text = if frac % 10 == 0 {
            format!("{}.{}", self.0 / 100, frac / 10)
        } else {
            format!("{}.{frac:02}", self.0 / 100)
        };
        match text.parse::<serde_json::Number>() {
            Ok(n) => n.serialize(s),
            Err(_) => s.serialize_i64(self.0 / 100),
        }
    }
}

/// For unit tests elsewhere in the crate, which write amounts as `Money(paise)`: the tuple
/// constructor is private, so they import this function under the same name.
#[cfg(test)]
pub(crate) mod testing {
    #[allow(non_snake_case)]
    pub(crate) fn Money(minor: i64) -> super::Money {
        super::Money(minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<i64, String> {
        Money::from_json(&v)
            .map(|m| m.0)
            .map_err(|e| e.kind.to_string())
    }

    #[test]
    fn numbers_and_strings() {
        assert_eq!(parse(json!(1250.5)), Ok(125_050));
        assert_eq!(parse(json!(50000)), Ok(5_000_000));
        assert_eq!(parse(json!("1250.50")), Ok(125_050));
        assert_eq!(parse(json!("0.01")), Ok(1));
        assert_eq!(parse(json!(0.1)), Ok(10));
        assert_eq!(parse(json!(19.99)), Ok(1999));
        assert_eq!(parse(json!("1.500")), Ok(150));
        assert_eq!(parse(json!(1e3)), Ok(100_000));
        assert_eq!(parse(json!(-5)), Ok(-500));
        assert_eq!(
            parse(json!(10_000_000_000_000i64)),
            Ok(1_000_000_000_000_000)
        );
    }

    #[test]
    fn refusals() {
        assert_eq!(parse(json!(1.234)), Err("decimal_max_places".into()));
        assert_eq!(parse(json!("1.234")), Err("decimal_max_places".into()));
        assert_eq!(
            parse(json!(100_000_000_000_000i64)),
            Err("less_than_equal".into())
        );
        assert_eq!(parse(json!(1e14)), Err("less_than_equal".into()));
        assert_eq!(parse(json!("1e14")), Err("decimal_parsing".into()));
        for bad in [
            "NaN", "nan", "inf", "", ".", "1.2.3", "12a", " ", "--1", "१२",
        ] {
            assert!(parse(json!(bad)).is_err(), "{bad}");
        }
        assert!(parse(json!(true)).is_err());
        assert!(parse(json!(null)).is_err());
        assert!(NonNegative::from_json(&json!(-0.01)).is_err());
        assert!(Positive::from_json(&json!(0)).is_err());
        assert!(Positive::from_json(&json!("0.00")).is_err());
    }

    #[test]
    fn output_is_an_exact_json_number() {
        let out = |m: i64| serde_json::to_string(&Money(m)).expect("json");
        assert_eq!(out(125_050), "1250.5");
        assert_eq!(out(5_000_000), "50000");
        assert_eq!(out(1999), "19.99");
        assert_eq!(out(1), "0.01");
        assert_eq!(out(-5), "-0.05");
        assert_eq!(out(0), "0");
        assert_eq!(out(123_456_789_012_345), "1234567890123.45");
    }

    #[test]
    fn percentages_round_half_to_even() {
        // 10 % of 0.05 = 0.005 → 0.00 (even); of 0.15 = 0.015 → 0.02 (even).
        assert_eq!(Money(5).percent_bp(1000), Some(Money(0)));
        assert_eq!(Money(15).percent_bp(1000), Some(Money(2)));
        assert_eq!(Money(25).percent_bp(1000), Some(Money(2)));
        assert_eq!(Money(35).percent_bp(1000), Some(Money(4)));
        assert_eq!(Money(-15).percent_bp(1000), Some(Money(-2)));
        assert_eq!(Money(100_000).percent_bp(5000), Some(Money(50_000)));
        assert_eq!(Money(33_333).percent_bp(500), Some(Money(1667)));
    }

    #[test]
    fn rupees_for_people() {
        assert_eq!(Money(123_456_750).to_inr(), "₹12,34,567.50");
        assert_eq!(Money(99_900).to_inr(), "₹999.00");
        assert_eq!(Money(100_000).to_inr(), "₹1,000.00");
        assert_eq!(Money(-5).to_inr(), "-₹0.05");
    }

    #[test]
    fn percent_prints_like_the_catalogue() {
        assert_eq!(serde_json::to_string(&Percent(1000)).expect("json"), "10.0");
        assert_eq!(serde_json::to_string(&Percent(9000)).expect("json"), "90.0");
        assert_eq!(
            serde_json::to_string(&Percent(1234)).expect("json"),
            "12.34"
        );
    }
}
