//! Months: `month` 1..12 and `year` 2020..2100, defaulting to the current month in
//! `APP_TIMEZONE`.

use serde_json::Value;

use crate::app::App;
use crate::error::Result;
use crate::http::Req;
use crate::input::{Fields, FromJson, Invalid};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Period {
    pub year: i32,
    pub month: u32,
}

pub struct MonthNumber(pub u32);
pub struct YearNumber(pub i32);

impl FromJson for MonthNumber {
    fn from_json(v: &Value) -> Result<Self, Invalid> {
        let n = i64::from_json(v)?;
        if !(1..=12).contains(&n) {
            return Err(Invalid::new(
                "Input should be between 1 and 12",
                "value_error",
            ));
        }
        Ok(MonthNumber(n as u32))
    }
}

impl FromJson for YearNumber {
    fn from_json(v: &Value) -> Result<Self, Invalid> {
        let n = i64::from_json(v)?;
        if !(2020..=2100).contains(&n) {
            return Err(Invalid::new(
                "Input should be between 2020 and 2100",
                "value_error",
            ));
        }
        Ok(YearNumber(n as i32))
    }
}

impl Period {
    pub fn current(app: &App) -> Period {
        let now = app.clock.now().to_zoned(app.config.app_timezone.clone());
        Period {
            year: i32::from(now.year()),
            month: now.month() as u32,
        }
    }

    /// The period containing an instant, in `APP_TIMEZONE`.
    pub fn of(app: &App, t: jiff::Timestamp) -> Period {
        let z = t.to_zoned(app.config.app_timezone.clone());
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

    /// Reads optional `month`/`year` from these fields; a missing one is the current one.
    pub fn from_fields(app: &App, f: &mut Fields) -> Result<Period> {
        let month = f.optional::<MonthNumber>("month")?;
        let year = f.optional::<YearNumber>("year")?;
        let now = Period::current(app);
        Ok(Period {
            year: year.map(|y| y.0).unwrap_or(now.year),
            month: month.map(|m| m.0).unwrap_or(now.month),
        })
    }

    /// `?month=&year=` of a GET route.
    pub fn from_query(app: &App, req: &Req) -> Result<Period> {
        let mut f = Fields::query(req);
        let p = Period::from_fields(app, &mut f);
        f.finish()?;
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
}
