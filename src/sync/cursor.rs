//! The opaque cursor: `<epoch>.<seq>.<mac>`, where the MAC (HMAC-SHA-256 under a key derived
//! from the JWT secret, cut to 12 bytes) covers the user, the epoch and the value. So a cursor
//! cannot be forged or carried to another account: a bad MAC is a malformed cursor (422), like
//! any other garbage. A genuine cursor of another epoch (before a restore) is 410.

use super::Keys;
use crate::error::{Error, Result};

const MAC_BYTES: usize = 12;

fn mac(keys: &Keys, user: &str, epoch: &str, seq: i64) -> String {
    let msg = format!("{user}\n{epoch}\n{seq}");
    let full = hmac_sha256::HMAC::mac(msg.as_bytes(), keys.mac);
    crate::random::to_hex(&full[..MAC_BYTES])
}

/// The cursor for `seq` of this user in the current epoch.
pub(crate) fn encode(keys: &Keys, user: &str, seq: i64) -> String {
    format!("{}.{seq}.{}", keys.epoch, mac(keys, user, &keys.epoch, seq))
}

pub(crate) fn malformed() -> Error {
    Error::validation(
        &["query", "cursor"],
        "Invalid cursor; sync again without one",
        "value_error",
    )
}

pub(crate) fn reset() -> Error {
    Error::Gone {
        code: "cursor_reset",
        detail: "The cursor is not valid on this server any more; sync again without one".into(),
    }
}

/// The counter value a cursor stands for, once its MAC checks out and its epoch is ours.
pub(crate) fn decode(keys: &Keys, user: &str, cursor: &str) -> Result<i64> {
    let mut parts = cursor.split('.');
    let (Some(epoch), Some(seq), Some(sent), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed());
    };
    // Only the form `encode` writes (no sign, no leading zero), so a valid cursor is exactly
    // `encode`'s output and may be sent back as it came.
    let canonical =
        seq.bytes().all(|b| b.is_ascii_digit()) && (seq == "0" || !seq.starts_with('0'));
    let seq: i64 = match seq.parse() {
        Ok(n) if canonical => n,
        _ => return Err(malformed()),
    };
    let want = mac(keys, user, epoch, seq);
    if !constant_eq(want.as_bytes(), sent.as_bytes()) {
        return Err(malformed());
    }
    if epoch != keys.epoch {
        return Err(reset());
    }
    Ok(seq)
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(epoch: &str) -> Keys {
        Keys {
            epoch: epoch.into(),
            mac: [7; 32],
        }
    }

    #[test]
    fn a_cursor_reads_back_only_for_its_user_and_epoch() {
        let k = keys("00112233aabbccdd");
        let c = encode(&k, "u1", 42);
        assert_eq!(decode(&k, "u1", &c).ok(), Some(42));
        assert_eq!(decode(&k, "u1", &encode(&k, "u1", 0)).ok(), Some(0));
        assert_eq!(decode(&k, "u2", &c).err().map(|e| e.status()), Some(422));
        let later = keys("ffffffffffffffff");
        assert_eq!(
            decode(&later, "u1", &c).err().map(|e| e.code()),
            Some("cursor_reset")
        );
        for bad in [
            "",
            "x",
            "a.b.c",
            &c.replace(".42.", ".43."),
            &format!("{c}.1"),
            &c.replace(".42.", ".042."),
            &c.replace(".42.", ".+42."),
            "e.-1.m",
        ] {
            assert_eq!(
                decode(&k, "u1", bad).err().map(|e| e.status()),
                Some(422),
                "{bad}"
            );
        }
    }
}
