//! `/users/me/preferences` over the `user_preferences` table; defaults until first saved.

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::error::Result;
use crate::input::{Fields, FromJson, Invalid, string_within};

#[derive(Serialize, ToSchema, Clone, Debug, PartialEq)]
pub(crate) struct Preferences {
    pub(crate) use_rag: bool,
    /// `light` or `dark`.
    pub(crate) theme: String,
    #[schema(example = "en")]
    pub(crate) language: String,
    #[schema(example = "INR")]
    pub(crate) currency: String,
}

impl Default for Preferences {
    fn default() -> Preferences {
        Preferences {
            use_rag: true,
            theme: "light".into(),
            language: "en".into(),
            currency: "INR".into(),
        }
    }
}

struct Theme(String);
impl FromJson for Theme {
    fn from_json(v: &Value) -> std::result::Result<Self, Invalid> {
        match v.as_str() {
            Some(t @ ("light" | "dark")) => Ok(Theme(t.to_string())),
            _ => Err(Invalid::new("Input should be 'light' or 'dark'", "enum")),
        }
    }
}

/// A language tag such as `en`, `hi` or `en-IN`.
struct Language(String);
impl FromJson for Language {
    fn from_json(v: &Value) -> std::result::Result<Self, Invalid> {
        let s = string_within(v, 2, 10)?;
        if !s.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-') {
            return Err(Invalid::new(
                "Input should be a language tag like 'en' or 'hi-IN'",
                "value_error",
            ));
        }
        Ok(Language(s))
    }
}

/// An ISO 4217 code: three capital letters.
struct Currency(String);
impl FromJson for Currency {
    fn from_json(v: &Value) -> std::result::Result<Self, Invalid> {
        let s = string_within(v, 3, 3)?;
        if !s.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(Invalid::new(
                "Input should be a currency code like 'INR'",
                "value_error",
            ));
        }
        Ok(Currency(s))
    }
}

pub(crate) fn load(c: &Connection, user: &str) -> Result<Preferences> {
    Ok(c.query_row(
        "SELECT use_rag, theme, language, currency FROM user_preferences WHERE user_id = ?1",
        [user],
        |r| {
            Ok(Preferences {
                use_rag: r.get(0)?,
                theme: r.get(1)?,
                language: r.get(2)?,
                currency: r.get(3)?,
            })
        },
    )
    .optional()?
    .unwrap_or_default())
}

/// The fields a PATCH may set.
pub(crate) struct PreferencesPatch {
    use_rag: Option<bool>,
    theme: Option<String>,
    language: Option<String>,
    currency: Option<String>,
}

impl PreferencesPatch {
    pub(crate) fn parse(f: &mut Fields) -> Result<PreferencesPatch> {
        let use_rag = f.optional::<bool>("use_rag");
        let theme = f.optional::<Theme>("theme");
        let language = f.optional::<Language>("language");
        let currency = f.optional::<Currency>("currency");
        Ok(PreferencesPatch {
            use_rag: use_rag?,
            theme: theme?.map(|t| t.0),
            language: language?.map(|l| l.0),
            currency: currency?.map(|c| c.0),
        })
    }
}

/// Applies the patch over the stored (or default) preferences.
pub(crate) fn patch(
    tx: &Transaction<'_>,
    user: &str,
    patch: PreferencesPatch,
    now: &str,
) -> Result<Preferences> {
    let mut p = load(tx, user)?;
    p.use_rag = patch.use_rag.unwrap_or(p.use_rag);
    p.theme = patch.theme.unwrap_or(p.theme);
    p.language = patch.language.unwrap_or(p.language);
    p.currency = patch.currency.unwrap_or(p.currency);
    tx.execute(
        "INSERT INTO user_preferences (user_id, use_rag, theme, language, currency, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT(user_id) DO UPDATE SET use_rag = excluded.use_rag, theme = excluded.theme,
             language = excluded.language, currency = excluded.currency, updated_at = excluded.updated_at",
        params![user, p.use_rag, p.theme, p.language, p.currency, now],
    )?;
    Ok(p)
}
