//! Baidu's OAuth step (`/oauth/2.0/token`) mapped onto Facelens keys, without new state.
//!
//! Baidu SDKs trade an "API Key" and a "Secret Key" for an access token and then send only the
//! token. Facelens has one secret per key, so the Facelens key is the Secret Key and the key's
//! id (or name) is the API Key. The access token is stateless: `24.<mac>.<ttl>.<expiry>.<id>`,
//! where `mac` is an HMAC-SHA256 (truncated to 128 bits) of the kind, id, expiry and ttl keyed
//! by the key's *stored hash*. Why that key:
//! - every replica can check a token with one lookup by id, with no token table to share;
//! - the plaintext key is never stored or put in the token, and a token does not reveal it;
//! - deleting the key (the only way to replace a key's secret) revokes all its tokens at once,
//!   and banning or expiring it refuses them through the normal key check.
//!
//! The price (docs/baidu.md): a single token cannot be revoked before its 30 days are over; and,
//! unless `baidu_token_secret` is configured, whoever can read the key table can mint tokens,
//! which the hashed keys alone do not allow. With the secret (the same on every replica, kept
//! outside the database) the MAC key is HMAC(secret, stored hash), so a copy of the database
//! alone mints nothing.

use facelens_core::ErrorCode;
use facelens_store::secret::{ct_eq, hex};
use facelens_store::{ApiKey, KeyStatus, Store, UnixTime};
use sha2::{Digest, Sha256};

/// Lifetime of an access token, Baidu's (30 days).
pub const ACCESS_TTL: i64 = 2_592_000;
/// Lifetime of a refresh token, Baidu's (10 years).
pub const REFRESH_TTL: i64 = 315_360_000;
/// What the SDKs look for in `scope` before they use the token (without `brain_all_scope`
/// they fall back to signing requests with the Secret Key, which Facelens does not support).
pub const SCOPE: &str = "public brain_all_scope vis-faceverify_faceverify_v2";

/// Access or refresh token; Baidu's prefixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Access,
    Refresh,
}

impl Kind {
    fn prefix(self) -> &'static str {
        match self {
            Kind::Access => "24",
            Kind::Refresh => "25",
        }
    }

    fn ttl(self) -> i64 {
        match self {
            Kind::Access => ACCESS_TTL,
            Kind::Refresh => REFRESH_TTL,
        }
    }
}

/// HMAC-SHA256 (RFC 2104) over the workspace's sha2.
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&ipad)
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize()
        .into()
}

/// The MAC key of a key's tokens: its stored hash, or HMAC(secret, stored hash) when the
/// operator configured `baidu_token_secret`.
fn mac_key(stored_hash: &[u8], secret: Option<&[u8]>) -> Vec<u8> {
    match secret {
        Some(secret) => hmac_sha256(secret, stored_hash).to_vec(),
        None => stored_hash.to_vec(),
    }
}

fn mac(mac_key: &[u8], kind: Kind, key_id: i64, expires: UnixTime) -> String {
    let msg = format!(
        "facelens-baidu-token-v1\n{}\n{key_id}\n{expires}\n{}",
        kind.prefix(),
        kind.ttl()
    );
    hex(&hmac_sha256(mac_key, msg.as_bytes())[..16])
}

/// Mint a token of `kind` for the key with this id and stored hash (`secret`: the configured
/// `baidu_token_secret`, if any).
pub fn mint(
    stored_hash: &[u8],
    secret: Option<&[u8]>,
    kind: Kind,
    key_id: i64,
    now: UnixTime,
) -> String {
    let expires = now.saturating_add(kind.ttl());
    format!(
        "{}.{}.{}.{expires}.{key_id}",
        kind.prefix(),
        mac(&mac_key(stored_hash, secret), kind, key_id, expires),
        kind.ttl()
    )
}

/// The parts of a well-formed token (not yet checked).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Parsed {
    kind: Kind,
    mac: String,
    expires: UnixTime,
    key_id: i64,
}

