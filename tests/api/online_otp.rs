//! Online OTP: a credential enrolled with `--otp sms:…`/`email:…` gets a fresh code per
//! `credentials/getChallenge` (or v1 `sendOTP`), delivered by the configured sender; the code is
//! single-use, expires, and dies after three wrong tries.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;

use serde_json::{Value, json};

use crate::helpers::*;

fn enroll_online(env: &Env, s: &Signer, otp: &str) -> String {
    let e = env
        .try_enroll(&[
            "--user",
            &s.user,
            "--password",
            &s.password,
            "--pin",
            &s.pin,
            "--key",
            "ec-p256",
            "--otp",
            otp,
        ])
        .unwrap();
    assert_eq!(e.otp.as_deref(), Some(otp));
    assert!(e.totp_secret.is_none());
    e.credential_id
}

fn authorize_with(
    app: &TestApp,
    token: &str,
    s: &Signer,
    cred: &str,
    code: &str,
    doc: &[u8],
) -> Resp {
    app.post(
        "/csc/v2/credentials/authorize",
        Some(token),
        &json!({"credentialID": cred, "numSignatures": 1, "hashes": [b64(&digest(SHA256, doc))],
                "hashAlgorithmOID": SHA256, "authData": [{"id": "PIN", "value": s.pin}, {"id": "OTP", "value": code}]}),
    )
}

fn last_code(outbox: &std::path::Path) -> String {
    let text = std::fs::read_to_string(outbox).unwrap();
    let v: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    v["code"].as_str().unwrap().to_string()
}

#[test]
fn sms_code_through_the_outbox() {
    let env = Env::new();
    let s = signer("rosa");
    let cred = enroll_online(&env, &s, "sms:+3591234567");
    let bad = env.try_enroll(&[
        "--user",
        &s.user,
        "--password",
        &s.password,
        "--pin",
        &s.pin,
        "--key",
        "ec-p256",
        "--otp",
        "sms:12",
    ]);
    assert!(bad.is_err());
    let outbox = env.dir.path().join("outbox.jsonl");
    let app = env.spawn_with(&["--otp-sender", &format!("outbox:{}", outbox.display())]);
    let token = app.login(&s.user, &s.password);

    let info = app.credential_info(&token, &cred);
    assert_eq!(info["OTP"]["type"], "online");
    assert_eq!(info["auth"]["objects"][1]["type"], "ChallengeResponse");

    // wrong object id, TOTP-only ids
    app.post(
        "/csc/v2/credentials/getChallenge",
        Some(&token),
        &json!({"credentialID": cred, "authObjectID": "PIN"}),
    )
    .assert_error(400, "invalid_request");
    // authObjectID is required by getChallenge (CSC §3.5); only v1 sendOTP implies it
    for body in [
        json!({"credentialID": cred}),
        json!({"credentialID": cred, "authObjectID": null}),
    ] {
        let r = app.post("/csc/v2/credentials/getChallenge", Some(&token), &body);
        r.assert_error(400, "invalid_request");
        assert!(
            r.body["error_description"]
                .as_str()
                .unwrap()
                .contains("authObjectID"),
            "{}",
            r.body
        );
    }
    app.post(
        "/csc/v2/credentials/getChallenge",
        Some(&token),
        &json!({"credentialID": cred, "authObjectID": 1}),
    )
    .assert_error(400, "invalid_request");
    assert!(!outbox.exists(), "no code was sent for a refused request");
    let r = app.post(
        "/csc/v2/credentials/getChallenge",
        Some(&token),
        &json!({"credentialID": cred, "authObjectID": "OTP"}),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let line: Value = serde_json::from_str(
        std::fs::read_to_string(&outbox)
            .unwrap()
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(line["to"], "+3591234567");
    assert_eq!(line["channel"], "sms");
    let code = last_code(&outbox);
    assert_eq!(code.len(), 6);

    let wrong = if code == "000000" { "111111" } else { "000000" };
    authorize_with(&app, &token, &s, &cred, wrong, b"a")
        .assert_error(400, "invalid_authentication_data");
    let r = authorize_with(&app, &token, &s, &cred, &code, b"a");
    assert_eq!(r.status, 200, "{}", r.body);
    let sad = r.body["SAD"].as_str().unwrap();
    let signed = app.sign_hash_raw(
        &token,
        json!({"credentialID": cred, "SAD": sad, "hashes": [b64(&digest(SHA256, b"a"))], "signAlgo": "1.2.840.10045.4.3.2"}),
    );
    assert_eq!(signed.status, 200);
    // single use
    authorize_with(&app, &token, &s, &cred, &code, b"b")
        .assert_error(400, "invalid_authentication_data");

    // three wrong tries kill the challenge (v1 sendOTP path)
    let r = app.post(
        "/csc/v1/credentials/sendOTP",
        Some(&token),
        &json!({"credentialID": cred}),
    );
    assert_eq!(r.status, 204);
    let code = last_code(&outbox);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..3 {
        authorize_with(&app, &token, &s, &cred, wrong, b"c")
            .assert_error(400, "invalid_authentication_data");
    }
    authorize_with(&app, &token, &s, &cred, &code, b"c")
        .assert_error(400, "invalid_authentication_data");
}

/// A one-shot HTTP gateway on 127.0.0.1: answers 503 first, then 200; returns the JSON bodies.
fn gateway() -> (String, std::thread::JoinHandle<Vec<Value>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/send", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let mut bodies = Vec::new();
        for (i, stream) in listener.incoming().take(2).enumerate() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line == "\r\n" || line.is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0u8; len];
            reader.read_exact(&mut body).unwrap();
            bodies.push(serde_json::from_slice(&body).unwrap());
            let status = if i == 0 {
                "503 Service Unavailable"
            } else {
                "200 OK"
            };
            write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            )
            .unwrap();
        }
        bodies
    });
    (url, handle)
}

