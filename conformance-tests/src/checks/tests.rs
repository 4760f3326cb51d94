//! Unit tests of the checks' pure logic and of their verdicts on canned answers.

use super::credentials::factors;
use super::*;

pub(super) fn resp(status: u16, body: Value) -> Resp {
    Resp {
        status,
        text: body.to_string(),
        body,
        json_error: None,
        content_type: Some("application/json".into()),
    }
}

pub(super) fn suite(cfg: &Config) -> Suite<'_> {
    Suite::new(cfg).unwrap()
}

pub(super) fn config() -> Config {
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
pub(super) fn p256_plans() -> Vec<verify::SignPlan> {
    verify::plans_for(
        &verify::KeyKind::P256,
        &[verify::ECDSA_SHA256, verify::EC_PUBLIC_KEY],
    )
    .unwrap()
    .1
}

/// The callback row's verdicts on what reaches the suite's listener: the call's responseID
/// (then a first poll with the answer), another one, no JSON, and an answer not ready.
#[test]
fn callback_row_verdicts() {
    use super::async_callback::Announced;
    use std::io::Write;
    let mut cfg = config();
    cfg.callback_listen = Some("127.0.0.1:0".parse().unwrap());
    let mut s = suite(&cfg);
    let url = s.callback.as_ref().unwrap().url().to_string();
    let addr = s.callback.as_ref().unwrap().addr();
    let post = |body: &str| {
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        let head = format!(
            "POST /csc-callback HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        c.write_all(head.as_bytes()).unwrap();
        c.write_all(body.as_bytes()).unwrap();
        let mut answer = String::new();
        std::io::Read::read_to_string(&mut c, &mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 204 "), "{answer}");
    };
    let sent = Instant::now();
    let verdict = |s: &mut Suite<'_>, a: Announced, polled: Result<usize, String>| {
        s.callback_verdict(a, polled, None);
        let r = s.report.results.pop().unwrap();
        assert_eq!(r.name, n::ASYNC_CALLBACK);
        (r.outcome, r.detail)
    };

    post(r#"{"responseID":"id-1"}"#);
    let heard = s.await_callback(&url, "id-1", sent);
    let (o, d) = verdict(&mut s, heard, Ok(1));
    assert_eq!(o, Outcome::Pass, "{d}");
    assert!(
        d.contains("POST /csc-callback with the call's responseID"),
        "{d}"
    );

    // Announced before the answer could be polled.
    post(r#"{"responseID":"id-2"}"#);
    let heard = s.await_callback(&url, "id-2", sent);
    let (o, d) = verdict(&mut s, heard, Ok(3));
    assert_eq!(o, Outcome::Fail, "{d}");
    assert!(d.contains("took 3 polls"), "{d}");

    // Another call's responseID (not written into the report), no responseID, not JSON.
    post(r#"{"responseID":"someone-else"}"#);
    let heard = s.await_callback(&url, "id-3", sent);
    let (o, d) = verdict(&mut s, heard, Ok(1));
    assert_eq!(o, Outcome::Fail);
    assert!(
        d.contains("another responseID") && !d.contains("someone-else"),
        "{d}"
    );
    post(r#"{"requestID":"id-4"}"#);
    let heard = s.await_callback(&url, "id-4", sent);
    let (o, d) = verdict(&mut s, heard, Ok(1));
    assert_eq!(o, Outcome::Fail);
    assert!(d.contains("no responseID string"), "{d}");
    post("responseID=id-5");
    let heard = s.await_callback(&url, "id-5", sent);
    let (o, d) = verdict(&mut s, heard, Ok(1));
    assert_eq!(o, Outcome::Fail);
    assert!(d.contains("not JSON"), "{d}");
}
