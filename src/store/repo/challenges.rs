//! Online OTP challenges: one live code per credential, stored sealed by the token (so that a
//! copy of the database does not give it away), with an expiry and a try limit. A code is
//! judged outside any transaction (unsealing is a token call); the judgement is then applied in
//! one transaction, to the same sealed value only: a wrong code spends a try, a correct one
//! deletes the challenge, so a code works once.

use diesel::prelude::*;

use crate::store::schema::otp_challenges;
use crate::store::{DbConn, StoreError};

/// Replace the credential's challenge with a new one.
pub fn put(
    conn: &mut DbConn,
    credential_id: &str,
    code_sealed: &[u8],
    expires_at: i64,
    tries: i32,
) -> Result<(), StoreError> {
    conn.write_tx(|c| {
        diesel::delete(otp_challenges::table.find(credential_id)).execute(c)?;
        diesel::insert_into(otp_challenges::table)
            .values((
                otp_challenges::credential_id.eq(credential_id),
                otp_challenges::code_sealed.eq(code_sealed),
                otp_challenges::expires_at.eq(expires_at),
                otp_challenges::tries_left.eq(tries),
            ))
            .execute(c)?;
        Ok(())
    })
}

/// The sealed code of the credential's live challenge (not expired, tries left).
pub fn live_code(
    conn: &mut DbConn,
    credential_id: &str,
    now: i64,
) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(otp_challenges::table
        .find(credential_id)
        .filter(otp_challenges::expires_at.gt(now))
        .filter(otp_challenges::tries_left.gt(0))
        .select(otp_challenges::code_sealed)
        .get_result(conn)
        .optional()?)
}

/// Whether the credential has a code pending: not expired, tries left.
pub fn is_pending(conn: &mut DbConn, credential_id: &str, now: i64) -> Result<bool, StoreError> {
    Ok(live_code(conn, credential_id, now)?.is_some())
}

/// Apply the judgement of a code against `judged`, the sealed code [`live_code`] returned:
/// true when it `matched` and the challenge was still live and still that code (it is then
/// gone); a wrong code spends one try. A challenge replaced or used up meanwhile is left as it
/// is, and the answer is false.
pub fn redeem(
    conn: &mut DbConn,
    credential_id: &str,
    judged: &[u8],
    matched: bool,
    now: i64,
) -> Result<bool, StoreError> {
    conn.write_tx(|c| {
        let row: Option<(Vec<u8>, i64, i32)> = otp_challenges::table
            .find(credential_id)
            .select((
                otp_challenges::code_sealed,
                otp_challenges::expires_at,
                otp_challenges::tries_left,
            ))
            .get_result(c)
            .optional()?;
        let Some((stored, expires_at, tries_left)) = row else {
            return Ok(false);
        };
        if stored != judged {
            return Ok(false);
        }
        if expires_at <= now || tries_left <= 0 {
            diesel::delete(otp_challenges::table.find(credential_id)).execute(c)?;
            return Ok(false);
        }
        if matched {
            diesel::delete(otp_challenges::table.find(credential_id)).execute(c)?;
            return Ok(true);
        }
        diesel::update(otp_challenges::table.find(credential_id))
            .set(otp_challenges::tries_left.eq(tries_left - 1))
            .execute(c)?;
        Ok(false)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::repo::credentials::tests::{sample, user};
    use crate::store::repo::{credentials, users};
    use crate::store::tests::temp_store;

    #[test]
    fn single_use_expiry_and_tries() {
        let (_d, store) = temp_store();
        store.with(|c| users::insert(c, &user("u1"))).unwrap();
        store
            .with(|c| credentials::insert(c, &sample("c1", "u1")))
            .unwrap();
        let live = |now| store.with(|c| live_code(c, "c1", now)).unwrap();
        let redeem = |judged: &[u8], matched, now| {
            store
                .with(|c| redeem(c, "c1", judged, matched, now))
                .unwrap()
        };
        assert_eq!(live(10), None);
        store.with(|c| put(c, "c1", b"sealed-1", 100, 2)).unwrap();
        assert_eq!(live(10).as_deref(), Some(&b"sealed-1"[..]));
        assert!(!redeem(b"sealed-1", false, 10), "a wrong code");
        assert!(redeem(b"sealed-1", true, 10));
        assert!(!redeem(b"sealed-1", true, 10), "single use");
        assert_eq!(live(10), None);
        store.with(|c| put(c, "c1", b"sealed-2", 100, 2)).unwrap();
        assert_eq!(live(100), None);
        assert!(!redeem(b"sealed-2", true, 100), "expired");
        store.with(|c| put(c, "c1", b"sealed-3", 100, 2)).unwrap();
        // judged against a code that a new one replaced: nothing spent, nothing granted
        assert!(!redeem(b"sealed-2", true, 10));
        assert!(!redeem(b"sealed-3", false, 10));
        assert!(!redeem(b"sealed-3", false, 10));
        assert_eq!(live(10), None, "no tries left");
        assert!(!redeem(b"sealed-3", true, 10), "no tries left");
    }
}
