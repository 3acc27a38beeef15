//! Bodies of `/api/v1/auth/*` that exist for the OpenAPI document only: each handler parses
//! its request field by field (`Fields`), so every problem comes back in one 422.

use serde::Serialize;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub(crate) struct MobileRequest {
    /// 10 digits, or E.164 (`+919876543210`).
    #[schema(pattern = r"^(\+[1-9][0-9]{7,14}|[0-9]{10})$", example = "9876543210")]
    pub(crate) mobile_number: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct VerifyOtpRequest {
    #[schema(pattern = r"^(\+[1-9][0-9]{7,14}|[0-9]{10})$", example = "9876543210")]
    pub(crate) mobile_number: String,
    /// Six digits (a 6-digit number is accepted too).
    #[schema(pattern = "^[0-9]{6}$", example = "123456")]
    pub(crate) otp: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct RegisterRequest {
    /// Either this or `email` (or both).
    #[schema(pattern = r"^(\+[1-9][0-9]{7,14}|[0-9]{10})$", example = "9876543210")]
    pub(crate) mobile_number: Option<String>,
    #[schema(min_length = 3, max_length = 254, example = "asha@example.com")]
    pub(crate) email: Option<String>,
    /// The rules of `/password-requirements`; breaking one is a 400, not a 422. May be left
    /// out with a valid `otp`: the account then signs in by OTP only.
    #[schema(min_length = 1, max_length = 256)]
    pub(crate) password: Option<String>,
    #[schema(min_length = 2, max_length = 100)]
    pub(crate) full_name: String,
    /// The number's live code, instead of calling verify-otp first: checked and used up as
    /// verify-otp would (wrong tries count; a wrong one is a 401 with verify-otp's message).
    #[schema(pattern = "^[0-9]{6}$", example = "123456")]
    pub(crate) otp: Option<String>,
    /// What verify-otp answered. Without it (or `otp`), only a verification made from the same
    /// client address counts.
    #[schema(min_length = 1, max_length = 128)]
    pub(crate) verification_token: Option<String>,
}

/// The fields of [`LoginRequest`] (documentation only).
#[derive(Serialize, ToSchema)]
pub(crate) struct LoginFields {
    /// This or `email`; with both, this one is used.
    #[schema(pattern = r"^(\+[1-9][0-9]{7,14}|[0-9]{10})$", example = "9876543210")]
    pub(crate) mobile_number: Option<String>,
    #[schema(min_length = 3, max_length = 254)]
    pub(crate) email: Option<String>,
    #[schema(min_length = 1, max_length = 256)]
    pub(crate) password: String,
}

/// The login body: `password` and at least one of `mobile_number` and `email` that is not null
/// (a null is an absent field), which a struct's schema cannot say.
pub(crate) struct LoginRequest;

impl utoipa::PartialSchema for LoginRequest {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AllOfBuilder, AnyOfBuilder, ObjectBuilder, Type};
        let given = |name: &str| {
            ObjectBuilder::new()
                .property(name, ObjectBuilder::new().schema_type(Type::String))
                .required(name)
        };
        let schema = AllOfBuilder::new()
            .item(LoginFields::schema())
            .item(
                AnyOfBuilder::new()
                    .item(given("mobile_number"))
                    .item(given("email")),
            )
            .build();
        utoipa::openapi::RefOr::T(schema.into())
    }
}

impl ToSchema for LoginRequest {}

#[derive(Serialize, ToSchema)]
pub(crate) struct RefreshRequest {
    #[schema(min_length = 1, max_length = 4096)]
    pub(crate) refresh_token: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct LogoutRequest {
    pub(crate) refresh_token: Option<String>,
    /// Revoke every session of the user.
    pub(crate) all: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct PasswordRequirements {
    pub(crate) min_length: usize,
    pub(crate) requires_uppercase: bool,
    pub(crate) requires_lowercase: bool,
    pub(crate) requires_digit: bool,
    pub(crate) requires_special: bool,
    pub(crate) special_characters: String,
}
