//! Months: `month` 1..12 and `year` 2020..2100, defaulting to the current month in
//! `APP_TIMEZONE`.

use crate::error::Result;
use crate::http::Req;
use crate::input::{Count, Fields};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Period {
    pub year: i32,
    pub month: u32,
}

/// The months a route accepts; `Period::new` and the input types below share them.
const YEARS: std::ops::RangeInclusive<i32> = 2020..=2100;
const MONTHS: std::ops::RangeInclusive<u32> = 1..=12;

/// `month` and `year` as a route reads them (the same bounds as `MONTHS` and `YEARS`).
pub(crate) type MonthNumber = Count<1, 12>;
pub(crate) type YearNumber = Count<2020, 2100>;

impl Period {
    /// A month routes can address: `month` 1..12, `year` 2020..2100.
    pub(crate) fn new(year: i32, month: u32) -> Option<Period> {
        (YEARS.contains(&year) && MONTHS.contains(&month)).then_some(Period { year, month })
    }

    /// The month an instant falls in, in the time zone `tz` (`APP_TIMEZONE`).
    pub(crate) fn containing(tz: &jiff::tz::TimeZone, t: jiff::Timestamp) -> Period {
        let z = t.to_zoned(tz.clone());
        Period {
            year: i32::from(z.year()),
            month: z.month() as u32,
        }
    }

    /// The month before.
    pub fn prev(self) -> Period {
        if self.month == 1 {
            Period {
                year: self.year - 1,
                month: 12,
            }
        } else {
            Period {
                year: self.year,
                month: self.month - 1,
            }
        }
    }

    /// Reads optional `month`/`year` from these fields; a missing one is taken from `now`.
    pub(crate) fn from_fields(f: &mut Fields, now: Period) -> Result<Period> {
        let month = f.optional::<MonthNumber>("month")?;
        let year = f.optional::<YearNumber>("year")?;
        Ok(Period {
            // 2020..=2100 fits an i32.
            year: year.map(|y| y.0 as i32).unwrap_or(now.year),
            month: month.map(|m| m.0).unwrap_or(now.month),
        })
    }

    /// `?month=&year=` of a GET route.
    pub(crate) fn from_query(req: &Req, now: Period) -> Result<Period> {
        let mut f = Fields::query(req);
        let p = Period::from_fields(&mut f, now);
        f.finish()?;
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::FromJson;
    use serde_json::{Value, json};

    #[test]
    fn bounds() {
        assert!(MonthNumber::from_json(&json!(12)).is_ok());
        assert!(MonthNumber::from_json(&json!("3")).is_ok());
        assert!(MonthNumber::from_json(&json!(13)).is_err());
        assert!(MonthNumber::from_json(&json!(0)).is_err());
        assert!(YearNumber::from_json(&json!(2019)).is_err());
        assert!(YearNumber::from_json(&json!(2101)).is_err());
        assert!(YearNumber::from_json(&json!(2025.5)).is_err());
    }

    #[test]
    fn previous_month_wraps() {
        assert_eq!(
            Period {
                year: 2025,
                month: 1
            }
            .prev(),
            Period {
                year: 2024,
                month: 12
            }
        );
        assert_eq!(
            Period {
                year: 2025,
                month: 7
            }
            .prev(),
            Period {
                year: 2025,
                month: 6
            }
        );
    }

    #[test]
    fn month_is_taken_in_the_app_timezone() {
        let t: jiff::Timestamp = "2025-10-31T20:00:00Z".parse().expect("ts");
        let kolkata = jiff::tz::TimeZone::get("Asia/Kolkata").expect("tz");
        assert_eq!(
            Period::containing(&kolkata, t),
            Period {
                year: 2025,
                month: 11
            }
        );
        assert_eq!(
            Period::containing(&jiff::tz::TimeZone::UTC, t),
            Period {
                year: 2025,
                month: 10
            }
        );
    }

    #[test]
    fn new_takes_only_the_months_routes_can_address() {
        assert_eq!(
            Period::new(2020, 1),
            Some(Period {
                year: 2020,
                month: 1
            })
        );
        assert!(Period::new(2100, 12).is_some());
        for (y, m) in [(2019, 12), (2101, 1), (2025, 0), (2025, 13)] {
            assert_eq!(Period::new(y, m), None, "{y}-{m}");
        }
    }

    fn fields(v: Value) -> Fields {
        Fields::from_map(v.as_object().cloned().unwrap_or_default(), "query")
    }

    const OCTOBER: Period = Period {
        year: 2025,
        month: 10,
    };

    #[test]
    fn missing_month_or_year_is_taken_from_now() {
        let read = |v: Value| {
            let mut f = fields(v);
            let p = Period::from_fields(&mut f, OCTOBER).expect("valid");
            f.finish().expect("no problems");
            p
        };
        assert_eq!(read(json!({})), OCTOBER);
        assert_eq!(
            read(json!({"month": "3"})),
            Period {
                year: 2025,
                month: 3
            }
        );
        assert_eq!(
            read(json!({"year": 2024})),
            Period {
                year: 2024,
                month: 10
            }
        );
        assert_eq!(
            read(json!({"month": 12, "year": "2024", "other": 1})),
            Period {
                year: 2024,
                month: 12
            }
        );
    }

    #[test]
    fn a_bad_month_or_year_is_a_field_error() {
        for (v, name, msg) in [
            (
                json!({"month": 13}),
                "month",
                "Input should be between 1 and 12",
            ),
            (
                json!({"month": 2, "year": 2101}),
                "year",
                "Input should be between 2020 and 2100",
            ),
        ] {
            let mut f = fields(v);
            assert!(Period::from_fields(&mut f, OCTOBER).is_err());
            let Err(crate::error::Error::Validation(errors)) = f.finish() else {
                panic!("expected a 422 for {name}");
            };
            assert_eq!(errors.len(), 1);
            assert_eq!(errors[0].loc, vec![json!("query"), json!(name)]);
            assert_eq!(errors[0].msg, msg);
            assert_eq!(errors[0].kind, "value_error");
        }
    }
}
