//! Dates as the user means them: wall-clock dates and times in `APP_TIMEZONE`, turned into
//! UTC instants at the edge so that storage and comparisons only ever see instants.
//!
//! Daylight-saving time: a local time that does not exist (the spring-forward gap) moves
//! forward by the gap's length (02:30 on the day New York skips 02:00..03:00 is 03:30 EDT),
//! and a local time that happens twice (the fall-back fold) is its first occurrence (01:30 on
//! the day New York repeats 01:00..02:00 is 01:30 EDT). This is jiff's "compatible" choice,
//! the one RFC 5545 and JavaScript's Temporal make; a client is never refused for it. With it,
//! local midnight is always the first instant of the day, even where a zone skips midnight.

use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::input::{Fields, FromJson, Invalid};

/// The years every date must fall in, as `year` does.
pub(crate) const YEARS: std::ops::RangeInclusive<i16> = 2020..=2100;

/// The widest `from`..`to` window: `to` at most this many days after `from`.
pub(crate) const MAX_SPAN_DAYS: i64 = 366;

/// The instant a local wall-clock time names in `tz` (see the module comment for DST).
pub(crate) fn local_instant(tz: &TimeZone, dt: DateTime) -> Result<Timestamp> {
    tz.to_timestamp(dt).map_err(Error::internal)
}

/// The first instant of a local date in `tz`.
pub(crate) fn local_midnight(tz: &TimeZone, d: Date) -> Result<Timestamp> {
    local_instant(tz, d.to_datetime(jiff::civil::Time::midnight()))
}

/// `YYYY-MM-DD`, exactly, in 2020..2100: a day on the user's calendar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct LocalDate(pub Date);

impl FromJson for LocalDate {
    fn from_json(v: &Value) -> std::result::Result<Self, Invalid> {
        let bad = || {
            Invalid::new(
                "Input should be a valid date in the format YYYY-MM-DD",
                "date_parsing",
            )
        };
        let s = v.as_str().ok_or_else(bad)?;
        // jiff also reads `+002025-10-18` and the like; the contract says YYYY-MM-DD.
        let shaped = s.len() == 10
            && s.bytes().enumerate().all(|(i, b)| {
                if i == 4 || i == 7 {
                    b == b'-'
                } else {
                    b.is_ascii_digit()
                }
            });
        if !shaped {
            return Err(bad());
        }
        let d: Date = s.parse().map_err(|_| bad())?;
        if !YEARS.contains(&d.year()) {
            return Err(Invalid::new(
                "Date must be between 2020 and 2100",
                "value_error",
            ));
        }
        Ok(LocalDate(d))
    }
}

/// `from`..`to`, both local dates, inclusive, as the half-open instant range
/// `[start, end)`: from `from`'s local midnight to the local midnight after `to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct DayRange {
    pub(crate) start: Timestamp,
    pub(crate) end: Timestamp,
}

impl DayRange {
    pub(crate) fn new(tz: &TimeZone, from: LocalDate, to: LocalDate) -> Result<DayRange> {
        let after = to.0.tomorrow().map_err(Error::internal)?;
        Ok(DayRange {
            start: local_midnight(tz, from.0)?,
            end: local_midnight(tz, after)?,
        })
    }

    /// Reads `from` and `to` when either is given (`None` when neither is). Both are needed,
    /// `to` may not be before `from`, and they may be at most `MAX_SPAN_DAYS` apart; every
    /// problem is reported on `f`, naming the field.
    pub(crate) fn from_fields(tz: &TimeZone, f: &mut Fields) -> Result<Option<DayRange>> {
        if !f.has("from") && !f.has("to") {
            return Ok(None);
        }
        let from = f.optional::<LocalDate>("from");
        let to = f.optional::<LocalDate>("to");
        let refused = || Error::validation(&["query"], "Invalid date range", "value_error");
        let (from, to) = match (from, to) {
            (Ok(Some(from)), Ok(Some(to))) => (from, to),
            (Ok(None), _) => {
                f.reject("from", "Field required when to is given", "missing");
                return Err(refused());
            }
            (_, Ok(None)) => {
                f.reject("to", "Field required when from is given", "missing");
                return Err(refused());
            }
            _ => return Err(refused()),
        };
        if to < from {
            f.reject("to", "to must not be before from", "value_error");
            return Err(refused());
        }
        let days = from.0.duration_until(to.0).as_hours() / 24;
        if days > MAX_SPAN_DAYS {
            f.reject(
                "to",
                format!("to must be at most {MAX_SPAN_DAYS} days after from"),
                "value_error",
            );
            return Err(refused());
        }
        DayRange::new(tz, from, to).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tz(name: &str) -> TimeZone {
        TimeZone::get(name).expect("zone")
    }

    fn at(tz: &TimeZone, s: &str) -> String {
        let dt: DateTime = s.parse().expect("datetime");
        crate::clock::iso(local_instant(tz, dt).expect("instant"))
    }

    #[test]
    fn local_times_become_instants() {
        let k = tz("Asia/Kolkata");
        assert_eq!(at(&k, "2025-10-31T20:00:00"), "2025-10-31T14:30:00Z");
        let d: Date = "2025-10-18".parse().expect("date");
        assert_eq!(
            crate::clock::iso(local_midnight(&k, d).expect("midnight")),
            "2025-10-17T18:30:00Z"
        );
    }

    #[test]
    fn dst_gap_moves_forward_and_fold_takes_the_first() {
        let ny = tz("America/New_York");
        // 2025-03-09 02:00 EST jumps to 03:00 EDT: 02:30 does not exist, it becomes 03:30 EDT.
        assert_eq!(at(&ny, "2025-03-09T02:30:00"), "2025-03-09T07:30:00Z");
        // 2025-11-02 01:00..02:00 happens twice: the first (EDT, -04:00) is taken.
        assert_eq!(at(&ny, "2025-11-02T01:30:00"), "2025-11-02T05:30:00Z");
        // Santiago skips midnight (00:00 -> 01:00) in September: the day starts at 01:00.
        let scl = tz("America/Santiago");
        let d: Date = "2025-09-07".parse().expect("date");
        assert_eq!(
            crate::clock::iso(local_midnight(&scl, d).expect("midnight")),
            "2025-09-07T04:00:00Z"
        );
    }

    #[test]
    fn local_date_shape_and_years() {
        let p = |v: Value| LocalDate::from_json(&v).map(|d| d.0.to_string());
        assert_eq!(p(json!("2025-10-18")).ok().as_deref(), Some("2025-10-18"));
        for bad in [
            "2025-10-1",
            "2025-13-01",
            "2025-02-29",
            "18-10-2025",
            "20251018",
            "+002025-10-18",
            "2025-10-18T00:00:00",
            " 2025-10-18",
            "",
            "2019-12-31",
            "2101-01-01",
        ] {
            assert!(p(json!(bad)).is_err(), "{bad}");
        }
        assert!(p(json!(20251018)).is_err());
    }

    #[test]
    fn a_range_is_whole_local_days() {
        let k = tz("Asia/Kolkata");
        let d = |s: &str| LocalDate(s.parse().expect("date"));
        let r = DayRange::new(&k, d("2025-10-01"), d("2025-10-31")).expect("range");
        assert_eq!(crate::clock::iso(r.start), "2025-09-30T18:30:00Z");
        assert_eq!(crate::clock::iso(r.end), "2025-10-31T18:30:00Z");
    }
}
