//! Unit tests of the signDoc checks: which rows a credential's main SAD pays for
//! ([`doc_plan`](super::doc_plan)), and the verdicts on canned answers of the detached-document
//! and several-entries rows ([`signdoc_batch`](super::signdoc_batch)).

use super::tests::{config, p256_plans, resp, suite};
use super::*;

#[test]
fn sign_doc_checks_need_the_method_and_cades() {
    let cfg = config();
    let mut s = suite(&cfg);
    assert!(s.doc_unsupported().unwrap().contains("signatures/signDoc"));
    s.methods = vec!["signatures/signDoc".into()];
    assert_eq!(s.doc_unsupported(), None, "info says nothing of formats");
    s.signature_formats = Some(vec!["P".into()]);
    assert!(s.doc_unsupported().unwrap().contains("CAdES"));
    s.signature_formats = Some(vec!["P".into(), "C".into()]);
    s.conformance_levels = Some(vec!["AdES-B-T".into()]);
    assert!(s.doc_unsupported().unwrap().contains("Ades-B-B"));
    s.conformance_levels = Some(vec!["AdES-B-B".into()]);
    assert_eq!(
        s.doc_unsupported(),
        None,
        "levels compare case-insensitively"
    );
    // A signDoc refusal must not carry a signature either.
    let signed = resp(
        400,
        json!({"error": "invalid_request", "SignatureObject": ["MA=="]}),
    );
    assert!(s.expect_client_error(&signed).is_err());
    assert!(s.expect_error(&signed, &[400], INVALID_REQUEST).is_err());
}