#[test]
fn email_code_through_a_webhook_with_retry() {
    let env = Env::new();
    let s = signer("sam");
    let cred = enroll_online(&env, &s, "email:sam@example.org");
    let (url, gw) = gateway();
    let app = env.spawn_with(&["--otp-sender", &format!("webhook:{url}")]);
    let token = app.login(&s.user, &s.password);
    let r = app.post(
        "/csc/v2/credentials/getChallenge",
        Some(&token),
        &json!({"credentialID": cred, "authObjectID": "OTP"}),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let bodies = gw.join().unwrap();
    assert_eq!(bodies.len(), 2, "the first 503 was retried");
    assert_eq!(bodies[1]["to"], "sam@example.org");
    assert_eq!(bodies[1]["channel"], "email");
    let code = bodies[1]["code"].as_str().unwrap().to_string();
    let r = authorize_with(&app, &token, &s, &cred, &code, b"mail");
    assert_eq!(r.status, 200, "{}", r.body);
    // the code never reaches the server log
    drop(app);
    assert!(!env.server_log().contains(&code));
}

/// What a one-shot SMTP relay on 127.0.0.1 received: envelope and message text.
struct Mail {
    mail_from: String,
    rcpt_to: Vec<String>,
    data: String,
}

/// A relay on 127.0.0.1 for one connection: greeted, then served by `serve` (its reader and
/// writer) on a thread; its port and the thread.
fn relay<T: Send + 'static>(
    serve: impl FnOnce(BufReader<std::net::TcpStream>, std::net::TcpStream) -> T + Send + 'static,
) -> (u16, std::thread::JoinHandle<T>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        let mut out = stream.try_clone().unwrap();
        write!(out, "220 relay.test ESMTP\r\n").unwrap();
        serve(BufReader::new(stream), out)
    });
    (port, handle)
}

/// A minimal SMTP relay (RFC 5321 happy path) that accepts one message and returns it.
fn smtp_relay() -> (u16, std::thread::JoinHandle<Mail>) {
    relay(|mut reader, mut out| {
        let mut mail = Mail {
            mail_from: String::new(),
            rcpt_to: Vec::new(),
            data: String::new(),
        };
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 {
                break;
            }
            let upper = line.to_ascii_uppercase();
            if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                write!(out, "250-relay.test\r\n250 8BITMIME\r\n").unwrap();
            } else if upper.starts_with("MAIL FROM:") {
                mail.mail_from = line.trim_end().to_string();
                write!(out, "250 OK\r\n").unwrap();
            } else if upper.starts_with("RCPT TO:") {
                mail.rcpt_to.push(line.trim_end().to_string());
                write!(out, "250 OK\r\n").unwrap();
            } else if upper.starts_with("DATA") {
                write!(out, "354 go ahead\r\n").unwrap();
                loop {
                    let mut l = String::new();
                    assert!(reader.read_line(&mut l).unwrap() > 0, "DATA cut short");
                    if l == ".\r\n" {
                        break;
                    }
                    mail.data.push_str(&l);
                }
                write!(out, "250 queued\r\n").unwrap();
            } else if upper.starts_with("QUIT") {
                write!(out, "221 bye\r\n").unwrap();
                break;
            } else {
                write!(out, "250 OK\r\n").unwrap();
            }
        }
        mail
    })
}

