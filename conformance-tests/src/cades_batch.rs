//! Several detached CAdES-B-B signatures in one `signatures/signDoc` answer: one
//! `SignatureObject` per hash of the request, in request order (the hashes of the first
//! `documentDigests` entry, then the next entry's), each verified against its own hash and
//! signAlgo — so an answer with the signatures swapped, one duplicated or one missing fails,
//! and says which.

use crate::cades::verify_detached;
use crate::verify::{Leaf, SignPlan};

/// One hash of the request: the signAlgo of its entry, and the digest.
pub type Expected<'a> = (SignPlan, &'a [u8]);

/// Check `objects` (the answer's `SignatureObject`s, decoded, in answer order) against
/// `expected` (the request's hashes in request order): as many, no two the same, and the i-th a
/// detached CAdES-B-B over the i-th hash ([`verify_detached`]) by the key of `leaf` /
/// `cert_der`. A summary on success.
pub fn verify_each_detached(
    leaf: &Leaf,
    cert_der: &[u8],
    expected: &[Expected<'_>],
    objects: &[Vec<u8>],
) -> Result<String, String> {
    if objects.len() != expected.len() {
        return Err(format!(
            "{} SignatureObject(s) for {} hashes: one per hash is required, in request order",
            objects.len(),
            expected.len()
        ));
    }
    for (i, object) in objects.iter().enumerate() {
        if let Some(j) = objects.iter().take(i).position(|o| o == object) {
            return Err(format!(
                "SignatureObject[{i}] is SignatureObject[{j}] again (a duplicated signature, \
                 hash {i} left unsigned)"
            ));
        }
    }
    let check = |(plan, digest): &Expected<'_>, object: &[u8]| {
        verify_detached(leaf, cert_der, plan, digest, object)
    };
    let mut first = String::new();
    for (i, (want, object)) in expected.iter().zip(objects).enumerate() {
        match check(want, object) {
            Ok(summary) if i == 0 => first = summary,
            Ok(_) => {}
            Err(e) => {
                // Is it another hash's signature (the answer out of request order)?
                let other = expected
                    .iter()
                    .enumerate()
                    .find(|(j, o)| *j != i && check(o, object).is_ok())
                    .map(|(j, _)| j);
                return Err(match other {
                    Some(j) => format!(
                        "SignatureObject[{i}] is the signature of hash {j}, not of hash {i}: the \
                         answer is not in request order"
                    ),
                    None => format!("SignatureObject[{i}] (hash {i}): {e}"),
                });
            }
        }
    }
    let algos: Vec<String> = expected.iter().map(|(p, _)| p.label.to_string()).collect();
    Ok(format!(
        "{} SignatureObjects in request order, each a detached CAdES-B-B over its own hash \
         ({}); the first: {first}",
        objects.len(),
        algos.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cades::fixtures::{cades, cades_attached, p256_plan};
    use crate::test_support::key_and_cert;
    use crate::verify::HashAlg;

    #[test]
    fn each_hash_its_own_signature_in_request_order() {
        let (sk, cert, leaf) = key_and_cert(7, 1);
        let plan = p256_plan(&leaf);
        let digests: Vec<Vec<u8>> = ["one", "two", "three"]
            .iter()
            .map(|d| HashAlg::Sha256.digest(d.as_bytes()))
            .collect();
        let expected: Vec<Expected<'_>> = digests.iter().map(|d| (plan, d.as_slice())).collect();
        let signed: Vec<Vec<u8>> = digests.iter().map(|d| cades(&sk, &cert, d)).collect();
        let check = |objects: &[Vec<u8>]| verify_each_detached(&leaf, &cert, &expected, objects);

        let ok = check(&signed).unwrap();
        assert!(
            ok.starts_with("3 SignatureObjects in request order")
                && ok.contains("message-digest = the authorized hash"),
            "{ok}"
        );
        // Swapped: the second and third in each other's place.
        let swapped = vec![signed[0].clone(), signed[2].clone(), signed[1].clone()];
        let e = check(&swapped).unwrap_err();
        assert!(
            e.contains("SignatureObject[1] is the signature of hash 2")
                && e.contains("not in request order"),
            "{e}"
        );
        // Duplicated: the first signature twice, the second hash unsigned.
        let duplicated = vec![signed[0].clone(), signed[0].clone(), signed[2].clone()];
        let e = check(&duplicated).unwrap_err();
        assert!(
            e.contains("SignatureObject[1] is SignatureObject[0] again"),
            "{e}"
        );
        // Missing one, and one too many.
        let e = check(&signed[..2]).unwrap_err();
        assert!(e.contains("2 SignatureObject(s) for 3 hashes"), "{e}");
        let mut more = signed.clone();
        more.push(cades(&sk, &cert, &HashAlg::Sha256.digest(b"four")));
        assert!(check(&more).unwrap_err().contains("4 SignatureObject(s)"));
        // A signature of no hash of the request (another digest altogether).
        let stranger = vec![
            signed[0].clone(),
            cades(&sk, &cert, &HashAlg::Sha256.digest(b"stranger")),
            signed[2].clone(),
        ];
        let e = check(&stranger).unwrap_err();
        assert!(
            e.contains("SignatureObject[1] (hash 1): message-digest is"),
            "{e}"
        );
        // One broken signature value.
        let mut broken = signed.clone();
        *broken[2].last_mut().unwrap() ^= 1;
        let e = check(&broken).unwrap_err();
        assert!(
            e.contains("SignatureObject[2] (hash 2)") && e.contains("does not verify"),
            "{e}"
        );
        // An attached signature among them.
        let mut attached = signed.clone();
        attached[0] = cades_attached(&sk, &cert, b"one");
        let e = check(&attached).unwrap_err();
        assert!(e.contains("must not carry the content"), "{e}");
    }
}
