//! The onboarding profile: ten optional fields the coach personalises its answers with.

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::error::Result;
use crate::input::{Fields, FromJson, Invalid, Text, string_within};

/// Free-text fields have no limit in the contract; this one keeps prompts and rows sane.
const TEXT_MAX: usize = 2000;

/// Every field optional; `""` in any field means not given (null, or false for
/// `retirement_planning`), as a web form's untouched "Select…" sends it.
#[derive(Serialize, ToSchema, Clone, Debug, Default, PartialEq)]
pub(crate) struct OnboardingData {
    #[schema(max_length = 20, example = "25-34")]
    pub(crate) age_range: Option<String>,
    #[schema(max_length = 100)]
    pub(crate) occupation: Option<String>,
    #[schema(max_length = 30)]
    pub(crate) income_range: Option<String>,
    /// Comma-separated.
    #[schema(max_length = 2000)]
    pub(crate) financial_goals: Option<String>,
    /// `beginner`, `intermediate` or `advanced`.
    #[schema(pattern = "^(|beginner|intermediate|advanced)$")]
    pub(crate) investment_experience: Option<String>,
    /// `low`, `medium`, `high`, or the web client's `conservative`, `moderate`, `aggressive`.
    #[schema(pattern = "^(|low|medium|high|conservative|moderate|aggressive)$")]
    pub(crate) risk_tolerance: Option<String>,
    #[schema(max_length = 2000)]
    pub(crate) current_investments: Option<String>,
    /// `none`, `some` or `significant`.
    #[schema(pattern = "^(|none|some|significant)$")]
    pub(crate) debt_status: Option<String>,
    /// Optional in a request (absent means false); a stored profile always has it.
    #[schema(value_type = Option<bool>, required = false)]
    pub(crate) retirement_planning: bool,
    #[schema(max_length = 2000)]
    pub(crate) interests: Option<String>,
}

/// Free text of at most `MAX` characters.
type Bounded<const MAX: usize> = Text<0, MAX>;

/// A string that must be one of a fixed set, kept as sent.
fn one_of(v: &Value, allowed: &[&str]) -> std::result::Result<String, Invalid> {
    let s = string_within(v, 0, 50)?;
    if allowed.contains(&s.as_str()) {
        Ok(s)
    } else {
        Err(Invalid::new(
            format!("Input should be one of: {}", allowed.join(", ")),
            "enum",
        ))
    }
}

struct Experience(String);
impl FromJson for Experience {
    fn from_json(v: &Value) -> std::result::Result<Self, Invalid> {
        one_of(v, &["beginner", "intermediate", "advanced"]).map(Experience)
    }
}

struct Risk(String);
impl FromJson for Risk {
    fn from_json(v: &Value) -> std::result::Result<Self, Invalid> {
        one_of(
            v,
            &[
                "low",
                "medium",
                "high",
                "conservative",
                "moderate",
                "aggressive",
            ],
        )
        .map(Risk)
    }
}

struct Debt(String);
impl FromJson for Debt {
    fn from_json(v: &Value) -> std::result::Result<Self, Invalid> {
        one_of(v, &["none", "some", "significant"]).map(Debt)
    }
}

/// A field a web form may send as `""` (an untouched "Select…"): that means not given.
struct Given<T>(Option<T>);

impl<T: FromJson> FromJson for Given<T> {
    fn from_json(v: &Value) -> std::result::Result<Self, Invalid> {
        match v {
            Value::String(s) if s.is_empty() => Ok(Given(None)),
            _ => T::from_json(v).map(|x| Given(Some(x))),
        }
    }
}

/// Absent, null and `""` are all `None`.
fn given<T: FromJson>(f: &mut Fields, name: &str) -> Result<Option<T>> {
    Ok(f.optional::<Given<T>>(name)?.and_then(|g| g.0))
}

