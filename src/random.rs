//! The one source of randomness: the operating system's CSPRNG.

/// Fills a buffer from the OS. If the OS cannot give randomness the process cannot issue
/// safe codes or tokens at all, so this is the one place that stops it.
pub fn fill(buf: &mut [u8]) {
    if let Err(e) = getrandom::fill(buf) {
        log::error!("the operating system refused randomness: {e}");
        std::process::abort();
    }
}

pub(crate) fn bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    fill(&mut b);
    b
}

pub fn hex(n_bytes: usize) -> String {
    let mut b = vec![0u8; n_bytes];
    fill(&mut b);
    to_hex(&b)
}

pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// A random (v4) UUID string: every id we hand out.
pub(crate) fn uuid() -> String {
    uuid::Builder::from_random_bytes(bytes::<16>())
        .into_uuid()
        .to_string()
}

/// A UUID version 7: the current Unix time in milliseconds, then 74 random bits. Rows keyed
/// by it are inserted in key order, at the right edge of the primary-key index, instead of
/// on a random page of it: fewer pages written per commit and per checkpoint.
pub(crate) fn uuid_v7(unix_millis: u64) -> String {
    uuid::Builder::from_unix_timestamp_millis(unix_millis, &bytes::<10>())
        .into_uuid()
        .to_string()
}

/// A number in 0..bound without modulo bias.
pub(crate) fn below(bound: u32) -> u32 {
    let zone = u32::MAX - (u32::MAX % bound);
    loop {
        let v = u32::from_le_bytes(bytes::<4>());
        if v < zone {
            return v % bound;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_two_lowercase_digits_a_byte() {
        assert_eq!(to_hex(&[0x00, 0x0f, 0xa5, 0xff, 0x10]), "000fa5ff10");
        assert_eq!(to_hex(&[]), "");
    }

    #[test]
    fn uuids_are_v4_and_distinct() {
        let a = uuid();
        let b = uuid();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(a.as_bytes()[14], b'4', "version nibble");
    }

    #[test]
    fn below_stays_in_range() {
        for _ in 0..1000 {
            assert!(below(10) < 10);
        }
    }
}