/// The rows `skipped` leaves out, in order.
fn rows_of(skipped: &[(&'static str, String)]) -> Vec<&'static str> {
    skipped.iter().map(|(row, _)| *row).collect()
}

/// Why `skipped` leaves out `row`.
fn why<'s>(skipped: &'s [(&'static str, String)], row: &str) -> &'s str {
    skipped
        .iter()
        .find(|(r, _)| *r == row)
        .map(|(_, why)| why.as_str())
        .unwrap_or_else(|| panic!("{row} is not skipped: {skipped:?}"))
}

#[test]
fn sign_doc_b_t_and_attached_need_info_and_signatures_to_spare() {
    let cfg = config();
    let mut s = suite(&cfg);
    s.methods = vec!["signatures/signDoc".into()];
    let ec = p256_plans();
    let mut cred = Cred::new("c1");
    cred.plans = ec.clone();
    cred.multisign = 5;
    // info says nothing: both run, the attached one with the signAlgo implying SHA-256 (the
    // asynchronous mode is off here: its row is left out; no signature is left for the
    // detached document nor the several-entries call).
    let (plan, skipped) = s.doc_offer(&cred);
    assert_eq!(
        rows_of(&skipped),
        [n::DOC_ASYNC, n::DOC_DETACHED_DOC, n::DOC_SEVERAL]
    );
    assert!(plan.t && !plan.asynchronous);
    assert_eq!(
        plan.attached.map(|p| p.sign_algo),
        Some(verify::ECDSA_SHA256)
    );
    assert_eq!(plan.signatures(), 3);
    assert_eq!(plan.rows().len(), n::DOC_TASK.len() - 3);
    // multisign 4: the SAD has one signature to spare, for the B-T.
    cred.multisign = 4;
    let (plan, skipped) = s.doc_offer(&cred);
    assert!(plan.t && plan.attached.is_none());
    assert_eq!(skipped.len(), 4);
    assert_eq!(skipped[0].0, n::DOC_ATTACHED);
    assert!(skipped[0].1.contains("multisign 4"), "{}", skipped[0].1);
    // info leaves out Ades-B-T and Attached: the two spare signatures go to the detached
    // document (the several-entries call needs three).
    cred.multisign = 5;
    s.conformance_levels = Some(vec!["Ades-B-B".into()]);
    s.cades_envelopes = Some(vec!["Detached".into()]);
    let (plan, skipped) = s.doc_offer(&cred);
    assert_eq!(
        plan,
        DocPlan {
            detached_doc: ec.first().copied(),
            ..DocPlan::default()
        }
    );
    assert!(
        why(&skipped, n::DOC_SIGN_T).contains("does not offer Ades-B-T"),
        "{skipped:?}"
    );
    assert!(
        why(&skipped, n::DOC_ATTACHED).contains("no Attached"),
        "{skipped:?}"
    );
    assert!(
        why(&skipped, n::DOC_SEVERAL).contains("the call needs 3"),
        "{skipped:?}"
    );
    s.conformance_levels = Some(vec!["ades-b-b".into(), "ADES-B-T".into()]);
    s.cades_envelopes = Some(vec!["Detached".into(), "Attached".into()]);
    assert_eq!(s.doc_offer(&cred).0.signatures(), 3);
    // Only id-ecPublicKey + hashAlgorithmOID: a document cannot say its digest.
    cred.plans = ec.into_iter().filter(|p| p.send_hash_oid).collect();
    let (plan, skipped) = s.doc_offer(&cred);
    assert!(plan.t && plan.attached.is_none() && plan.detached_doc.is_none());
    assert!(skipped[0].1.contains("implies the digest"), "{skipped:?}");
    assert!(
        why(&skipped, n::DOC_DETACHED_DOC).contains("implies the digest"),
        "{skipped:?}"
    );
}

#[test]
fn sign_doc_detached_document_and_several_entries_need_signatures_to_spare() {
    let cfg = config();
    let mut s = suite(&cfg);
    s.methods = vec!["signatures/signDoc".into(), "signatures/signPolling".into()];
    s.async_mode = true;
    let mut cred = Cred::new("c1");
    cred.plans = p256_plans();
    // multisign 10: two signHash, then B-B, B-T, attached, async, detached document and the
    // three hashes of the several-entries call.
    cred.multisign = 10;
    let (plan, skipped) = s.doc_offer(&cred);
    assert!(skipped.is_empty(), "{skipped:?}");
    assert_eq!(
        plan.detached_doc.map(|p| p.sign_algo),
        Some(verify::ECDSA_SHA256)
    );
    assert!(plan.several);
    assert_eq!(plan.signatures(), 8);
    assert_eq!(plan.rows(), n::DOC_TASK.to_vec());
    // multisign 9: the several-entries call, last, is the one left out.
    cred.multisign = 9;
    let (plan, skipped) = s.doc_offer(&cred);
    assert_eq!(rows_of(&skipped), [n::DOC_SEVERAL]);
    assert!(skipped[0].1.contains("multisign 9"), "{}", skipped[0].1);
    assert!(plan.detached_doc.is_some() && !plan.several);
    // multisign 7: the detached document, not the several-entries call.
    cred.multisign = 7;
    let (plan, _) = s.doc_offer(&cred);
    assert!(plan.detached_doc.is_some() && !plan.several);
    assert_eq!(plan.signatures(), 5);
    // info offers C attached only: no detached document; its signature goes to the
    // several-entries call.
    cred.multisign = 9;
    s.cades_envelopes = Some(vec!["Attached".into()]);
    let (plan, skipped) = s.doc_offer(&cred);
    assert!(plan.detached_doc.is_none() && plan.several);
    assert_eq!(rows_of(&skipped), [n::DOC_DETACHED_DOC]);
    assert!(skipped[0].1.contains("no Detached"), "{skipped:?}");
    // The SAD authorizes every digest signed, the documents' by their digest.
    let doc = b"a document".to_vec();
    let p = p256_plans()[0];
    let inputs = DocInputs {
        b: vec![1],
        t: Some(vec![2]),
        attached: Some((p, doc.clone())),
        asynchronous: Some(vec![3]),
        detached_doc: Some((p, b"another".to_vec())),
        several: Some(vec![vec![4], vec![5], vec![6]]),
    };
    let d = inputs.digests();
    assert_eq!(d.len(), 8);
    assert_eq!(d[2], HashAlg::Sha256.digest(&doc));
    assert_eq!(d[4], HashAlg::Sha256.digest(b"another"));
    assert_eq!(d[5..], [vec![4], vec![5], vec![6]]);
}

#[test]
fn sign_doc_async_needs_the_mode_and_a_signature_to_spare() {
    let cfg = config();
    let mut s = suite(&cfg);
    s.methods = vec!["signatures/signDoc".into(), "signatures/signPolling".into()];
    s.async_mode = true;
    let ec = p256_plans();
    let mut cred = Cred::new("c1");
    cred.plans = ec;
    // multisign 6: two signHash, then B-B, B-T, attached and the asynchronous B-B.
    cred.multisign = 6;
    let (plan, skipped) = s.doc_offer(&cred);
    assert_eq!(rows_of(&skipped), [n::DOC_DETACHED_DOC, n::DOC_SEVERAL]);
    assert!(plan.t && plan.attached.is_some() && plan.asynchronous);
    assert_eq!(plan.signatures(), 4);
    // multisign 5: the asynchronous row comes after the B-T and the attached.
    cred.multisign = 5;
    let (plan, skipped) = s.doc_offer(&cred);
    assert!(plan.t && plan.attached.is_some() && !plan.asynchronous);
    assert_eq!(skipped[0].0, n::DOC_ASYNC);
    assert!(skipped[0].1.contains("multisign 5"), "{}", skipped[0].1);
    // info leaves out the B-T: its signature goes to the asynchronous row.
    s.conformance_levels = Some(vec!["Ades-B-B".into()]);
    let (plan, skipped) = s.doc_offer(&cred);
    assert!(!plan.t && plan.attached.is_some() && plan.asynchronous);
    assert_eq!(skipped[0].0, n::DOC_SIGN_T);
    // Gated as the asynchronous signHash rows: the mode, and signatures/signPolling.
    cred.multisign = 6;
    s.conformance_levels = None;
    s.methods.pop();
    let (plan, skipped) = s.doc_offer(&cred);
    assert!(!plan.asynchronous);
    assert!(
        why(&skipped, n::DOC_ASYNC).contains("signatures/signPolling"),
        "{skipped:?}"
    );
    s.methods.push("signatures/signPolling".into());
    s.async_mode = false;
    let (plan, skipped) = s.doc_offer(&cred);
    assert!(!plan.asynchronous);
    assert!(
        why(&skipped, n::DOC_ASYNC).contains("asynchronousOperationMode"),
        "{skipped:?}"
    );
}

/// A credential whose key and certificate are `key_and_cert(7, 1)`'s, with its P-256 plans.
fn signing_cred() -> (p256::ecdsa::SigningKey, Vec<u8>, Cred) {
    let (sk, cert, leaf) = crate::test_support::key_and_cert(7, 1);
    let mut cred = Cred::new("c1");
    cred.leaf = Some(leaf);
    cred.info = json!({"cert": {"certificates": [b64(&cert)]}});
    cred.plans = p256_plans();
    (sk, cert, cred)
}

#[test]
fn a_detached_document_answer_is_one_signature_object_without_content() {
    use crate::cades::fixtures::{cades, cades_attached};
    let cfg = config();
    let mut s = suite(&cfg);
    let (sk, cert, cred) = signing_cred();
    let plan = cred.plans[0];
    let document = b"a whole document, signed detached".as_slice();
    let expect = DocExpect::DetachedDocument { document };
    let detached = b64(&cades(&sk, &cert, &HashAlg::Sha256.digest(document)));
    let mut check = |body: Value| {
        let r = resp(200, body);
        s.verify_doc_answer("signatures/signDoc", &cred, &plan, expect, &r)
    };
    let ok = check(json!({"SignatureObject": [detached], "DocumentWithSignature": []})).unwrap();
    assert!(
        ok.contains("message-digest = the document's digest"),
        "{ok}"
    );
    // Attached where detached was asked: in DocumentWithSignature, or carrying the document.
    let attached = b64(&cades_attached(&sk, &cert, document));
    let e = check(json!({"DocumentWithSignature": [attached]})).unwrap_err();
    assert!(e.contains("no SignatureObject array"), "{e}");
    let e = check(json!({"SignatureObject": [attached]})).unwrap_err();
    assert!(e.contains("must not carry the content"), "{e}");
    let e = check(json!({"SignatureObject": [detached], "DocumentWithSignature": [attached]}))
        .unwrap_err();
    assert!(e.contains("1 DocumentWithSignature"), "{e}");
    // Over another document's digest.
    let other = b64(&cades(&sk, &cert, &HashAlg::Sha256.digest(b"other")));
    let e = check(json!({"SignatureObject": [other]})).unwrap_err();
    assert!(e.contains("not the document's digest"), "{e}");
    // Two signatures for one document.
    let e = check(json!({"SignatureObject": [detached, detached]})).unwrap_err();
    assert!(e.contains("2 SignatureObjects"), "{e}");
}

#[test]
fn a_several_entries_answer_is_one_signature_per_hash_in_request_order() {
    use crate::cades::fixtures::cades;
    let cfg = config();
    let mut s = suite(&cfg);
    let (sk, cert, cred) = signing_cred();
    let digests: Vec<Vec<u8>> = (0..3)
        .map(|i| HashAlg::Sha256.digest(format!("hash {i}").as_bytes()))
        .collect();
    let (body, expected) = Suite::several_body(&cred, "sad", &digests);
    // Two entries: two hashes with ecdsa-with-SHA256, one with id-ecPublicKey + its OID.
    let items = body["documentDigests"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(
        items[0]["hashes"],
        json!([b64(&digests[0]), b64(&digests[1])])
    );
    assert_eq!(items[0]["signAlgo"], json!(verify::ECDSA_SHA256));
    assert_eq!(items[1]["hashes"], json!([b64(&digests[2])]));
    assert_eq!(items[1]["signAlgo"], json!(verify::EC_PUBLIC_KEY));
    assert_eq!(items[1]["hashAlgorithmOID"], json!(HashAlg::Sha256.oid()));
    assert_eq!(items[1]["signed_envelope_property"], json!("Detached"));
    let sig: Vec<String> = digests.iter().map(|d| b64(&cades(&sk, &cert, d))).collect();
    let mut check = |objects: Vec<&String>| {
        let r = resp(200, json!({"SignatureObject": objects}));
        s.verify_several(&cred, &expected, &r)
    };
    let ok = check(vec![&sig[0], &sig[1], &sig[2]]).unwrap();
    assert!(
        ok.starts_with("two documentDigests entries, 3 hashes in one call: 3 SignatureObjects")
            && ok.contains("ecdsa-with-SHA256, ecdsa-with-SHA256, id-ecPublicKey"),
        "{ok}"
    );
    // Swapped, duplicated, missing one.
    let e = check(vec![&sig[1], &sig[0], &sig[2]]).unwrap_err();
    assert!(
        e.contains("SignatureObject[0] is the signature of hash 1"),
        "{e}"
    );
    let e = check(vec![&sig[0], &sig[1], &sig[1]]).unwrap_err();
    assert!(
        e.contains("SignatureObject[2] is SignatureObject[1] again"),
        "{e}"
    );
    let e = check(vec![&sig[0], &sig[2]]).unwrap_err();
    assert!(e.contains("2 SignatureObject(s) for 3 hashes"), "{e}");
    // Not base64; attached signatures instead.
    let junk = "%%".to_string();
    let e = check(vec![&sig[0], &junk, &sig[2]]).unwrap_err();
    assert!(e.contains("SignatureObject[1] is not base64"), "{e}");
    let r = resp(200, json!({"DocumentWithSignature": sig}));
    let e = s.verify_several(&cred, &expected, &r).unwrap_err();
    assert!(e.contains("no SignatureObject array"), "{e}");
}
