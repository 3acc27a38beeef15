//! The values a client identifies with, parsed once at the edge: `MobileNumber`, `Email`,
//! `FullName`, `OtpCode`. Handlers never see raw strings for these.

use serde_json::Value;

use crate::input::{FromJson, Invalid, string_within};

/// A mobile number: 10 national digits (`9876543210`) or E.164 (`+919876543210`).
/// `e164` is the canonical form we store and key on; `typed` is what the client sent, which
/// messages and `/users/me` echo back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MobileNumber {
    pub(crate) e164: String,
    pub(crate) typed: String,
}

impl MobileNumber {
    pub(crate) fn parse(raw: &str, default_country: &str) -> Result<MobileNumber, Invalid> {
        let typed = raw.trim();
        let bad = || {
            Invalid::new(
                "Mobile number must be 10 digits or E.164 format (+<country code><number>)",
                "value_error",
            )
        };
        // ASCII digits only: `is_ascii_digit` refuses Devanagari or full-width digits.
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let e164 = if let Some(rest) = typed.strip_prefix('+') {
            if !digits(rest) || !(8..=15).contains(&rest.len()) || rest.starts_with('0') {
                return Err(bad());
            }
            format!("+{rest}")
        } else {
            if !digits(typed) || typed.len() != 10 {
                return Err(bad());
            }
            format!("+{default_country}{typed}")
        };
        Ok(MobileNumber {
            e164,
            typed: typed.to_string(),
        })
    }

    /// `parse`, then the national numbering rule of its country when that country is one we
    /// send SMS to (`SMS_ALLOWED_COUNTRIES`): `+9109000000032` is no Indian mobile number.
    pub(crate) fn parse_in(
        raw: &str,
        default_country: &str,
        allowed: &[String],
    ) -> Result<MobileNumber, Invalid> {
        let m = MobileNumber::parse(raw, default_country)?;
        let digits = &m.e164[1..];
        for plan in NUMBER_PLANS {
            if !allowed.iter().any(|cc| cc == plan.country) {
                continue;
            }
            let Some(national) = digits.strip_prefix(plan.country) else {
                continue;
            };
            let first_ok = national
                .bytes()
                .next()
                .is_some_and(|b| plan.first_digits.contains(&b));
            if national.len() != plan.length || !first_ok {
                return Err(Invalid::new(
                    format!(
                        "Mobile number for +{} must have {} digits after the country code, starting with one of {}",
                        plan.country,
                        plan.length,
                        String::from_utf8_lossy(plan.first_digits)
                    ),
                    "value_error",
                ));
            }
        }
        Ok(m)
    }

    /// Is the number in one of these country codes (`["91"]`)?
    pub(crate) fn in_countries(&self, countries: &[String]) -> bool {
        countries.iter().any(|cc| {
            self.e164
                .strip_prefix('+')
                .is_some_and(|n| n.starts_with(cc.as_str()))
        })
    }
}

/// A country's mobile numbers: how many digits follow the country code and which digit they
/// start with. Country codes are prefix-free, so a number matches at most one plan.
struct NumberPlan {
    country: &'static str,
    length: usize,
    first_digits: &'static [u8],
}

/// The countries whose plan we know. A country in `SMS_ALLOWED_COUNTRIES` but not here gets
/// the generic E.164 check only (README, "Mobile numbers").
const NUMBER_PLANS: &[NumberPlan] = &[
    // India: 10-digit mobiles starting 6-9.
    NumberPlan {
        country: "91",
        length: 10,
        first_digits: b"6789",
    },
    // North America: area codes never start with 0 or 1.
    NumberPlan {
        country: "1",
        length: 10,
        first_digits: b"23456789",
    },
    // United Kingdom mobiles: 07xxx xxxxxx.
    NumberPlan {
        country: "44",
        length: 10,
        first_digits: b"7",
    },
    // United Arab Emirates mobiles: 05x xxx xxxx.
    NumberPlan {
        country: "971",
        length: 9,
        first_digits: b"5",
    },
];

/// Parsing a mobile number needs the configured default country; the JSON layer reads the
/// string and the handler finishes with `MobileNumber::parse`.
pub(crate) struct RawMobile(pub String);

impl FromJson for RawMobile {
    fn from_json(v: &Value) -> Result<Self, Invalid> {
        string_within(v, 1, 20).map(RawMobile)
    }
}

/// An email address: one `@`, something on each side, a dot in the domain, no spaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Email(pub String);

impl FromJson for Email {
    fn from_json(v: &Value) -> Result<Self, Invalid> {
        let s = string_within(v, 3, 254)?;
        let s = s.trim().to_string();
        let bad = || Invalid::new("value is not a valid email address", "value_error");
        let (local, domain) = s.split_once('@').ok_or_else(bad)?;
        let ok = !local.is_empty()
            && local.len() <= 64
            && !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !s.chars().any(|c| c.is_whitespace() || c.is_control());
        if !ok {
            return Err(bad());
        }
        Ok(Email(s))
    }
}

