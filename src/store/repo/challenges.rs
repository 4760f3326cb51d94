//! Online OTP challenges: one live code per credential, stored as a keyed hash, with an expiry
//! and a try limit. Checking a code spends a try and a correct code deletes the challenge, in
//! one transaction.

use diesel::prelude::*;
use subtle::ConstantTimeEq;

use crate::store::schema::otp_challenges;
use crate::store::{DbConn, StoreError};

/// Replace the credential's challenge with a new one.
pub fn put(
    conn: &mut DbConn,
    credential_id: &str,
    code_hash: &[u8],
    expires_at: i64,
    tries: i32,
) -> Result<(), StoreError> {
    conn.write_tx(|c| {
        diesel::delete(otp_challenges::table.find(credential_id)).execute(c)?;
        diesel::insert_into(otp_challenges::table)
            .values((
                otp_challenges::credential_id.eq(credential_id),
                otp_challenges::code_hash.eq(code_hash),
                otp_challenges::expires_at.eq(expires_at),
                otp_challenges::tries_left.eq(tries),
            ))
            .execute(c)?;
        Ok(())
    })
}

/// Whether the credential has a code pending: not expired, tries left.
pub fn is_pending(conn: &mut DbConn, credential_id: &str, now: i64) -> Result<bool, StoreError> {
    let n: i64 = otp_challenges::table
        .find(credential_id)
        .filter(otp_challenges::expires_at.gt(now))
        .filter(otp_challenges::tries_left.gt(0))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// Spend one try on the live challenge; true when `code_hash` matches (the challenge is then
/// gone, so a code works once).
pub fn redeem(
    conn: &mut DbConn,
    credential_id: &str,
    code_hash: &[u8],
    now: i64,
) -> Result<bool, StoreError> {
    conn.write_tx(|c| {
        let row: Option<(Vec<u8>, i64, i32)> = otp_challenges::table
            .find(credential_id)
            .select((
                otp_challenges::code_hash,
                otp_challenges::expires_at,
                otp_challenges::tries_left,
            ))
            .get_result(c)
            .optional()?;
        let Some((stored, expires_at, tries_left)) = row else {
            return Ok(false);
        };
        if expires_at <= now || tries_left <= 0 {
            diesel::delete(otp_challenges::table.find(credential_id)).execute(c)?;
            return Ok(false);
        }
        if bool::from(stored.ct_eq(code_hash)) {
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
        store.with(|c| put(c, "c1", b"good", 100, 2)).unwrap();
        assert!(!store.with(|c| redeem(c, "c1", b"bad", 10)).unwrap());
        assert!(store.with(|c| redeem(c, "c1", b"good", 10)).unwrap());
        assert!(
            !store.with(|c| redeem(c, "c1", b"good", 10)).unwrap(),
            "single use"
        );
        store.with(|c| put(c, "c1", b"good", 100, 2)).unwrap();
        assert!(
            !store.with(|c| redeem(c, "c1", b"good", 100)).unwrap(),
            "expired"
        );
        store.with(|c| put(c, "c1", b"good", 100, 2)).unwrap();
        assert!(!store.with(|c| redeem(c, "c1", b"x", 10)).unwrap());
        assert!(!store.with(|c| redeem(c, "c1", b"y", 10)).unwrap());
        assert!(
            !store.with(|c| redeem(c, "c1", b"good", 10)).unwrap(),
            "no tries left"
        );
    }
}
