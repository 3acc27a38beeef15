//! What the coach knows when it answers: the user's name and onboarding profile, this month's
//! numbers, and the conversation so far. Built into the system prompt, and hashed into the
//! answer cache key so a changed budget or profile never gets a stale answer.

use rusqlite::Connection;

use super::upstream::ChatMessage;
use crate::budget::catalog::Catalog;
use crate::budget::money::{self, Money};
use crate::budget::period::Period;
use crate::budget::{allocations, transactions};
use crate::error::Result;
use crate::profile::onboarding;

/// One category's budget and actual for the month.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CategoryNumbers {
    pub(crate) label: String,
    pub(crate) budget: Money,
    pub(crate) actual: Money,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Numbers {
    pub(crate) period: Period,
    pub(crate) income: Money,
    pub(crate) expense: Money,
    pub(crate) transaction_count: i64,
    pub(crate) categories: Vec<CategoryNumbers>,
}

impl Numbers {
    pub(crate) fn balance(&self) -> Option<Money> {
        money::balance(self.income, self.expense)
    }
}

impl CategoryNumbers {
    fn has_numbers(&self) -> bool {
        self.budget != Money::ZERO || self.actual != Money::ZERO
    }

    /// budget − actual: what is left (negative when over budget).
    fn remaining(&self) -> Option<Money> {
        self.budget.checked_sub(self.actual)
    }
}

/// Rupees for the prompt; an amount that overflowed (never seen: each is a sum of checked,
/// stored amounts) is said so rather than printed wrong.
fn inr(m: Option<Money>) -> String {
    m.map_or_else(|| "(too large to show)".into(), Money::to_inr)
}

pub(crate) struct Context {
    pub(crate) full_name: String,
    pub(crate) profile_lines: Vec<String>,
    pub(crate) numbers: Numbers,
    pub(crate) today: String,
}

pub(crate) fn month_name(p: Period) -> String {
    const NAMES: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    format!("{} {}", NAMES[(p.month.clamp(1, 12) - 1) as usize], p.year)
}

/// The user's income, expenses and per-category budget and actual for the month `p`, as the
/// money routes show them (the transactions' totals and the allocation summary).
pub(crate) fn numbers(c: &Connection, catalog: &Catalog, user: &str, p: Period) -> Result<Numbers> {
    let totals = transactions::totals(c, user, p)?;
    let categories = allocations::summary(c, catalog, user, p)?
        .categories
        .into_iter()
        .map(|line| CategoryNumbers {
            label: line.label,
            budget: line.total_budget,
            actual: line.total_actual,
        })
        .collect();
    Ok(Numbers {
        period: p,
        income: totals.total_income,
        expense: totals.total_expense,
        transaction_count: totals.transaction_count,
        categories,
    })
}

/// What the coach knows at `now`: the month is `now`'s in `tz` (`APP_TIMEZONE`), "today"
/// is its UTC date.
pub(crate) fn load(
    c: &Connection,
    catalog: &Catalog,
    tz: &jiff::tz::TimeZone,
    now: jiff::Timestamp,
    user_id: &str,
    full_name: &str,
) -> Result<Context> {
    let profile = onboarding::load(c, user_id)?;
    let mut lines = Vec::new();
    if let Some(p) = profile {
        let d = p.data;
        let mut add = |label: &str, v: &Option<String>| {
            if let Some(v) = v.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
                lines.push(format!("- {label}: {v}"));
            }
        };
        add("Age", &d.age_range);
        add("Occupation", &d.occupation);
        add("Income", &d.income_range);
        add("Goals", &d.financial_goals);
        add("Investment Experience", &d.investment_experience);
        add("Risk Tolerance", &d.risk_tolerance);
        add("Current Investments", &d.current_investments);
        add("Debt", &d.debt_status);
        let retirement = Some(
            if d.retirement_planning {
                "yes"
            } else {
                "not yet"
            }
            .to_string(),
        );
        add("Retirement Planning", &retirement);
        add("Interests", &d.interests);
    }
    Ok(Context {
        full_name: full_name.to_string(),
        profile_lines: lines,
        numbers: numbers(c, catalog, user_id, Period::containing(tz, now))?,
        today: now.strftime("%Y-%m-%d").to_string(),
    })
}

pub(crate) fn system_prompt(app_name: &str, ctx: &Context) -> String {
    let n = &ctx.numbers;
    let mut s = format!(
        "You are {app_name}, a friendly personal-finance coach inside the {app_name} app. \
         Give clear, brief, actionable advice in plain language: a few short sentences or a short list. \
         Ground your advice in the user's own numbers below; amounts are in Indian rupees (₹). \
         If a question is not about personal finance, steer back to it gently. Today is {}.\n\n\
         User: {}\n",
        ctx.today, ctx.full_name
    );
    if !ctx.profile_lines.is_empty() {
        s.push_str("Profile:\n");
        for l in &ctx.profile_lines {
            s.push_str(l);
            s.push('\n');
        }
    }
    s.push_str(&format!(
        "\nThis month ({}): income {}, expenses {}, balance {} ({} transactions).\n",
        month_name(n.period),
        n.income.to_inr(),
        n.expense.to_inr(),
        inr(n.balance()),
        n.transaction_count
    ));
    let with_budget: Vec<&CategoryNumbers> =
        n.categories.iter().filter(|c| c.has_numbers()).collect();
    if with_budget.is_empty() {
        s.push_str("No category budgets set this month.\n");
    } else {
        s.push_str("Budget vs actual by category:\n");
        for c in with_budget {
            s.push_str(&format!(
                "- {}: budget {}, actual {}, remaining {}\n",
                c.label,
                c.budget.to_inr(),
                c.actual.to_inr(),
                inr(c.remaining())
            ));
        }
    }
    s
}