/// `full_name`: 2 to 100 characters.
pub(crate) struct FullName(pub String);

impl FromJson for FullName {
    fn from_json(v: &Value) -> Result<Self, Invalid> {
        let s = string_within(v, 2, 100)?;
        if s.trim().chars().count() < 2 {
            return Err(Invalid::new(
                "String should have at least 2 characters",
                "string_too_short",
            ));
        }
        Ok(FullName(s.trim().to_string()))
    }
}

/// A 6-digit code as a string (`"042137"`); a JSON number would lose leading zeros.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OtpCode(pub String);

impl FromJson for OtpCode {
    fn from_json(v: &Value) -> Result<Self, Invalid> {
        let s = match v {
            Value::String(s) => s.trim().to_string(),
            // An integer with six digits has no leading zero to lose.
            Value::Number(n)
                if n.as_u64()
                    .is_some_and(|n| (100_000..1_000_000).contains(&n)) =>
            {
                n.to_string()
            }
            _ => {
                return Err(Invalid::new(
                    "Input should be a valid string",
                    "string_type",
                ));
            }
        };
        if s.len() != 6 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Invalid::new("OTP must be exactly 6 digits", "value_error"));
        }
        Ok(OtpCode(s))
    }
}

/// `verification_token` as sent; only its hash is ever compared or stored.
pub(crate) struct VerificationToken(pub String);

impl FromJson for VerificationToken {
    fn from_json(v: &Value) -> Result<Self, Invalid> {
        string_within(v, 1, 128).map(|s| VerificationToken(s.trim().to_string()))
    }
}

/// A password as sent; its rules are checked by `password::check_rules` (a 400, not a 422).
pub(crate) struct PasswordInput(pub String);

impl FromJson for PasswordInput {
    fn from_json(v: &Value) -> Result<Self, Invalid> {
        // The upper bound keeps the KDF's input sane; the rules proper come later.
        string_within(v, 1, 256).map(PasswordInput)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn mobile_forms() {
        let m = MobileNumber::parse("9876543210", "91").expect("national");
        assert_eq!(m.e164, "+919876543210");
        assert_eq!(m.typed, "9876543210");
        let m = MobileNumber::parse("+919876543210", "91").expect("e164");
        assert_eq!(m.e164, "+919876543210");
        assert!(m.in_countries(&["91".into()]));
        assert!(
            !MobileNumber::parse("+14155550100", "91")
                .expect("us")
                .in_countries(&["91".into()])
        );
        for bad in [
            "98765432101",
            "987654321",
            "98765abcde",
            "+",
            "+0123456789",
            "९८७६५४३२१०",
            "９８７６５４３２１０",
            "98765 43210",
            "'; DROP TABLE users;--",
            "",
        ] {
            assert!(MobileNumber::parse(bad, "91").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn allowed_countries_need_their_national_length() {
        let india = ["91".to_string()];
        for good in ["9876543210", "+919876543210", "6000000000", "+14155550100"] {
            assert!(MobileNumber::parse_in(good, "91", &india).is_ok(), "{good}");
        }
        for bad in [
            "+9109000000032",
            "+919000000032000",
            "+91900000003",
            "+915876543210",
            "0123456789",
            "5876543210",
        ] {
            assert!(MobileNumber::parse_in(bad, "91", &india).is_err(), "{bad}");
        }
        let us = ["91".to_string(), "1".to_string()];
        assert!(MobileNumber::parse_in("+14155550100", "91", &us).is_ok());
        assert!(MobileNumber::parse_in("+1415555010", "91", &us).is_err());
        assert!(MobileNumber::parse_in("+10155550100", "91", &us).is_err());
    }

    #[test]
    fn emails() {
        assert!(Email::from_json(&json!("a@b.co")).is_ok());
        for bad in ["ab.co", "a@b", "a b@c.d", "@b.co", "a@@b.co", "a@.co"] {
            assert!(Email::from_json(&json!(bad)).is_err(), "{bad}");
        }
        assert!(Email::from_json(&json!(5)).is_err());
    }

    #[test]
    fn otp_codes() {
        assert_eq!(
            OtpCode::from_json(&json!("042137")).ok(),
            Some(OtpCode("042137".into()))
        );
        assert_eq!(
            OtpCode::from_json(&json!(123456)).ok(),
            Some(OtpCode("123456".into()))
        );
        for bad in [
            json!("12345"),
            json!("1234567"),
            json!("12a456"),
            json!(42),
            json!("١٢٣٤٥٦"),
        ] {
            assert!(OtpCode::from_json(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names() {
        assert!(FullName::from_json(&json!("Al")).is_ok());
        assert!(FullName::from_json(&json!("A")).is_err());
        assert!(FullName::from_json(&json!(" A ")).is_err());
        assert!(FullName::from_json(&json!("x".repeat(101))).is_err());
    }
}