fn parse(token: &str) -> Option<Parsed> {
    let parts: Vec<&str> = token.trim().split('.').collect();
    let &[prefix, mac, ttl, expires, id] = parts.as_slice() else {
        return None;
    };
    let kind = match prefix {
        "24" => Kind::Access,
        "25" => Kind::Refresh,
        _ => return None,
    };
    let digits = |s: &str| !s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit());
    if mac.len() != 32 || !mac.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    if !digits(ttl) || !digits(expires) || !digits(id) || ttl.parse::<i64>().ok()? != kind.ttl() {
        return None;
    }
    Some(Parsed {
        kind,
        mac: mac.to_ascii_lowercase(),
        expires: expires.parse().ok()?,
        key_id: id.parse().ok()?,
    })
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// Malformed, forged, of the other kind, or its key is gone (Baidu 110).
    Invalid,
    /// Genuine but past its expiry (Baidu 111).
    Expired,
    /// The store failed.
    Store(String),
}

/// Check a token of `kind` and return its key. The key's own standing (banned, expired,
/// allowed APIs, quotas) is for the caller's key check, as for a key sent directly.
pub async fn verify(
    store: &dyn Store,
    secret: Option<&[u8]>,
    token: &str,
    kind: Kind,
    now: UnixTime,
) -> Result<ApiKey, TokenError> {
    let p = parse(token).ok_or(TokenError::Invalid)?;
    if p.kind != kind {
        return Err(TokenError::Invalid);
    }
    let (key, stored) = store
        .key_with_hash(p.key_id)
        .await
        .map_err(|e| TokenError::Store(e.to_string()))?
        .ok_or(TokenError::Invalid)?;
    let want = mac(&mac_key(&stored, secret), kind, p.key_id, p.expires);
    if !ct_eq(want.as_bytes(), p.mac.as_bytes()) {
        return Err(TokenError::Invalid);
    }
    if now >= p.expires {
        return Err(TokenError::Expired);
    }
    Ok(key)
}

/// Why a key may not have a token now (the standing part of the key check).
pub fn standing(key: &ApiKey, now: UnixTime) -> Result<(), ErrorCode> {
    match key.status {
        KeyStatus::Banned => Err(ErrorCode::BannedKey),
        KeyStatus::Pending => Err(ErrorCode::KeyPending),
        KeyStatus::Active if key.is_expired(now) => Err(ErrorCode::KeyExpired),
        KeyStatus::Active => Ok(()),
    }
}

/// Whether `client_id` names this key: its id, or its name when it has one.
pub fn client_id_matches(key: &ApiKey, client_id: &str) -> bool {
    let id = client_id.trim();
    id == key.id.to_string() || (!key.name.is_empty() && id == key.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2.
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block.
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn tokens_parse_and_bind_their_fields() {
        let h = [7u8; 32];
        let t = mint(&h, None, Kind::Access, 42, 1_000);
        let p = parse(&t).expect("parses");
        assert_eq!(p.kind, Kind::Access);
        assert_eq!(p.key_id, 42);
        assert_eq!(p.expires, 1_000 + ACCESS_TTL);
        assert_eq!(p.mac, mac(&h, Kind::Access, 42, p.expires));
        // Another key, id, expiry or kind gives another MAC.
        assert_ne!(p.mac, mac(&[8u8; 32], Kind::Access, 42, p.expires));
        assert_ne!(p.mac, mac(&h, Kind::Access, 43, p.expires));
        assert_ne!(p.mac, mac(&h, Kind::Access, 42, p.expires + 1));
        assert_ne!(p.mac, mac(&h, Kind::Refresh, 42, p.expires));
        for bad in [
            "",
            "24.abc",
            &t.replacen("24.", "26.", 1),
            &t.replace(".2592000.", ".100."),
            &format!("{t}.1"),
            &t.replace(".42", ".x"),
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
        assert!(mint(&h, None, Kind::Refresh, 1, 0).starts_with("25."));
    }

    #[test]
    fn a_configured_secret_keys_the_mac() {
        let h = [7u8; 32];
        let secret: &[u8] = b"0123456789abcdef-replica-secret";
        let with = parse(&mint(&h, Some(secret), Kind::Access, 42, 1_000)).expect("parses");
        let without = parse(&mint(&h, None, Kind::Access, 42, 1_000)).expect("parses");
        // What a reader of the key table can compute (the stored hash alone) is not the MAC a
        // server with the secret checks, nor is one made with another secret.
        assert_ne!(with.mac, without.mac);
        assert_ne!(
            with.mac,
            mac(
                &mac_key(&h, Some(b"another secret.")),
                Kind::Access,
                42,
                with.expires
            )
        );
        assert_eq!(
            with.mac,
            mac(&mac_key(&h, Some(secret)), Kind::Access, 42, with.expires)
        );
    }
}
