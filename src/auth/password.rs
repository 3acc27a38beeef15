//! Passwords: the contract's rules in its order, and argon2id hashing with OWASP's
//! parameters (19 MiB, 2 passes, 1 lane).

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

pub const SPECIAL_CHARACTERS: &str = "!@#$%^&*()_+-=[]{}|;:,.<>?";
pub const MIN_LENGTH: usize = 8;

/// The first rule the password breaks, as the message the app shows.
pub fn check_rules(p: &str) -> Result<(), &'static str> {
    if p.chars().count() < MIN_LENGTH {
        return Err("Password must be at least 8 characters");
    }
    if !p.chars().any(|c| c.is_ascii_uppercase()) {
        return Err("Password must contain at least one uppercase letter");
    }
    if !p.chars().any(|c| c.is_ascii_lowercase()) {
        return Err("Password must contain at least one lowercase letter");
    }
    if !p.chars().any(|c| c.is_ascii_digit()) {
        return Err("Password must contain at least one digit");
    }
    if !p.chars().any(|c| SPECIAL_CHARACTERS.contains(c)) {
        return Err("Password must contain at least one special character");
    }
    Ok(())
}

fn hasher() -> Argon2<'static> {
    // The parameters are constants inside their documented ranges.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// The KDF runs on a small pool with one thread per core. It bounds the CPU that logins can
/// take from everything else, and the memory: each hash needs a 19 MiB block, which the
/// allocator keeps per thread once freed, so hashing on every handler thread would leave
/// hundreds of megabytes behind after a burst of sign-ups.
fn kdf_pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads.clamp(1, 4))
            .thread_name(|i| format!("kdf-{i}"))
            .build()
            .ok()
    })
    .as_ref()
}

fn on_kdf_pool<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    match kdf_pool() {
        Some(pool) => pool.install(f),
        None => f(),
    }
}

pub fn hash(password: &str) -> Result<String, String> {
    let salt_bytes = crate::random::bytes::<16>();
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| e.to_string())?;
    on_kdf_pool(|| {
        hasher()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| e.to_string())
    })
}

pub fn verify(password: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(parsed) => on_kdf_pool(|| {
            hasher()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        }),
        Err(_) => false,
    }
}

/// Checks a password against a hash nobody's password matches, so a login for an unknown
/// user takes as long as one for a known user.
pub fn verify_dummy(password: &str) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let stored = DUMMY.get_or_init(|| hash("not-a-real-password-Aa1!").unwrap_or_default());
    let _ = verify(password, stored);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_in_contract_order() {
        assert_eq!(
            check_rules("Aa1!"),
            Err("Password must be at least 8 characters")
        );
        assert_eq!(
            check_rules("aaaaaaa1!"),
            Err("Password must contain at least one uppercase letter")
        );
        assert_eq!(
            check_rules("AAAAAAA1!"),
            Err("Password must contain at least one lowercase letter")
        );
        assert_eq!(
            check_rules("Aaaaaaaa!"),
            Err("Password must contain at least one digit")
        );
        assert_eq!(
            check_rules("Aaaaaaaa1"),
            Err("Password must contain at least one special character")
        );
        assert_eq!(check_rules("Secret#123"), Ok(()));
    }

    #[test]
    fn hashes_verify_and_are_salted() {
        let a = hash("Secret#123").expect("hash");
        let b = hash("Secret#123").expect("hash");
        assert_ne!(a, b);
        assert!(a.starts_with("$argon2id$"));
        assert!(verify("Secret#123", &a));
        assert!(!verify("Secret#124", &a));
        assert!(!verify("Secret#123", "garbage"));
    }
}