impl OnboardingData {
    pub(crate) fn parse(f: &mut Fields) -> Result<OnboardingData> {
        let age = given::<Bounded<20>>(f, "age_range");
        let occupation = given::<Bounded<100>>(f, "occupation");
        let income = given::<Bounded<30>>(f, "income_range");
        let goals = given::<Bounded<TEXT_MAX>>(f, "financial_goals");
        let experience = given::<Experience>(f, "investment_experience");
        let risk = given::<Risk>(f, "risk_tolerance");
        let investments = given::<Bounded<TEXT_MAX>>(f, "current_investments");
        let debt = given::<Debt>(f, "debt_status");
        let retirement = given::<bool>(f, "retirement_planning");
        let interests = given::<Bounded<TEXT_MAX>>(f, "interests");
        Ok(OnboardingData {
            age_range: age?.map(|b| b.0),
            occupation: occupation?.map(|b| b.0),
            income_range: income?.map(|b| b.0),
            financial_goals: goals?.map(|b| b.0),
            investment_experience: experience?.map(|e| e.0),
            risk_tolerance: risk?.map(|r| r.0),
            current_investments: investments?.map(|b| b.0),
            debt_status: debt?.map(|d| d.0),
            retirement_planning: retirement?.unwrap_or(false),
            interests: interests?.map(|b| b.0),
        })
    }
}

#[derive(Serialize, ToSchema, Clone, Debug)]
pub(crate) struct Profile {
    #[serde(flatten)]
    pub(crate) data: OnboardingData,
    pub(crate) onboarding_completed: bool,
    pub(crate) completed_at: Option<String>,
}

/// Overwrites the whole profile and marks onboarding completed.
pub(crate) fn submit(
    tx: &Transaction<'_>,
    user: &str,
    d: &OnboardingData,
    now: &str,
) -> Result<()> {
    tx.execute(
        "INSERT INTO user_profiles (user_id, age_range, occupation, income_range, financial_goals,
             investment_experience, risk_tolerance, current_investments, debt_status, retirement_planning,
             interests, onboarding_completed, completed_at, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 1, ?12, ?12, ?12)
         ON CONFLICT(user_id) DO UPDATE SET age_range = excluded.age_range, occupation = excluded.occupation,
             income_range = excluded.income_range, financial_goals = excluded.financial_goals,
             investment_experience = excluded.investment_experience, risk_tolerance = excluded.risk_tolerance,
             current_investments = excluded.current_investments, debt_status = excluded.debt_status,
             retirement_planning = excluded.retirement_planning, interests = excluded.interests,
             onboarding_completed = 1, completed_at = excluded.completed_at, updated_at = excluded.updated_at",
        params![
            user,
            d.age_range,
            d.occupation,
            d.income_range,
            d.financial_goals,
            d.investment_experience,
            d.risk_tolerance,
            d.current_investments,
            d.debt_status,
            d.retirement_planning,
            d.interests,
            now
        ],
    )?;
    Ok(())
}

pub(crate) fn load(c: &Connection, user: &str) -> Result<Option<Profile>> {
    // Cached: every chat question reads the profile, and compiling this was 9% of the
    // question threads' samples in a burst (`perf`, benches/chat.rs).
    Ok(c.prepare_cached(
        "SELECT age_range, occupation, income_range, financial_goals, investment_experience, risk_tolerance,
                current_investments, debt_status, retirement_planning, interests, onboarding_completed, completed_at
         FROM user_profiles WHERE user_id = ?1",
    )?
    .query_row([user], |r| {
            Ok(Profile {
                data: OnboardingData {
                    age_range: r.get(0)?,
                    occupation: r.get(1)?,
                    income_range: r.get(2)?,
                    financial_goals: r.get(3)?,
                    investment_experience: r.get(4)?,
                    risk_tolerance: r.get(5)?,
                    current_investments: r.get(6)?,
                    debt_status: r.get(7)?,
                    retirement_planning: r.get(8)?,
                    interests: r.get(9)?,
                },
                onboarding_completed: r.get(10)?,
                completed_at: r.get(11)?,
            })
    })
    .optional()?)
}
