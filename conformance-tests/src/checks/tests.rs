//! Unit tests of the checks' pure logic and of their verdicts on canned answers.

use super::credentials::factors;
use super::*;

fn resp(status: u16, body: Value) -> Resp {
    Resp {
        status,
        text: body.to_string(),
        body,
        json_error: None,
        content_type: Some("application/json".into()),
    }
}

fn suite(cfg: &Config) -> Suite<'_> {
    Suite::new(cfg).unwrap()
}

fn config() -> Config {
    let mut c = Config::new(
        "http://127.0.0.1:9",
        "u",
        "p",
        "123456",
        crate::OtpSource::TotpSecret("JBSWY3DPEHPK3PXP".into()),
    );
    c.totp_state = crate::TotpState::Memory;
    c
}

#[test]
fn optional_fields_fail_only_the_schema_rows() {
    let cfg = config();
    let mut s = suite(&cfg);
    // No expires_in, an extra token_type: the login is fine, the schema row is not.
    let login = resp(200, json!({"access_token": "t", "token_type": "Bearer"}));
    s.expect_ok("auth/login", &login, 200).unwrap();
    // No expiresIn: the SAD is usable (the default lifetime applies later).
    let authz = resp(200, json!({"SAD": "s"}));
    assert_eq!(
        s.sad_of("credentials/authorize", &authz).unwrap(),
        ("s".to_string(), None)
    );
    let authz = resp(200, json!({"SAD": "s", "expiresIn": 300.0}));
    assert_eq!(
        s.sad_of("credentials/authorize", &authz).unwrap().1,
        Some(300)
    );
    // No error_description: still the right error.
    let err = resp(400, json!({"error": "invalid_request"}));
    s.expect_error(&err, &[400], INVALID_REQUEST).unwrap();
    // What is required still is.
    assert!(
        s.sad_of("credentials/authorize", &resp(200, json!({})))
            .is_err()
    );
    assert!(
        s.expect_error(
            &resp(401, json!({"error": "invalid_request"})),
            &[400],
            INVALID_REQUEST
        )
        .is_err()
    );
    s.schema_rows();
    let row = |name: &str| {
        s.report
            .named(name)
            .first()
            .map(|r| (r.outcome, r.detail.clone()))
    };
    let (o, d) = row("schema: auth/login response").unwrap();
    assert_eq!(o, Outcome::Warn);
    assert!(d.contains("expires_in") && d.contains("token_type"), "{d}");
    assert_eq!(
        row("schema: credentials/authorize response").unwrap().0,
        Outcome::Warn
    );
    assert_eq!(row(n::SCHEMA_ERRORS).unwrap().0, Outcome::Warn);
    assert_eq!(s.report.exit_code(), 0, "warnings are no failures");
    let mut ok = suite(&cfg);
    ok.expect_ok(
        "auth/login",
        &resp(200, json!({"access_token": "t", "expires_in": 3600})),
        200,
    )
    .unwrap();
    ok.schema_rows();
    assert_eq!(
        ok.report.named("schema: auth/login response")[0].outcome,
        Outcome::Pass
    );
}

#[test]
fn no_pin_object_skips_the_wrong_pin_check() {
    let cfg = config();
    let mut s = suite(&cfg);
    let mut cred = Cred::new("c1");
    cred.factors = vec![("OTP".into(), Factor::OfflineOtp)];
    s.wrong_pin_task(&mut cred);
    let r = s.report.named(n::AUTHZ_WRONG_PIN);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].outcome, Outcome::Skip, "{}", r[0].detail);
    // The wrong OTP is still tried (here the server is unreachable, hence FAIL).
    assert_eq!(s.report.named(n::AUTHZ_WRONG_OTP).len(), 1);
    let mut s = suite(&cfg);
    let mut cred = Cred::new("c1");
    cred.factors = vec![("PIN".into(), Factor::Pin)];
    s.wrong_pin_task(&mut cred);
    assert_eq!(s.report.named(n::AUTHZ_WRONG_OTP)[0].outcome, Outcome::Skip);
}

