//! Passwords: the contract's rules in its order, and argon2id hashing with OWASP's
//! parameters (19 MiB, 2 passes, 1 lane).

use std::sync::OnceLock;

use std::cell::RefCell;

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

pub(crate) const SPECIAL_CHARACTERS: &str = "!@#$%^&*()_+-=[]{}|;:,.<>?";
pub(crate) const MIN_LENGTH: usize = 8;

/// The first rule the password breaks, as the message the app shows.
pub(crate) fn check_rules(p: &str) -> Result<(), &'static str> {
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

fn params() -> Params {
    // The parameters are constants inside their documented ranges.
    Params::new(19 * 1024, 2, 1, Some(32)).unwrap_or_default()
}

thread_local! {
    /// The KDF's working memory, kept by each KDF thread and reused: allocated and freed per
    /// hash, glibc keeps several 19 MiB blocks per thread arena (about 60 MB each, measured).
    static BLOCKS: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// The raw hash of `password` with these parameters, into `out`.
fn raw_hash(
    argon: &Argon2<'_>,
    params: &Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> bool {
    BLOCKS.with(|cell| {
        let mut blocks = cell.borrow_mut();
        if blocks.len() != params.block_count() {
            *blocks = vec![Block::default(); params.block_count()];
        }
        argon
            .hash_password_into_with_memory(password, salt, out, &mut blocks[..])
            .is_ok()
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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

/// An argon2id hash in the PHC string format (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`).
pub(crate) fn hash(password: &str) -> Result<String, String> {
    let salt_bytes = crate::random::bytes::<16>();
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| e.to_string())?;
    let params = params();
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut out = [0u8; 32];
    if !on_kdf_pool(|| raw_hash(&argon, &params, password.as_bytes(), &salt_bytes, &mut out)) {
        return Err("argon2 failed".into());
    }
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| e.to_string())?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| e.to_string())?),
    };
    Ok(phc.to_string())
}

/// Checks a password against a stored PHC string, with the parameters written in it.
pub(crate) fn verify(password: &str, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    let (Ok(algorithm), Ok(params), Some(salt), Some(expected)) = (
        Algorithm::try_from(parsed.algorithm),
        Params::try_from(&parsed),
        parsed.salt,
        parsed.hash,
    ) else {
        return false;
    };
    let version = parsed
        .version
        .and_then(|v| Version::try_from(v).ok())
        .unwrap_or(Version::V0x13);
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let argon = Argon2::new(algorithm, version, params.clone());
    let mut out = vec![0u8; expected.len()];
    on_kdf_pool(|| raw_hash(&argon, &params, password.as_bytes(), salt, &mut out))
        && constant_time_eq(&out, expected.as_bytes())
}

/// Checks a password against a hash nobody's password matches, so a login for an unknown
/// user takes as long as one for a known user.
pub(crate) fn verify_dummy(password: &str) {
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
    fn a_hash_from_the_library_verifies_and_ours_verifies_there() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params());
        let salt = SaltString::encode_b64(b"0123456789abcdef").expect("salt");
        let theirs = argon
            .hash_password(b"Secret#123", &salt)
            .expect("hash")
            .to_string();
        assert!(verify("Secret#123", &theirs));
        assert!(!verify("Secret#12", &theirs));
        let ours = hash("Secret#123").expect("hash");
        let parsed = PasswordHash::new(&ours).expect("phc");
        assert!(argon.verify_password(b"Secret#123", &parsed).is_ok());
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
