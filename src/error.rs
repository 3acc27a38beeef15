//! The one error type. Every failure a client can see is a variant here, and `status`, `code`
//! and `body` are the only place that turns it into HTTP.

use serde_json::{Value, json};

/// One problem with one input field, FastAPI style: `{"loc":["body","otp"],"msg":..,"type":..}`.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    pub(crate) loc: Vec<Value>,
    pub(crate) msg: String,
    pub(crate) kind: &'static str,
}

impl FieldError {
    pub(crate) fn new(loc: Vec<Value>, msg: impl Into<String>, kind: &'static str) -> FieldError {
        FieldError {
            loc,
            msg: msg.into(),
            kind,
        }
    }

    fn to_json(&self) -> Value {
        json!({"loc": self.loc, "msg": self.msg, "type": self.kind})
    }
}

#[derive(Debug)]
pub enum Error {
    /// 422 with a list of field problems (bad shape, bad value, broken JSON).
    Validation(Vec<FieldError>),
    /// 422 with a plain message and a specific code (e.g. `country_not_allowed`).
    Unprocessable {
        code: &'static str,
        detail: String,
    },
    /// 400: a business rule said no.
    BadRequest {
        code: &'static str,
        detail: String,
    },
    /// 401: no, bad, expired or wrong-type credentials. `bearer` adds `WWW-Authenticate`.
    Unauthorized {
        code: &'static str,
        detail: String,
        bearer: bool,
    },
    /// 403: deactivated account, feature disabled, number not verified.
    Forbidden {
        code: &'static str,
        detail: String,
    },
    NotFound {
        code: &'static str,
        detail: String,
    },
    MethodNotAllowed {
        allow: Vec<&'static str>,
    },
    Conflict {
        code: &'static str,
        detail: String,
    },
    /// 412: a conditional write (`If-Match`) met a row that changed meanwhile; `current` is
    /// the row as it is now, so the client can merge without another read.
    PreconditionFailed {
        code: &'static str,
        detail: String,
        current: Value,
    },
    /// 410: what the client holds is no longer valid here (a sync cursor from before a
    /// restore, or older than the deletions kept); it starts again.
    Gone {
        code: &'static str,
        detail: String,
    },
    PayloadTooLarge {
        limit: usize,
    },
    UnsupportedMediaType {
        got: String,
    },
    HeadersTooLarge,
    /// 429 with `Retry-After` in whole seconds.
    TooManyRequests {
        code: &'static str,
        detail: String,
        retry_after: u64,
    },
    /// 429 from the request-rate limiter, with the `X-RateLimit-*` headers.
    RateLimited {
        limit: u32,
        retry_after: u64,
        reset_at: i64,
    },
    /// 502 (`timeout == false`) or 504: the SMS gateway or the LLM failed.
    Upstream {
        code: &'static str,
        detail: String,
        timeout: bool,
    },
    /// 503: the database is busy, full or gone; try again.
    Unavailable {
        code: &'static str,
        detail: String,
    },
    /// 500: a bug or an I/O failure. The message is logged, never sent.
    Internal(String),
}

impl Error {
    pub(crate) fn validation(loc: &[&str], msg: impl Into<String>, kind: &'static str) -> Error {
        Error::Validation(vec![FieldError::new(
            loc.iter().map(|s| Value::from(*s)).collect(),
            msg,
            kind,
        )])
    }

    pub(crate) fn not_found(detail: impl Into<String>) -> Error {
        Error::NotFound {
            code: "not_found",
            detail: detail.into(),
        }
    }

    pub(crate) fn bad_request(code: &'static str, detail: impl Into<String>) -> Error {
        Error::BadRequest {
            code,
            detail: detail.into(),
        }
    }

    pub(crate) fn internal(e: impl std::fmt::Display) -> Error {
        Error::Internal(e.to_string())
    }

    pub(crate) fn status(&self) -> u16 {
        match self {
            Error::Validation(_) | Error::Unprocessable { .. } => 422,
            Error::BadRequest { .. } => 400,
            Error::Unauthorized { .. } => 401,
            Error::Forbidden { .. } => 403,
            Error::NotFound { .. } => 404,
            Error::MethodNotAllowed { .. } => 405,
            Error::Conflict { .. } => 409,
            Error::Gone { .. } => 410,
            Error::PreconditionFailed { .. } => 412,
            Error::PayloadTooLarge { .. } => 413,
            Error::UnsupportedMediaType { .. } => 415,
            Error::HeadersTooLarge => 431,
            Error::TooManyRequests { .. } | Error::RateLimited { .. } => 429,
            Error::Upstream { timeout, .. } => {
                if *timeout {
                    504
                } else {
                    502
                }
            }
            Error::Unavailable { .. } => 503,
            Error::Internal(_) => 500,
        }
    }

