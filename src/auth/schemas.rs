//! Bodies of `/api/v1/auth/*` that exist for the OpenAPI document only: each handler parses
//! its request field by field (`Fields`), so every problem comes back in one 422.

use serde::Serialize;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct MobileRequest {
    /// 10 digits, or E.164 (`+919876543210`).
    #[schema(pattern = r"^(\+[1-9][0-9]{7,14}|[0-9]{10})$", example = "9876543210")]
    pub mobile_number: String,
}

#[derive(Serialize, ToSchema)]
pub struct VerifyOtpRequest {
    #[schema(pattern = r"^(\+[1-9][0-9]{7,14}|[0-9]{10})$", example = "9876543210")]
    pub mobile_number: String,
    /// Six digits (a 6-digit number is accepted too).
    #[schema(pattern = "^[0-9]{6}$", example = "123456")]
    pub otp: String,
}

#[derive(Serialize, ToSchema)]
pub struct RegisterRequest {
    /// Either this or `email` (or both).
    #[schema(pattern = r"^(\+[1-9][0-9]{7,14}|[0-9]{10})$", example = "9876543210")]
    pub mobile_number: Option<String>,
    #[schema(min_length = 3, max_length = 254, example = "asha@example.com")]
    pub email: Option<String>,
    /// The rules of `/password-requirements`; breaking one is a 400, not a 422. May be left
    /// out with a valid `otp`: the account then signs in by OTP only.
    #[schema(min_length = 1, max_length = 256)]
    pub password: Option<String>,
    #[schema(min_length = 2, max_length = 100)]
    pub full_name: String,
    /// The number's live code, instead of calling verify-otp first: checked and used up as
    /// verify-otp would (wrong tries count; a wrong one is a 401 with verify-otp's message).
    #[schema(pattern = "^[0-9]{6}$", example = "123456")]
    pub otp: Option<String>,
    /// What verify-otp answered. Without it (or `otp`), only a verification made from the same
    /// client address counts.
    #[schema(min_length = 1, max_length = 128)]
    pub verification_token: Option<String>,
}

/// The fields of [`LoginRequest`] (documentation only).
#[derive(Serialize, ToSchema)]
pub struct LoginFields {
    /// This or `email`; with both, this one is used.
    #[schema(pattern = r"^(\+[1-9][0-9]{7,14}|[0-9]{10})$", example = "9876543210")]
    pub mobile_number: Option<String>,
    #[schema(min_length = 3, max_length = 254)]
    pub email: Option<String>,
    #[schema(min_length = 1, max_length = 256)]
    pub password: String,
}

/// The login body: `password` and at least one of `mobile_number` and `email` that is not null
/// (a null is an absent field), which a struct's schema cannot say.
pub struct LoginRequest;

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
pub struct RefreshRequest {
    #[schema(min_length = 1, max_length = 4096)]
    pub refresh_token: String,
}

#[derive(Serialize, ToSchema)]
pub struct LogoutRequest {
    pub refresh_token: Option<String>,
    /// Revoke every session of the user.
    pub all: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub struct PasswordRequirements {
    pub min_length: usize,
    pub requires_uppercase: bool,
    pub requires_lowercase: bool,
    pub requires_digit: bool,
    pub requires_special: bool,
    pub special_characters: String,
}
