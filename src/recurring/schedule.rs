//! A rule's occurrence dates: one pure function of its start, frequency and end, on local
//! calendar dates (`APP_TIMEZONE` is applied by the caller, when a date becomes an instant).
//!
//! Occurrence `n` (from 0) is computed from `start` directly, never from occurrence `n − 1`:
//! a monthly rule that starts on the 31st falls on the last day of a shorter month and comes
//! back to the 31st afterwards (31 Jan → 28 Feb → 31 Mar), which stepping month by month from
//! the clamped date would lose.

use jiff::ToSpan;
use jiff::civil::Date;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Frequency {
    Weekly,
    EveryOtherWeek,
    Monthly,
    EveryOtherMonth,
    Quarterly,
    HalfYearly,
    Yearly,
}

/// The step between occurrences: days for the week-based ones, months for the others.
enum Step {
    Days(i64),
    Months(i64),
}

impl Frequency {
    pub(crate) const ALL: [Frequency; 7] = [
        Frequency::Weekly,
        Frequency::EveryOtherWeek,
        Frequency::Monthly,
        Frequency::EveryOtherMonth,
        Frequency::Quarterly,
        Frequency::HalfYearly,
        Frequency::Yearly,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Frequency::Weekly => "weekly",
            Frequency::EveryOtherWeek => "every_other_week",
            Frequency::Monthly => "monthly",
            Frequency::EveryOtherMonth => "every_other_month",
            Frequency::Quarterly => "quarterly",
            Frequency::HalfYearly => "half_yearly",
            Frequency::Yearly => "yearly",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Frequency> {
        Frequency::ALL.into_iter().find(|f| f.as_str() == s)
    }

    fn step(self) -> Step {
        match self {
            Frequency::Weekly => Step::Days(7),
            Frequency::EveryOtherWeek => Step::Days(14),
            Frequency::Monthly => Step::Months(1),
            Frequency::EveryOtherMonth => Step::Months(2),
            Frequency::Quarterly => Step::Months(3),
            Frequency::HalfYearly => Step::Months(6),
            Frequency::Yearly => Step::Months(12),
        }
    }
}

/// Where a rule stops: on a last date, after a count, or never.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    Never,
    OnOrBefore(Date),
    After(u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Schedule {
    pub(crate) start: Date,
    pub(crate) frequency: Frequency,
    pub(crate) end: End,
}

/// Dates past this are never produced (the contract's dates stop at 2100).
const LAST_YEAR: i16 = 2100;

impl Schedule {
    /// Occurrence `n` (0 is `start`), or `None` past the rule's end or past 2100.
    pub(crate) fn nth(&self, n: u32) -> Option<Date> {
        if let End::After(count) = self.end
            && n >= count
        {
            return None;
        }
        let date = match self.frequency.step() {
            Step::Days(d) => self.start.checked_add((i64::from(n) * d).days()).ok()?,
            Step::Months(m) => {
                // Month arithmetic on the first of the month, then the start's day clamped
                // to that month's length.
                let first = self.start.first_of_month();
                let month = first.checked_add((i64::from(n) * m).months()).ok()?;
                let day = self.start.day().min(month.days_in_month());
                month.with().day(day).build().ok()?
            }
        };
        if date.year() > LAST_YEAR {
            return None;
        }
        match self.end {
            End::OnOrBefore(last) if date > last => None,
            _ => Some(date),
        }
    }

    /// The index of the first occurrence on or after `date` (it may not exist: check `nth`).
    fn first_index_from(&self, date: Date) -> u32 {
        if date <= self.start {
            return 0;
        }
        // An estimate that is never past the answer, then a walk forward (at most a step or two).
        let estimate = match self.frequency.step() {
            Step::Days(d) => {
                let days = (date - self.start).get_days();
                i64::from(days) / d
            }
            Step::Months(m) => {
                let months = (i64::from(date.year()) - i64::from(self.start.year())) * 12
                    + i64::from(date.month())
                    - i64::from(self.start.month());
                (months / m - 1).max(0)
            }
        };
        let mut n = u32::try_from(estimate).unwrap_or(u32::MAX);
        while let Some(d) = self.nth(n) {
            if d >= date {
                break;
            }
            n = n.saturating_add(1);
        }
        n
    }

    /// Every occurrence in `from..=to`, with its index, in order.
    pub(crate) fn between(&self, from: Date, to: Date) -> impl Iterator<Item = (u32, Date)> + '_ {
        let first = self.first_index_from(from);
        (first..)
            .map_while(move |n| self.nth(n).map(|d| (n, d)))
            .take_while(move |(_, d)| *d <= to)
    }

    /// The first occurrence on or after `date`.
    pub(crate) fn first_on_or_after(&self, date: Date) -> Option<(u32, Date)> {
        let n = self.first_index_from(date);
        self.nth(n).map(|d| (n, d))
    }

    /// Whether `date` is one of the rule's occurrences.
    pub(crate) fn is_occurrence(&self, date: Date) -> bool {
        self.first_on_or_after(date).is_some_and(|(_, d)| d == date)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn rule(start: Date, frequency: Frequency) -> Schedule {
        Schedule {
            start,
            frequency,
            end: End::Never,
        }
    }

    fn first(s: &Schedule, k: u32) -> Vec<Date> {
        (0..k).filter_map(|n| s.nth(n)).collect()
    }

    #[test]
    fn month_end_falls_on_the_last_day_and_comes_back() {
        let s = rule(date(2025, 1, 31), Frequency::Monthly);
        assert_eq!(
            first(&s, 5),
            [
                date(2025, 1, 31),
                date(2025, 2, 28),
                date(2025, 3, 31),
                date(2025, 4, 30),
                date(2025, 5, 31)
            ]
        );
        let leap = rule(date(2024, 1, 31), Frequency::Monthly);
        assert_eq!(leap.nth(1), Some(date(2024, 2, 29)));
        assert_eq!(leap.nth(2), Some(date(2024, 3, 31)));
        let the_30th = rule(date(2025, 1, 30), Frequency::EveryOtherMonth);
        assert_eq!(
            first(&the_30th, 3),
            [date(2025, 1, 30), date(2025, 3, 30), date(2025, 5, 30)]
        );
    }

    #[test]
    fn leap_day_yearly_is_the_28th_in_common_years() {
        let s = rule(date(2024, 2, 29), Frequency::Yearly);
        assert_eq!(
            first(&s, 5),
            [
                date(2024, 2, 29),
                date(2025, 2, 28),
                date(2026, 2, 28),
                date(2027, 2, 28),
                date(2028, 2, 29)
            ]
        );
    }

    #[test]
    fn every_frequency_steps_as_named() {
        let start = date(2025, 11, 30);
        let expect = [
            (Frequency::Weekly, [date(2025, 12, 7), date(2025, 12, 14)]),
            (
                Frequency::EveryOtherWeek,
                [date(2025, 12, 14), date(2025, 12, 28)],
            ),
            (Frequency::Monthly, [date(2025, 12, 30), date(2026, 1, 30)]),
            (
                Frequency::EveryOtherMonth,
                [date(2026, 1, 30), date(2026, 3, 30)],
            ),
            (Frequency::Quarterly, [date(2026, 2, 28), date(2026, 5, 30)]),
            (
                Frequency::HalfYearly,
                [date(2026, 5, 30), date(2026, 11, 30)],
            ),
            (Frequency::Yearly, [date(2026, 11, 30), date(2027, 11, 30)]),
        ];
        for (f, [second, third]) in expect {
            let s = rule(start, f);
            assert_eq!(first(&s, 3), [start, second, third], "{f:?}");
            assert_eq!(Frequency::parse(f.as_str()), Some(f));
        }
        assert_eq!(Frequency::parse("daily"), None);
    }

    #[test]
    fn an_end_date_or_a_count_stops_the_rule() {
        let by_date = Schedule {
            end: End::OnOrBefore(date(2025, 3, 30)),
            ..rule(date(2025, 1, 31), Frequency::Monthly)
        };
        assert_eq!(
            first(&by_date, 10),
            [date(2025, 1, 31), date(2025, 2, 28)],
            "31 March is after the end"
        );
        let on_the_end = Schedule {
            end: End::OnOrBefore(date(2025, 3, 31)),
            ..by_date
        };
        assert_eq!(
            on_the_end.nth(2),
            Some(date(2025, 3, 31)),
            "the end is inclusive"
        );
        let counted = Schedule {
            end: End::After(2),
            ..rule(date(2025, 1, 1), Frequency::Weekly)
        };
        assert_eq!(first(&counted, 10), [date(2025, 1, 1), date(2025, 1, 8)]);
        assert_eq!(counted.first_on_or_after(date(2025, 1, 9)), None);
    }

    #[test]
    fn nothing_past_2100() {
        let s = rule(date(2100, 12, 1), Frequency::Monthly);
        assert_eq!(first(&s, 3), [date(2100, 12, 1)]);
    }

    #[test]
    fn windows_and_membership_agree_with_nth() {
        for f in Frequency::ALL {
            for start in [date(2024, 1, 31), date(2024, 2, 29), date(2025, 6, 15)] {
                let s = rule(start, f);
                // Enough to pass the window for every frequency (weekly: ~110).
                let all: Vec<(u32, Date)> =
                    (0..200).map_while(|n| s.nth(n).map(|d| (n, d))).collect();
                let (from, to) = (date(2025, 3, 1), date(2026, 2, 28));
                let want: Vec<(u32, Date)> = all
                    .iter()
                    .copied()
                    .filter(|(_, d)| (from..=to).contains(d))
                    .collect();
                let got: Vec<(u32, Date)> = s.between(from, to).collect();
                assert_eq!(got, want, "{f:?} from {start}");
                for (_, d) in &all {
                    assert!(s.is_occurrence(*d));
                    let prev = d.yesterday().expect("day");
                    let listed = all.iter().any(|(_, x)| *x == prev);
                    assert_eq!(s.is_occurrence(prev), listed, "{f:?} {prev}");
                }
                let before_start = start.yesterday().expect("day");
                assert_eq!(s.first_on_or_after(before_start), Some((0, start)));
            }
        }
    }
}