#[test]
fn email_code_through_smtp_and_sms_through_the_webhook() {
    let env = Env::new();
    let s = signer("eve");
    let mail_cred = enroll_online(&env, &s, "email:eve@example.org");
    let sms_cred = enroll_online(&env, &s, "sms:+359888123456");
    let (port, relay) = smtp_relay();
    let (url, gw) = gateway();
    // one sender per channel: the SMTP relay serves only e-mail, the webhook takes the rest
    let senders = format!("smtp://127.0.0.1:{port}?from=signing@quill.test,webhook:{url}");
    let app = env.spawn_with(&["--otp-sender", &senders]);
    let token = app.login(&s.user, &s.password);

    let r = app.post(
        "/csc/v2/credentials/getChallenge",
        Some(&token),
        &json!({"credentialID": mail_cred, "authObjectID": "OTP"}),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let mail = relay.join().unwrap();
    assert!(
        mail.mail_from.contains("<signing@quill.test>"),
        "{}",
        mail.mail_from
    );
    assert_eq!(mail.rcpt_to.len(), 1);
    assert!(
        mail.rcpt_to[0].contains("<eve@example.org>"),
        "{:?}",
        mail.rcpt_to
    );
    assert!(mail.data.contains("To: eve@example.org"), "{}", mail.data);
    let code = mail
        .data
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .expect("a 6-digit code in the mail")
        .to_string();
    let r = authorize_with(&app, &token, &s, &mail_cred, &code, b"by mail");
    assert_eq!(r.status, 200, "{}", r.body);

    // the SMS credential's code goes to the webhook, not to the relay (which has stopped)
    let r = app.post(
        "/csc/v2/credentials/getChallenge",
        Some(&token),
        &json!({"credentialID": sms_cred, "authObjectID": "OTP"}),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let bodies = gw.join().unwrap();
    assert_eq!(bodies[1]["channel"], "sms");
    assert_eq!(bodies[1]["to"], "+359888123456");

    drop(app);
    assert!(!env.server_log().contains(&code));
}

#[test]
fn unreachable_smtp_relay_is_a_503() {
    let env = Env::new();
    let s = signer("rob");
    let cred = enroll_online(&env, &s, "email:rob@example.org");
    // a port nobody listens on
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    challenge_through_relay(&env, &s, &cred, port).assert_error(503, "temporarily_unavailable");
}

/// `credentials/getChallenge` for `cred` on a server whose OTP sender is the SMTP relay at
/// 127.0.0.1:`port`.
fn challenge_through_relay(env: &Env, s: &Signer, cred: &str, port: u16) -> Resp {
    let app = env.spawn_with(&["--otp-sender", &format!("smtp://127.0.0.1:{port}")]);
    let token = app.login(&s.user, &s.password);
    app.post(
        "/csc/v2/credentials/getChallenge",
        Some(&token),
        &json!({"credentialID": cred, "authObjectID": "OTP"}),
    )
}

/// A relay that refuses the recipient, quoting its address as Postfix does: a 503, and the
/// signer's address (a secret sealed in the database) stays out of the server's log.
#[test]
fn a_refused_recipient_is_a_503_and_its_address_stays_out_of_the_log() {
    let env = Env::new();
    let s = signer("ruth");
    let address = "ruth.private.inbox@example.org";
    let cred = enroll_online(&env, &s, &format!("email:{address}"));
    let (port, relay_thread) = relay(|mut reader, mut out| {
        for _ in 0..20 {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            let upper = line.to_ascii_uppercase();
            let reply = if upper.starts_with("EHLO") {
                "250 relay.test".to_string()
            } else if upper.starts_with("RCPT TO:") {
                let to = line.trim_end().trim_start_matches("RCPT TO:").to_string();
                format!("550 5.1.1 {to}: Recipient address rejected: User unknown")
            } else if upper.starts_with("QUIT") {
                write!(out, "221 bye\r\n").unwrap();
                break;
            } else {
                "250 OK".to_string()
            };
            write!(out, "{reply}\r\n").unwrap();
        }
    });
    challenge_through_relay(&env, &s, &cred, port).assert_error(503, "temporarily_unavailable");
    relay_thread.join().unwrap();
    let log = env.server_log();
    assert!(log.contains("SMTP relay: permanent error (550)"), "{log}");
    assert!(!log.contains("ruth.private.inbox"), "{log}");
}

/// The OAuth page sends the online OTP itself (issue 9), but only to a signer who has logged
/// in: opening the authorization page of an e-mail-OTP credential (which anyone with a public
/// client ID and the credential ID can do, as often as they like), a wrong password and another
/// user's right password send nothing. The owner's password sends one code and turns the page
/// into PIN + code; the credential token that earns signs; a wrong code is refused on the page.
#[test]
fn oauth_page_sends_the_online_otp_after_the_password() {
    use crate::oauth::*;
    let env = Env::new();
    let s = signer("oona");
    let cred = enroll_online(&env, &s, "email:oona@example.invalid");
    let other = signer("otto");
    env.enroll(&other, "ec-p256");
    let outbox = env.dir.path().join("outbox.jsonl");
    let app = env.spawn_with(&["--otp-sender", &format!("outbox:{}", outbox.display())]);
    let client = add_client(&env, &[]);
    let h = digest(SHA256, b"oauth online otp");
    let sent = || match std::fs::read_to_string(&outbox) {
        Ok(text) => text.lines().count(),
        Err(_) => 0,
    };
    let fields = |f: &Form| {
        let has = |name: &str| f.html.contains(&format!("name=\"{name}\""));
        (has("password"), has("pin"), has("otp"))
    };
    let (f, verifier) = credential_page(&app, &client, &cred, std::slice::from_ref(&h), &[]);
    assert_eq!(fields(&f), (true, false, false), "the login step first");
    for _ in 0..3 {
        credential_page(&app, &client, &cred, std::slice::from_ref(&h), &[]);
    }
    assert_eq!(sent(), 0, "opening the page sends nothing");
    let login = |f: &Form, user: &str, password: &str| {
        submit(
            &app,
            f,
            &[
                ("username", user),
                ("password", password),
                ("action", "approve"),
            ],
        )
    };
    // PIN and a guessed code without the password: the login step again.
    let f = page(submit(
        &app,
        &f,
        &[("pin", &s.pin), ("otp", "123456"), ("action", "approve")],
    ));
    assert_eq!(fields(&f), (true, false, false));
    let f = page(login(&f, &s.user, "not the password"));
    assert_eq!(fields(&f), (true, false, false));
    let f = page(login(&f, &other.user, &other.password));
    assert_eq!(
        fields(&f),
        (true, false, false),
        "not the credential's owner"
    );
    assert_eq!(sent(), 0, "no code before the owner's password");

    let f = page(login(&f, &s.user, &s.password));
    assert_eq!(
        fields(&f),
        (false, true, true),
        "PIN and code once logged in"
    );
    assert_eq!(sent(), 1);
    let code = last_code(&outbox);
    let delivered: Value = serde_json::from_str(
        std::fs::read_to_string(&outbox)
            .unwrap()
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(delivered["channel"], "email", "{delivered}");
    assert!(
        !env.server_log().contains(&code),
        "the code is never logged"
    );
    // The owner logging in on a second page while this code is pending sends nothing and keeps
    // it (no flood of the signer's inbox, no cancelling the code being typed).
    let (second, _) = credential_page(&app, &client, &cred, std::slice::from_ref(&h), &[]);
    assert_eq!(
        fields(&page(login(&second, &s.user, &s.password))),
        (false, true, true)
    );
    assert_eq!(sent(), 1, "one code while one is pending");
    // A wrong code: the PIN + code step again, no redirect.
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let codes = |f: &Form, otp: &str| {
        submit(
            &app,
            f,
            &[("pin", &s.pin), ("otp", otp), ("action", "approve")],
        )
    };
    let f = page(codes(&f, wrong));
    assert_eq!(fields(&f), (false, true, true));
    assert!(f.html.contains("role=\"alert\""), "{}", f.html);
    let q = redirected(&codes(&f, &code));
    assert_eq!(q["state"], "st-1");
    let t = exchange_code(&app, &client, &q["code"], &verifier, &[]);
    sign_verified_with_credential_token(&app, &s, &cred, t["access_token"].as_str().unwrap(), &h);
}

/// A credential picked by its qualifier (CSC §8, no credentialID) may be an online-OTP one: the
/// page logs the signer in, picks the credential, sends its code and asks for PIN + code.
#[test]
fn a_credential_picked_by_its_qualifier_gets_its_online_code_after_the_login() {
    use crate::oauth::*;
    use base64::Engine as _;
    let env = Env::new();
    let s = signer("quinn");
    let cred = enroll_online(&env, &s, "sms:+359888000111");
    let outbox = env.dir.path().join("outbox.jsonl");
    let app = env.spawn_with(&["--otp-sender", &format!("outbox:{}", outbox.display())]);
    let client = add_client(&env, &[]);
    let h = digest(SHA256, b"by qualifier, online");
    let (verifier, challenge) = pkce();
    let hashes = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&h);
    let f = page(get_authorize(
        &app,
        &[
            ("response_type", "code"),
            ("client_id", client.id.as_str()),
            ("redirect_uri", REDIRECT),
            ("scope", "credential"),
            ("signatureQualifier", "eu_eidas_aes"),
            ("numSignatures", "1"),
            ("hashes", hashes.as_str()),
            ("hashAlgorithmOID", SHA256),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("state", "st-1"),
        ],
    ));
    assert!(!outbox.exists(), "nothing sent before the login");
    let f = log_in_on_page(&app, &f, &s);
    assert!(f.html.contains(&cred), "{}", f.html);
    let code = last_code(&outbox);
    let q = redirected(&submit(
        &app,
        &f,
        &[("pin", &s.pin), ("otp", &code), ("action", "approve")],
    ));
    let t = exchange_code(&app, &client, &q["code"], &verifier, &[]);
    assert_eq!(t["credentialID"], cred.as_str(), "{t}");
    sign_verified_with_credential_token(&app, &s, &cred, t["access_token"].as_str().unwrap(), &h);
}

/// Wrong PIN + code answers on the page's second step count towards the credential's lock; the
/// answer that locks it ends the page with `access_denied` to the client (no new code for a
/// locked credential). The same step submitted again after the page gave its code is refused
/// as used, without a new code.
#[test]
fn the_page_ends_when_wrong_codes_lock_the_credential() {
    use crate::oauth::*;
    let env = Env::new();
    let s = signer("lena");
    let cred = enroll_online(&env, &s, "email:lena@example.invalid");
    let outbox = env.dir.path().join("outbox.jsonl");
    let app = env.spawn_with(&["--otp-sender", &format!("outbox:{}", outbox.display())]);
    let client = add_client(&env, &[]);
    let h = digest(SHA256, b"locked on the page");
    let sent = || std::fs::read_to_string(&outbox).unwrap().lines().count();
    let codes = |f: &Form, otp: &str| {
        submit(
            &app,
            f,
            &[("pin", &s.pin), ("otp", otp), ("action", "approve")],
        )
    };

    // Double submission of the right answer: one code to the client, the other "already used".
    let (f, verifier) = credential_page(&app, &client, &cred, std::slice::from_ref(&h), &[]);
    let f = log_in_on_page(&app, &f, &s);
    let code = last_code(&outbox);
    let q = redirected(&codes(&f, &code));
    exchange_code(&app, &client, &q["code"], &verifier, &[]);
    let before = sent();
    let again = codes(&f, &code);
    assert_eq!(again.status(), 400, "the page was used");
    assert_eq!(sent(), before, "no new code for a used page");

    let (f, _) = credential_page(&app, &client, &cred, std::slice::from_ref(&h), &[]);
    let mut f = log_in_on_page(&app, &f, &s);
    let wrong = |code: &str| {
        if code == "000000" {
            "111111".to_string()
        } else {
            "000000".to_string()
        }
    };
    // The used page refused the second submission before judging it: five wrong answers
    // reach the limit of five.
    for _ in 0..4 {
        let r = codes(&f, &wrong(&last_code(&outbox)));
        assert_eq!(r.status(), 200);
        f = page(r);
    }
    let q = redirected(&codes(&f, &wrong(&last_code(&outbox))));
    assert_eq!(q["error"], "access_denied", "{q:?}");
    let locked = env.db_i64(&format!(
        "SELECT CAST(failed_auths AS BIGINT) AS n FROM credentials WHERE id = '{cred}'"
    ));
    assert_eq!(locked, 5);
}