/// The question as the cache sees it: trimmed, lower-case, single spaces.
pub(crate) fn normalise(q: &str) -> String {
    q.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Covers the user, the model, the question, the profile, the numbers and the history.
pub(crate) fn cache_key(
    user: &str,
    model: &str,
    question: &str,
    system: &str,
    history: &[ChatMessage],
) -> String {
    let material = serde_json::json!([user, model, normalise(question), system, history]);
    crate::random::to_hex(&hmac_sha256::Hash::hash(material.to_string().as_bytes()))
}

/// The short answer we give when the model cannot: where the user stands this month.
pub(crate) fn fallback_answer(n: &Numbers) -> String {
    let month = month_name(n.period);
    let has_budget = n.categories.iter().any(CategoryNumbers::has_numbers);
    if n.transaction_count == 0 && !has_budget {
        return format!(
            "I can't reach the AI coach right now. You have no transactions or budgets recorded for {month} yet: \
             add your income and expenses, and set a budget for each category, and I can show you where you stand."
        );
    }
    let mut s = format!(
        "I can't reach the AI coach right now, so here is where you stand for {month}: income {}, expenses {}, balance {}.",
        n.income.to_inr(),
        n.expense.to_inr(),
        inr(n.balance())
    );
    for c in n.categories.iter().filter(|c| c.has_numbers()) {
        match c.remaining() {
            Some(left) if left >= Money::ZERO => s.push_str(&format!(
                " {}: {} of {} used, {} left.",
                c.label,
                c.actual.to_inr(),
                c.budget.to_inr(),
                left.to_inr()
            )),
            left => s.push_str(&format!(
                " {}: {} over its budget of {}.",
                c.label,
                inr(left.and_then(Money::checked_neg)),
                c.budget.to_inr()
            )),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::money::testing::Money;

    fn numbers() -> Numbers {
        Numbers {
            period: Period {
                year: 2025,
                month: 10,
            },
            income: Money(5_000_000),
            expense: Money(1_500_075),
            transaction_count: 2,
            categories: vec![
                CategoryNumbers {
                    label: "SPENDING".into(),
                    budget: Money(100_050),
                    actual: Money(40_025),
                },
                CategoryNumbers {
                    label: "HEALTH".into(),
                    budget: Money(1000),
                    actual: Money(2500),
                },
                CategoryNumbers {
                    label: "LEARNING".into(),
                    budget: Money(0),
                    actual: Money(0),
                },
            ],
        }
    }

    #[test]
    fn prompt_carries_profile_and_numbers() {
        let ctx = Context {
            full_name: "Asha".into(),
            profile_lines: vec!["- Age: 25-34".into(), "- Risk Tolerance: moderate".into()],
            numbers: numbers(),
            today: "2025-10-20".into(),
        };
        let p = system_prompt("Wealth Coach AI", &ctx);
        for needle in [
            "Wealth Coach AI",
            "Today is 2025-10-20",
            "User: Asha",
            "- Age: 25-34",
            "- Risk Tolerance: moderate",
            "income ₹50,000.00",
            "expenses ₹15,000.75",
            "balance ₹34,999.25",
            "SPENDING: budget ₹1,000.50, actual ₹400.25, remaining ₹600.25",
        ] {
            assert!(p.contains(needle), "{needle:?} missing from:\n{p}");
        }
        assert!(!p.contains("LEARNING"), "empty categories are left out");
    }

    #[test]
    fn fallback_is_built_from_the_numbers() {
        let f = fallback_answer(&numbers());
        assert!(f.contains("October 2025"));
        assert!(f.contains("balance ₹34,999.25"));
        assert!(f.contains("SPENDING: ₹400.25 of ₹1,000.50 used, ₹600.25 left."));
        assert!(f.contains("HEALTH: ₹15.00 over its budget of ₹10.00."));
    }

    #[test]
    fn cache_keys_change_with_any_context() {
        let h = vec![ChatMessage {
            role: "user".into(),
            content: "hi".into(),
        }];
        let k = cache_key("u1", "m", "How  do I SAVE? ", "sys", &h);
        assert_eq!(k, cache_key("u1", "m", "how do i save?", "sys", &h));
        assert_ne!(k, cache_key("u2", "m", "how do i save?", "sys", &h));
        assert_ne!(k, cache_key("u1", "m", "how do i save?", "sys2", &h));
        assert_ne!(k, cache_key("u1", "m2", "how do i save?", "sys", &h));
        assert_ne!(k, cache_key("u1", "m", "how do i save?", "sys", &[]));
    }

    mod loaded {
        use super::super::*;
        use crate::budget::money::testing::Money;
        use crate::budget::testing::{allocate, at, memory, transaction, type_id, user, write};
        use crate::budget::transactions::Kind::{Expense, Income};
        use crate::input::Fields;
        use crate::profile::onboarding::{self, OnboardingData};

        const OCTOBER: Period = Period {
            year: 2025,
            month: 10,
        };

        fn kolkata() -> jiff::tz::TimeZone {
            jiff::tz::TimeZone::get("Asia/Kolkata").expect("tz")
        }

        #[test]
        fn the_coach_knows_the_profile_and_this_months_numbers_in_the_app_zone() {
            let mut c = memory();
            let catalog = Catalog::load(&c).expect("catalogue");
            let (asha, ravi) = (user(&c, "asha@example.com"), user(&c, "ravi@example.com"));
            let tz = kolkata();
            let holidays = type_id(&catalog, "spending", 5);
            let form = serde_json::json!({"age_range": "25-34", "risk_tolerance": "moderate",
                                          "occupation": "  ", "debt_status": "none"});
            let mut f = Fields::from_map(form.as_object().cloned().unwrap_or_default(), "body");
            let data = OnboardingData::parse(&mut f).expect("profile");
            write(&mut c, |tx| {
                onboarding::submit(tx, &asha, &data, "2025-10-01T00:00:00Z").expect("onboard");
                transaction(tx, &tz, &asha, Income, 5_000_000, "2025-10-05T10:00:00Z");
                transaction(tx, &tz, &asha, Expense, 1_500_075, "2025-10-10T10:00:00Z");
                // 20:00 UTC on the 31st is 1 November in Kolkata: next month's.
                transaction(tx, &tz, &asha, Expense, 99_900, "2025-10-31T20:00:00Z");
                transaction(tx, &tz, &ravi, Income, 777_700, "2025-10-05T10:00:00Z");
                allocate(tx, &catalog, &asha, &holidays, OCTOBER, (100_050, 40_025));
            });
            let now = at("2025-10-20T10:00:00Z");
            let ctx = load(&c, &catalog, &tz, now, &asha, "Asha").expect("context");
            assert_eq!(ctx.full_name, "Asha");
            assert_eq!(ctx.today, "2025-10-20");
            assert_eq!(
                ctx.profile_lines,
                vec![
                    "- Age: 25-34",
                    "- Risk Tolerance: moderate",
                    "- Debt: none",
                    "- Retirement Planning: not yet"
                ]
            );
            let n = &ctx.numbers;
            assert_eq!(n.period, OCTOBER);
            assert_eq!((n.income, n.expense), (Money(5_000_000), Money(1_500_075)));
            assert_eq!(n.transaction_count, 2);
            assert_eq!(n.categories.len(), catalog.categories.len());
            let with_numbers: Vec<&CategoryNumbers> =
                n.categories.iter().filter(|c| c.has_numbers()).collect();
            assert_eq!(
                with_numbers,
                vec![&CategoryNumbers {
                    label: "SPENDING (Lifestyle)".into(),
                    budget: Money(100_050),
                    actual: Money(40_025),
                }]
            );
            let prompt = system_prompt("Wealth Coach AI", &ctx);
            assert!(
                prompt.contains(
                    "This month (October 2025): income ₹50,000.00, expenses ₹15,000.75, balance ₹34,999.25 (2 transactions)."
                ),
                "{prompt}"
            );
            assert!(prompt.contains(
                "- SPENDING (Lifestyle): budget ₹1,000.50, actual ₹400.25, remaining ₹600.25"
            ));

            // On 1 November (Kolkata) the month moved on: only the late expense is in it.
            let later = at("2025-10-31T20:00:00Z");
            let ctx = load(&c, &catalog, &tz, later, &asha, "Asha").expect("context");
            assert_eq!(
                ctx.numbers.period,
                Period {
                    year: 2025,
                    month: 11
                }
            );
            assert_eq!(ctx.numbers.expense, Money(99_900));
            assert_eq!(ctx.numbers.income, Money::ZERO);
            assert!(ctx.numbers.categories.iter().all(|c| !c.has_numbers()));
        }

        #[test]
        fn a_user_without_profile_or_numbers_gets_an_empty_context() {
            let c = memory();
            let catalog = Catalog::load(&c).expect("catalogue");
            let ravi = user(&c, "ravi@example.com");
            let now = at("2025-10-20T10:00:00Z");
            let ctx = load(&c, &catalog, &kolkata(), now, &ravi, "Ravi").expect("context");
            assert!(ctx.profile_lines.is_empty());
            assert_eq!(ctx.numbers.transaction_count, 0);
            assert_eq!(ctx.numbers.balance(), Some(Money::ZERO));
            let prompt = system_prompt("Wealth Coach AI", &ctx);
            assert!(!prompt.contains("Profile:"));
            assert!(prompt.contains("No category budgets set this month."));
            assert!(
                fallback_answer(&ctx.numbers)
                    .contains("no transactions or budgets recorded for October 2025")
            );
        }
    }
}