#[test]
fn async_checks_need_the_mode_and_signpolling() {
    let cfg = config();
    let mut s = suite(&cfg);
    s.methods = vec![
        "signatures/signHash".into(),
        "signatures/signPolling".into(),
    ];
    assert!(
        s.async_unsupported()
            .unwrap()
            .contains("asynchronousOperationMode")
    );
    s.async_mode = true;
    assert_eq!(s.async_unsupported(), None);
    s.methods.pop();
    assert!(
        s.async_unsupported()
            .unwrap()
            .contains("signatures/signPolling")
    );
    // Not offered: the unknown-requestID row is SKIP, and nothing is sent.
    s.async_service_errors();
    assert_eq!(
        s.report.named(n::ASYNC_UNKNOWN_ID)[0].outcome,
        Outcome::Skip
    );
}

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
    // asynchronous mode is off here: its row is left out).
    let (plan, skipped) = s.doc_offer(&cred);
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(skipped[0].0, n::DOC_ASYNC);
    assert!(plan.t && !plan.asynchronous);
    assert_eq!(
        plan.attached.map(|p| p.sign_algo),
        Some(verify::ECDSA_SHA256)
    );
    assert_eq!(plan.signatures(), 3);
    assert_eq!(plan.rows().len(), n::DOC_TASK.len() - 1);
    // multisign 4: the SAD has one signature to spare, for the B-T.
    cred.multisign = 4;
    let (plan, skipped) = s.doc_offer(&cred);
    assert!(plan.t && plan.attached.is_none());
    assert_eq!(skipped.len(), 2);
    assert_eq!(skipped[0].0, n::DOC_ATTACHED);
    assert!(skipped[0].1.contains("multisign 4"), "{}", skipped[0].1);
    // info leaves out Ades-B-T and Attached.
    cred.multisign = 5;
    s.conformance_levels = Some(vec!["Ades-B-B".into()]);
    s.cades_envelopes = Some(vec!["Detached".into()]);
    let (plan, skipped) = s.doc_offer(&cred);
    assert_eq!(plan, DocPlan::default());
    assert!(
        skipped[0].1.contains("does not offer Ades-B-T"),
        "{skipped:?}"
    );
    assert!(skipped[1].1.contains("no Attached"), "{skipped:?}");
    s.conformance_levels = Some(vec!["ades-b-b".into(), "ADES-B-T".into()]);
    s.cades_envelopes = Some(vec!["Detached".into(), "Attached".into()]);
    assert_eq!(s.doc_offer(&cred).0.signatures(), 3);
    // Only id-ecPublicKey + hashAlgorithmOID: a document cannot say its digest.
    cred.plans = ec.into_iter().filter(|p| p.send_hash_oid).collect();
    let (plan, skipped) = s.doc_offer(&cred);
    assert!(plan.t && plan.attached.is_none());
    assert!(skipped[0].1.contains("implies the digest"), "{skipped:?}");
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
    assert!(skipped.is_empty(), "{skipped:?}");
    assert!(plan.t && plan.attached.is_some() && plan.asynchronous);
    assert_eq!(plan.signatures(), 4);
    assert_eq!(plan.rows(), n::DOC_TASK.to_vec());
    // multisign 5: the asynchronous row comes last, so it is the one left out.
    cred.multisign = 5;
    let (plan, skipped) = s.doc_offer(&cred);
    assert!(plan.t && plan.attached.is_some() && !plan.asynchronous);
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(skipped[0].0, n::DOC_ASYNC);
    assert!(skipped[0].1.contains("multisign 5"), "{}", skipped[0].1);
    // info leaves out the B-T: its signature goes to the asynchronous row.
    s.conformance_levels = Some(vec!["Ades-B-B".into()]);
    let (plan, skipped) = s.doc_offer(&cred);
    assert!(!plan.t && plan.attached.is_some() && plan.asynchronous);
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(skipped[0].0, n::DOC_SIGN_T);
    // Gated as the asynchronous signHash rows: the mode, and signatures/signPolling.
    cred.multisign = 6;
    s.conformance_levels = None;
    s.methods.pop();
    let (plan, skipped) = s.doc_offer(&cred);
    assert!(!plan.asynchronous);
    assert_eq!(skipped[0].0, n::DOC_ASYNC);
    assert!(
        skipped[0].1.contains("signatures/signPolling"),
        "{skipped:?}"
    );
    s.methods.push("signatures/signPolling".into());
    s.async_mode = false;
    let (plan, skipped) = s.doc_offer(&cred);
    assert!(!plan.asynchronous);
    assert!(
        skipped[0].1.contains("asynchronousOperationMode"),
        "{skipped:?}"
    );
}

#[test]
fn an_asynchronous_refusal_is_any_4xx_csc_error_without_a_response_id() {
    let cfg = config();
    let mut s = suite(&cfg);
    let forbidden = resp(403, json!({"error": "invalid_sad"}));
    assert!(s.expect_client_error(&forbidden).is_ok());
    let accepted = resp(202, json!({"error": "accepted_request"}));
    assert!(s.expect_client_error(&accepted).is_err());
    let no_code = resp(400, json!({"message": "no"}));
    assert!(s.expect_client_error(&no_code).is_err());
    let with_id = resp(400, json!({"error": "invalid_request", "responseID": "x"}));
    assert!(s.expect_client_error(&with_id).is_err());
    assert!(s.expect_error(&with_id, &[400], INVALID_REQUEST).is_err());
}

#[test]
fn wrong_pins_differ() {
    assert_eq!(wrong_pin("123456"), "123457");
    assert_eq!(wrong_pin("129"), "120");
    assert_eq!(wrong_pin("abc"), "abcx");
    assert_eq!(wrong_pin(""), "0");
}

#[test]
fn factors_from_auth_objects_and_v1() {
    let v2 = json!({"auth": {"mode": "explicit", "objects": [
        {"type": "Password", "id": "PIN", "format": "N"},
        {"type": "Password", "id": "OTP", "format": "N", "generator": "totp"}]}});
    assert_eq!(
        factors(&v2),
        vec![
            ("PIN".into(), Factor::Pin),
            ("OTP".into(), Factor::OfflineOtp)
        ]
    );
    let online = json!({"auth": {"objects": [
        {"type": "Password", "id": "PIN"}, {"type": "ChallengeResponse", "id": "SMS"}]}});
    assert_eq!(
        factors(&online).get(1),
        Some(&("SMS".into(), Factor::OnlineOtp))
    );
    let v1 = json!({"PIN": {"presence": "true"}, "OTP": {"presence": "true", "type": "online"}});
    assert_eq!(
        factors(&v1).get(1),
        Some(&("OTP".into(), Factor::OnlineOtp))
    );
    assert_eq!(factors(&json!({})).len(), 2);
}

/// The signing plans of a P-256 credential listing ecdsa-with-SHA256 and id-ecPublicKey.
fn p256_plans() -> Vec<verify::SignPlan> {
    verify::plans_for(
        &verify::KeyKind::P256,
        &[verify::ECDSA_SHA256, verify::EC_PUBLIC_KEY],
    )
    .unwrap()
    .1
}
