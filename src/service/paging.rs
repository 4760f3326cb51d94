//! Paging of `credentials/list`: the CSC v1 `maxResults` / `pageToken` / `nextPageToken` fields,
//! which Quill serves on both `/csc/v1` and `/csc/v2`. A page holds at most `MAX_PAGE`
//! credentials (also without `maxResults`); `nextPageToken` is present exactly when more follow.
//!
//! The page token is opaque to clients: base64url (no padding) of
//! `version (1 byte) ‖ created_at (8 bytes, big-endian) ‖ credential id ‖ tag (8 bytes)`, where
//! the (created_at, id) pair is the last credential of the page (the keyset position the next
//! page starts after) and `tag = SHA-256("quill-page-token/1" ‖ user id ‖ 0 ‖ the bytes before
//! it)[..8]`. The tag catches corrupted or hand-made tokens and ties a token to the user it was
//! issued to: another user's token is refused like garbage. It is not a secret-keyed MAC and
//! need not be: a token only says where to start, and every page query is scoped to the
//! caller's own credentials.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::error::CscError;
use crate::store::repo::credentials::Cursor;

/// Most credentials on one page, and the page size without `maxResults`.
pub const MAX_PAGE: u32 = 1000;

const VERSION: u8 = 1;
const TAG_LEN: usize = 8;
/// Longest credential id a token may carry (Quill's are 32 hex characters).
const MAX_ID_LEN: usize = 64;
/// Longest token accepted (a well-formed one is at most ~110 characters).
const MAX_TOKEN_LEN: usize = 256;

fn invalid() -> CscError {
    CscError::invalid("Invalid parameter pageToken")
}

fn tag(user_id: &str, body: &[u8]) -> [u8; TAG_LEN] {
    let mut h = Sha256::new();
    h.update(b"quill-page-token/1");
    h.update(user_id.as_bytes());
    h.update([0u8]);
    h.update(body);
    let digest = h.finalize();
    let mut out = [0u8; TAG_LEN];
    for (o, d) in out.iter_mut().zip(digest.iter()) {
        *o = *d;
    }
    out
}

/// The token for "the page after `cursor`", for `user_id`.
pub fn encode(user_id: &str, cursor: &Cursor) -> String {
    let mut body = Vec::with_capacity(1 + 8 + cursor.id.len() + TAG_LEN);
    body.push(VERSION);
    body.extend_from_slice(&cursor.created_at.to_be_bytes());
    body.extend_from_slice(cursor.id.as_bytes());
    let t = tag(user_id, &body);
    body.extend_from_slice(&t);
    URL_SAFE_NO_PAD.encode(body)
}

/// Read a token issued to `user_id`; anything else is `Invalid parameter pageToken`.
pub fn decode(user_id: &str, token: &str) -> Result<Cursor, CscError> {
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return Err(invalid());
    }
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let split = bytes.len().checked_sub(TAG_LEN).ok_or_else(invalid)?;
    let (body, got) = bytes.split_at(split);
    if !bool::from(subtle::ConstantTimeEq::ct_eq(&tag(user_id, body)[..], got)) {
        return Err(invalid());
    }
    let (version, rest) = body.split_first().ok_or_else(invalid)?;
    if *version != VERSION || rest.len() < 9 {
        return Err(invalid());
    }
    let (at, id) = rest.split_at(8);
    let at: [u8; 8] = at.try_into().map_err(|_| invalid())?;
    let id = std::str::from_utf8(id).map_err(|_| invalid())?;
    if id.len() > MAX_ID_LEN || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(invalid());
    }
    Ok(Cursor {
        created_at: i64::from_be_bytes(at),
        id: id.to_string(),
    })
}

/// `maxResults` as sent: absent or null → `MAX_PAGE`; otherwise an integer from 1 to
/// `MAX_PAGE` (an integral JSON number such as `10.0` counts, as JSON Schema says).
pub fn max_results(value: Option<&serde_json::Value>) -> Result<u32, CscError> {
    let bad = || {
        CscError::invalid(format!(
            "Invalid parameter maxResults: an integer from 1 to {MAX_PAGE}"
        ))
    };
    let n = match value {
        None | Some(serde_json::Value::Null) => return Ok(MAX_PAGE),
        Some(serde_json::Value::Number(n)) => n
            .as_u64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && (1.0..=f64::from(MAX_PAGE)).contains(f))
                    .map(|f| f as u64)
            })
            .ok_or_else(bad)?,
        Some(_) => return Err(bad()),
    };
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=MAX_PAGE).contains(n))
        .ok_or_else(bad)
}