    pub(crate) fn code(&self) -> &'static str {
        match self {
            Error::Validation(_) => "validation_error",
            Error::Unprocessable { code, .. }
            | Error::BadRequest { code, .. }
            | Error::Unauthorized { code, .. }
            | Error::Forbidden { code, .. }
            | Error::NotFound { code, .. }
            | Error::Conflict { code, .. }
            | Error::Gone { code, .. }
            | Error::PreconditionFailed { code, .. }
            | Error::TooManyRequests { code, .. }
            | Error::Upstream { code, .. }
            | Error::Unavailable { code, .. } => code,
            Error::MethodNotAllowed { .. } => "method_not_allowed",
            Error::PayloadTooLarge { .. } => "payload_too_large",
            Error::UnsupportedMediaType { .. } => "unsupported_media_type",
            Error::HeadersTooLarge => "headers_too_large",
            Error::RateLimited { .. } => "rate_limited",
            Error::Internal(_) => "internal_error",
        }
    }

    /// `detail` of the JSON body: a list for 422 field errors, else a sentence.
    pub(crate) fn detail(&self) -> Value {
        match self {
            Error::Validation(list) => Value::Array(list.iter().map(FieldError::to_json).collect()),
            Error::Unprocessable { detail, .. }
            | Error::BadRequest { detail, .. }
            | Error::Unauthorized { detail, .. }
            | Error::Forbidden { detail, .. }
            | Error::NotFound { detail, .. }
            | Error::Conflict { detail, .. }
            | Error::Gone { detail, .. }
            | Error::PreconditionFailed { detail, .. }
            | Error::TooManyRequests { detail, .. }
            | Error::Upstream { detail, .. }
            | Error::Unavailable { detail, .. } => Value::from(detail.as_str()),
            Error::MethodNotAllowed { .. } => Value::from("Method Not Allowed"),
            Error::PayloadTooLarge { limit } => {
                Value::from(format!("Request body too large (limit {limit} bytes)"))
            }
            Error::UnsupportedMediaType { got } => Value::from(format!(
                "Unsupported media type {got:?}: send application/json"
            )),
            Error::HeadersTooLarge => Value::from("Request headers too large"),
            Error::RateLimited { .. } => Value::from("Rate limit exceeded. Please slow down."),
            Error::Internal(_) => Value::from("Internal server error"),
        }
    }

    pub(crate) fn body(&self) -> Value {
        match self {
            Error::PreconditionFailed { current, .. } => {
                json!({"detail": self.detail(), "code": self.code(), "current": current})
            }
            _ => json!({"detail": self.detail(), "code": self.code()}),
        }
    }

    /// Headers that belong to this error's status.
    pub(crate) fn headers(&self) -> Vec<(&'static str, String)> {
        match self {
            Error::Unauthorized { bearer: true, .. } => vec![("WWW-Authenticate", "Bearer".into())],
            Error::MethodNotAllowed { allow } => vec![("Allow", allow.join(", "))],
            Error::TooManyRequests { retry_after, .. } => {
                vec![("Retry-After", retry_after.max(&1).to_string())]
            }
            Error::RateLimited {
                limit,
                retry_after,
                reset_at,
            } => vec![
                ("Retry-After", retry_after.max(&1).to_string()),
                ("X-RateLimit-Limit", limit.to_string()),
                ("X-RateLimit-Remaining", "0".into()),
                ("X-RateLimit-Reset", reset_at.to_string()),
            ],
            Error::Unavailable { .. } => vec![("Retry-After", "1".into())],
            _ => Vec::new(),
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Error {
        use rusqlite::ErrorCode;
        match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Error::Unavailable {
                code: "database_busy",
                detail: "The database is busy; please retry".into(),
            },
            // Logged here because only `Internal` errors are logged when answered: without
            // this line a full disk showed up as 503s with nothing in the server's log.
            Some(ErrorCode::DiskFull) => {
                log::error!("database write refused, disk full: {e}");
                Error::Unavailable {
                    code: "storage_full",
                    detail: "The server is out of storage; please retry later".into(),
                }
            }
            Some(ErrorCode::ReadOnly | ErrorCode::CannotOpen | ErrorCode::SystemIoFailure) => {
                log::error!("database: {e}");
                Error::Unavailable {
                    code: "database_unavailable",
                    detail: "The database is unavailable; please retry later".into(),
                }
            }
            _ => Error::Internal(format!("database: {e}")),
        }
    }
}

impl From<r2d2::Error> for Error {
    fn from(e: r2d2::Error) -> Error {
        log::error!("database pool: {e}");
        Error::Unavailable {
            code: "database_unavailable",
            detail: "The database is unavailable; please retry later".into(),
        }
    }
}

pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_body_is_fastapi_shaped() {
        let e = Error::validation(&["body", "mobile_number"], "Field required", "missing");
        assert_eq!(e.status(), 422);
        assert_eq!(
            e.body(),
            json!({"detail":[{"loc":["body","mobile_number"],"msg":"Field required","type":"missing"}],"code":"validation_error"})
        );
    }

    #[test]
    fn internal_errors_leak_nothing() {
        let e = Error::internal("disk I/O error at /var/lib/secret/path");
        assert_eq!(e.status(), 500);
        assert!(!e.body().to_string().contains("/var/lib"));
    }

    #[test]
    fn a_precondition_failure_carries_the_current_row() {
        let e = Error::PreconditionFailed {
            code: "version_mismatch",
            detail: "changed".into(),
            current: json!({"id": "t1", "version": 4}),
        };
        assert_eq!(e.status(), 412);
        assert_eq!(
            e.body(),
            json!({"detail": "changed", "code": "version_mismatch", "current": {"id": "t1", "version": 4}})
        );
    }

    #[test]
    fn status_specific_headers() {
        let e = Error::MethodNotAllowed {
            allow: vec!["GET", "POST"],
        };
        assert_eq!(e.headers(), vec![("Allow", "GET, POST".to_string())]);
        let e = Error::TooManyRequests {
            code: "rate_limited",
            detail: "x".into(),
            retry_after: 0,
        };
        assert_eq!(e.headers(), vec![("Retry-After", "1".to_string())]);
    }
}
