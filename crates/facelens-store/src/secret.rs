//! API key secrets: generation, hashing and comparison.
//!
//! **Why only a hash is stored.** A leaked database (a backup, a replica, a support dump) must
//! not hand out working keys. The key is shown once, at creation, and only `SHA-256(key)` is
//! kept. A slow password hash (argon2, bcrypt) is unnecessary here: keys are 128 random bits
//! from the operating system's CSPRNG, so there is nothing to brute-force, and a fast
//! deterministic hash lets the store find a key by an indexed equality lookup on every request.
//!
//! **Why constant time.** The lookup is by hash, so timing of the index walk depends only on the
//! hash of what the caller sent, which tells an attacker nothing about other keys. The final
//! byte comparison of the stored and computed hashes (and of a key's openid) is still done in
//! constant time, so no code path compares a secret with an early exit.

use sha2::{Digest, Sha256};

use crate::error::StoreError;

/// Length of an API key: 32 lowercase hex characters (128 bits), like Juhe's keys.
pub const KEY_LEN: usize = 32;

/// A freshly generated API key. Shown once; only its hash is stored.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(String);

impl SecretKey {
    /// A new random key from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, StoreError> {
        let mut bytes = [0u8; KEY_LEN / 2];
        getrandom::fill(&mut bytes)
            .map_err(|e| StoreError::invalid(format!("the OS random generator failed: {e}")))?;
        Ok(SecretKey(hex(&bytes)))
    }

    /// The key text (32 lowercase hex characters).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// Normalise a key as sent by a client: trimmed, and lowercased if it is 32 hex digits.
/// Anything else cannot be a key of ours; `None` saves a database round trip.
pub fn normalize_key(key: &str) -> Option<String> {
    let key = key.trim();
    if key.len() == KEY_LEN && key.bytes().all(|b| b.is_ascii_hexdigit()) {
        Some(key.to_ascii_lowercase())
    } else {
        None
    }
}

/// SHA-256 of the normalised key.
pub fn hash_key(normalized: &str) -> [u8; 32] {
    Sha256::digest(normalized.as_bytes()).into()
}

/// A short, non-secret hint shown by the admin CLI to tell keys apart: the first 4 hex digits
/// (16 of the 128 bits; the remaining 112 bits still make guessing hopeless).
pub fn key_hint(normalized: &str) -> String {
    normalized.chars().take(4).collect()
}

/// Compare two byte strings in time that depends only on their lengths.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_look_like_juhe_keys() {
        let a = SecretKey::generate().expect("rng");
        let b = SecretKey::generate().expect("rng");
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 32);
        assert_eq!(normalize_key(a.expose()).as_deref(), Some(a.expose()));
        assert!(!format!("{a:?}").contains(a.expose()));
    }

    #[test]
    fn normalisation_and_hash() {
        let k = "0123456789ABCDEF0123456789abcdef";
        let n = normalize_key(&format!(" {k} ")).expect("valid");
        assert_eq!(n, k.to_ascii_lowercase());
        assert_eq!(normalize_key("xyz"), None);
        assert_eq!(normalize_key("g123456789abcdef0123456789abcdef"), None);
        assert_eq!(hash_key(&n), hash_key(&k.to_ascii_lowercase()));
        assert_eq!(
            hex(&hash_key("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(key_hint(&n), "0123");
    }

    #[test]
    fn constant_time_eq() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(ct_eq(b"", b""));
    }
}
