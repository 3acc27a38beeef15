//! Onboarding from the older web client (issue 10.3): every select left alone is sent as `""`,
//! which means "not given" in every field, so the user can still finish onboarding.

use crate::money_support;

use money_support::*;
use serde_json::{Value, json};

const SUBMIT: &str = "/api/v1/onboarding/submit";
const PROFILE: &str = "/api/v1/onboarding/profile";

const FIELDS: [&str; 10] = [
    "age_range",
    "occupation",
    "income_range",
    "financial_goals",
    "investment_experience",
    "risk_tolerance",
    "current_investments",
    "debt_status",
    "retirement_planning",
    "interests",
];

fn all_blank() -> Value {
    Value::Object(FIELDS.iter().map(|k| (k.to_string(), json!(""))).collect())
}

#[test]
fn blank_strings_in_every_field_are_nulls_and_onboarding_completes() {
    let (t, u) = app_and_user("blank-onboarding@example.com");
    let tok = u.token.as_str();
    // A full profile first, so the blanks visibly overwrite it.
    let full = json!({"age_range": "25-34", "occupation": "Engineer", "income_range": "10-20 LPA",
        "financial_goals": "house", "investment_experience": "advanced", "risk_tolerance": "high",
        "current_investments": "stocks", "debt_status": "some", "retirement_planning": true,
        "interests": "index funds"});
    expect(&t, "POST", SUBMIT, tok, Some(&full), 200);

    let r = expect(&t, "POST", SUBMIT, tok, Some(&all_blank()), 200);
    assert_eq!(r["profile_completed"], true);
    let p = get_ok(&t, PROFILE, tok);
    for k in FIELDS {
        if k == "retirement_planning" {
            assert_eq!(p[k], false, "{p}");
        } else {
            assert!(p[k].is_null(), "{k}: {p}");
        }
    }
    assert_eq!(p["onboarding_completed"], true);
    let status = get_ok(&t, "/api/v1/onboarding/status", tok);
    assert_eq!(status["onboarding_completed"], true);

    // The older client's usual form: text typed in, the selects untouched.
    let mixed = json!({"age_range": "25-34", "occupation": "Teacher", "income_range": "",
        "financial_goals": "", "investment_experience": "", "risk_tolerance": "moderate",
        "current_investments": "", "debt_status": "", "retirement_planning": "",
        "interests": "books"});
    expect(&t, "POST", SUBMIT, tok, Some(&mixed), 200);
    let p = get_ok(&t, PROFILE, tok);
    assert_eq!(
        (
            &p["age_range"],
            &p["occupation"],
            &p["risk_tolerance"],
            &p["interests"]
        ),
        (
            &json!("25-34"),
            &json!("Teacher"),
            &json!("moderate"),
            &json!("books")
        )
    );
    for k in [
        "income_range",
        "financial_goals",
        "investment_experience",
        "debt_status",
    ] {
        assert!(p[k].is_null(), "{k}: {p}");
    }
    assert_eq!(p["retirement_planning"], false);
}

#[test]
fn real_bad_values_are_still_refused_and_change_nothing() {
    let (t, u) = app_and_user("blank-onboarding-bad@example.com");
    let tok = u.token.as_str();
    let good = json!({"investment_experience": "beginner", "risk_tolerance": "low",
        "debt_status": "none", "retirement_planning": true});
    expect(&t, "POST", SUBMIT, tok, Some(&good), 200);
    let kept = get_ok(&t, PROFILE, tok);
    for (field, value) in [
        ("investment_experience", json!("expert")),
        ("investment_experience", json!(" ")),
        ("risk_tolerance", json!("LOW")),
        ("risk_tolerance", json!("Select…")),
        ("debt_status", json!("lots")),
        ("debt_status", json!(0)),
        ("retirement_planning", json!("maybe")),
        ("retirement_planning", json!(" ")),
        ("age_range", json!("x".repeat(21))),
    ] {
        // The bad field among blanks: the blanks do not hide it.
        let mut body = all_blank();
        body[field] = value.clone();
        let r = call(&t, "POST", SUBMIT, tok, Some(&body));
        assert_422_names(&r, field);
        let errors = r.json()["detail"].as_array().map_or(0, Vec::len);
        assert_eq!(errors, 1, "{field}={value}: only that field: {}", r.text());
    }
    assert_eq!(get_ok(&t, PROFILE, tok), kept);
}