/// `pageToken` as sent: absent or null → the first page; otherwise a string issued to this user.
pub fn page_token(
    user_id: &str,
    value: Option<&serde_json::Value>,
) -> Result<Option<Cursor>, CscError> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => decode(user_id, s).map(Some),
        Some(_) => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cursor() -> Cursor {
        Cursor {
            created_at: 1_790_000_000,
            id: "0123456789abcdef0123456789abcdef".into(),
        }
    }

    #[test]
    fn tokens_round_trip_and_are_url_safe() {
        for c in [
            cursor(),
            Cursor {
                created_at: -5,
                id: "a".into(),
            },
            Cursor {
                created_at: i64::MAX,
                id: "Z9".repeat(32),
            },
        ] {
            let t = encode("user-1", &c);
            assert!(
                t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{t}"
            );
            assert_eq!(decode("user-1", &t).unwrap(), c);
        }
    }

    #[test]
    fn garbage_tampered_and_foreign_tokens_are_refused() {
        let t = encode("user-1", &cursor());
        let refused = |s: &str| {
            let e = decode("user-1", s).unwrap_err();
            assert_eq!(e.to_string(), "Invalid parameter pageToken", "{s}");
        };
        refused("");
        refused("garbage");
        refused("!!!!");
        refused(&"A".repeat(300));
        refused(&t[..t.len() - 2]);
        // Another user's token.
        assert!(decode("user-2", &t).is_err());
        // Any flipped byte breaks the tag.
        let bytes = URL_SAFE_NO_PAD.decode(&t).unwrap();
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            refused(&URL_SAFE_NO_PAD.encode(&b));
        }
        // A correct tag over a body that is not a cursor (wrong version, short, bad id).
        let forge = |body: &[u8]| {
            let mut b = body.to_vec();
            b.extend_from_slice(&tag("user-1", body));
            URL_SAFE_NO_PAD.encode(b)
        };
        let mut v2 = vec![2u8];
        v2.extend_from_slice(&7i64.to_be_bytes());
        v2.extend_from_slice(b"abc");
        refused(&forge(&v2));
        refused(&forge(&[1u8, 0, 0]));
        let mut no_id = vec![1u8];
        no_id.extend_from_slice(&7i64.to_be_bytes());
        refused(&forge(&no_id));
        let mut bad_id = no_id.clone();
        bad_id.extend_from_slice(b"x'; DROP");
        refused(&forge(&bad_id));
        let mut good = no_id;
        good.extend_from_slice(b"abc");
        assert_eq!(decode("user-1", &forge(&good)).unwrap().id, "abc");
    }

    #[test]
    fn max_results_bounds_and_types() {
        assert_eq!(max_results(None).unwrap(), MAX_PAGE);
        assert_eq!(max_results(Some(&json!(null))).unwrap(), MAX_PAGE);
        assert_eq!(max_results(Some(&json!(1))).unwrap(), 1);
        assert_eq!(max_results(Some(&json!(1000))).unwrap(), 1000);
        assert_eq!(max_results(Some(&json!(10.0))).unwrap(), 10);
        for bad in [
            json!(0),
            json!(-1),
            json!(1001),
            json!(u64::MAX),
            json!(2.5),
            json!(1e300),
            json!("10"),
            json!(true),
            json!([10]),
            json!({}),
        ] {
            let e = max_results(Some(&bad)).unwrap_err();
            assert_eq!(
                e.to_string(),
                "Invalid parameter maxResults: an integer from 1 to 1000",
                "{bad}"
            );
        }
    }

    #[test]
    fn page_token_types() {
        assert_eq!(page_token("u", None).unwrap(), None);
        assert_eq!(page_token("u", Some(&json!(null))).unwrap(), None);
        let t = encode("u", &cursor());
        assert_eq!(page_token("u", Some(&json!(t))).unwrap(), Some(cursor()));
        assert!(page_token("u", Some(&json!(5))).is_err());
        assert!(page_token("u", Some(&json!(["x"]))).is_err());
    }
}
