//! Secrets never reach the log: a full flow with debug logging, then the server's log is searched
//! for every secret that crossed the wire, in text and in JSON log format.

use serde_json::json;

use crate::helpers::*;

#[test]
fn no_secret_in_debug_log() {
    no_secret_in_log(&[]);
}

#[test]
fn no_secret_in_json_debug_log() {
    no_secret_in_log(&["--log-format", "json"]);
}

fn no_secret_in_log(flags: &[&str]) {
    let env = Env::new();
    // An 8-digit PIN: "123456" could be the microseconds of a log line's time.
    let s = Signer {
        pin: "80417293".into(),
        ..signer("heidi")
    };
    let cred = env.enroll(&s, "rsa-2048").credential_id;
    let app = env.spawn_with(flags); // QUILL_LOG=debug
    let token = app.login(&s.user, &s.password);
    let h = digest(SHA256, b"confidential");
    let otp = totp_now(&s.totp_secret);
    let r = app.post(
        "/csc/v2/credentials/authorize",
        Some(&token),
        &json!({"credentialID": cred, "numSignatures": 1, "hashes": [b64(&h)], "hashAlgorithmOID": SHA256,
                "authData": [{"id": "PIN", "value": s.pin}, {"id": "OTP", "value": otp}]}),
    );
    assert_eq!(r.status, 200);
    let sad = r.body["SAD"].as_str().unwrap().to_string();
    let r = app.sign_hash_raw(
        &token,
        json!({"credentialID": cred, "SAD": sad, "hashes": [b64(&h)], "signAlgo": "1.2.840.113549.1.1.11"}),
    );
    assert_eq!(r.status, 200);
    // failures that carry secrets: wrong PIN (as a number, to provoke a type error), wrong password
    let wrong_pin = "987123";
    app.post(
        "/csc/v2/credentials/authorize",
        Some(&token),
        &json!({"credentialID": cred, "numSignatures": 1, "hashes": [b64(&h)], "hashAlgorithmOID": SHA256,
                "PIN": 987123, "OTP": otp}),
    )
    .assert_error(400, "invalid_request");
    let basic = b64(format!("{}:{}", s.user, "Wrong-Pass-777").as_bytes());
    app.login_raw(Some(&format!("Basic {basic}")))
        .assert_error(400, "authentication_error");
    let r = app.post(
        "/csc/v2/auth/revoke",
        Some(&token),
        &json!({"token": token}),
    );
    assert_eq!(r.status, 204);
    drop(app);

    let log = env.server_log();
    assert!(
        log.contains("DEBUG") || log.contains("INFO"),
        "the server logged: {log}"
    );
    for secret in [
        s.password.as_str(),
        s.pin.as_str(),
        otp.as_str(),
        token.as_str(),
        sad.as_str(),
        TOKEN_PIN,
        s.totp_secret.as_str(),
        wrong_pin,
        "Wrong-Pass-777",
        basic.as_str(),
    ] {
        assert!(
            !log.contains(secret),
            "secret {secret:?} found in the server log"
        );
    }
}

/// A password or PIN hash made before the pepper (or under another argon2 cost) is made again,
/// with the pepper and the configured cost, at the first successful login or authorize; the
/// new hashes verify, and a wrong secret does not upgrade anything.
#[test]
fn stale_hashes_are_made_again_on_success() {
    use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
    let env = Env::new();
    let s = signer("olga");
    let cred = env.enroll(&s, "ec-p256").credential_id;
    let plain = |secret: &str| {
        argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(1024, 1, 1, None).unwrap(),
        )
        .hash_password(secret.as_bytes(), &SaltString::generate(&mut OsRng))
        .unwrap()
        .to_string()
    };
    let (old_pw, old_pin) = (plain(&s.password), plain(&s.pin));
    assert_eq!(
        env.db_execute(&format!(
            "UPDATE users SET password_hash = '{old_pw}' WHERE name = '{}'",
            s.user
        )),
        1
    );
    assert_eq!(
        env.db_execute(&format!(
            "UPDATE credentials SET pin_hash = '{old_pin}' WHERE id = '{cred}'"
        )),
        1
    );
    let peppered = |table: &str, column: &str| {
        env.db_i64(&format!(
            "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM {table} \
             WHERE {column} LIKE '%keyid=cXAx%' AND {column} NOT LIKE '%m=1024,%'"
        ))
    };
    let app = env.spawn();
    // A wrong password and a wrong PIN upgrade nothing.
    let r = app.login_raw(Some(&format!(
        "Basic {}",
        b64(format!("{}:not the password", s.user).as_bytes())
    )));
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(peppered("users", "password_hash"), 0);
    let token = app.login(&s.user, &s.password);
    assert_eq!(peppered("users", "password_hash"), 1);
    let h = digest(SHA256, b"upgraded");
    let wrong = app.authorize_wrongly(&token, &cred, &h);
    assert_eq!(wrong.status, 400, "{}", wrong.body);
    assert_eq!(peppered("credentials", "pin_hash"), 0);
    app.authorize(&token, &s, &cred, std::slice::from_ref(&h), SHA256);
    assert_eq!(peppered("credentials", "pin_hash"), 1);
    // The new hashes verify.
    let token = app.login(&s.user, &s.password);
    app.authorize(&token, &s, &cred, std::slice::from_ref(&h), SHA256);
}

/// No secret is stored in clear: after a flow that makes every kind (a login, a SAD and its
/// extension, a signature, an OAuth client secret, authorization code and credential token),
/// the database is searched for each of them, as sent and (for the TOTP secret) as raw bytes.
/// SQLite: the database file and its WAL, byte for byte; PostgreSQL: every row of every table
/// as JSON text, where binary columns read as hex.
#[test]
fn no_secret_is_stored_in_clear() {
    use crate::oauth::{
        add_client, credential_page, exchange_code, redirected, signer_fields, submit,
    };
    let env = Env::new();
    // An 8-digit PIN, which no hex digest or timestamp in the database matches by chance.
    let s = Signer {
        pin: "80417293".into(),
        ..signer("ivan")
    };
    let cred = env.enroll(&s, "ec-p256").credential_id;
    let client = add_client(&env, &[]);
    let app = env.spawn();
    let token = app.login(&s.user, &s.password);
    let h = digest(SHA256, b"kept secret");
    let sad = app.authorize(&token, &s, &cred, std::slice::from_ref(&h), SHA256);
    let r = app.post(
        "/csc/v2/credentials/extendTransaction",
        Some(&token),
        &json!({"credentialID": cred, "SAD": sad}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let extended = r.body["SAD"].as_str().unwrap().to_string();
    let r = app.sign_hash_raw(
        &token,
        json!({"credentialID": cred, "SAD": extended, "hashes": [b64(&h)],
            "signAlgo": "1.2.840.10045.4.3.2"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let h2 = digest(SHA256, b"kept secret too");
    let (f, verifier) = credential_page(&app, &client, &cred, std::slice::from_ref(&h2), &[]);
    let otp = s.next_otp(&cred);
    let q = redirected(&submit(&app, &f, &signer_fields(&s, &s.pin, &otp)));
    let code = q["code"].clone();
    let t = exchange_code(&app, &client, &code, &verifier, &[]);
    let credential_token = t["access_token"].as_str().unwrap().to_string();
    drop(app);

    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("password", s.password.clone().into_bytes()),
        ("PIN", s.pin.clone().into_bytes()),
        ("TOTP secret (base32)", s.totp_secret.clone().into_bytes()),
        (
            "TOTP secret (raw)",
            quill::auth::otp::parse_secret(&s.totp_secret)
                .unwrap()
                .to_vec(),
        ),
        ("access token", token.clone().into_bytes()),
        ("SAD", sad.clone().into_bytes()),
        ("extended SAD", extended.clone().into_bytes()),
        ("client secret", client.secret.clone().unwrap().into_bytes()),
        ("authorization code", code.clone().into_bytes()),
        ("credential token", credential_token.clone().into_bytes()),
        ("token user PIN", TOKEN_PIN.as_bytes().to_vec()),
    ];
    let stored: Vec<u8> = if env.db_url.starts_with("postgres") {
        use diesel::prelude::*;
        #[derive(QueryableByName)]
        struct Text {
            #[diesel(sql_type = diesel::sql_types::Text)]
            v: String,
        }
        let mut c = diesel::PgConnection::establish(&env.db_url).unwrap();
        let tables: Vec<Text> = diesel::sql_query(
            "SELECT table_name::text AS v FROM information_schema.tables \
             WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
        )
        .load(&mut c)
        .unwrap();
        assert!(tables.len() > 5, "the schema's tables");
        let mut all = String::new();
        for t in tables {
            let rows: Vec<Text> = diesel::sql_query(format!(
                "SELECT CAST(row_to_json(t) AS TEXT) AS v FROM \"{}\" t",
                t.v
            ))
            .load(&mut c)
            .unwrap();
            for r in rows {
                all.push_str(&r.v);
            }
        }
        all.into_bytes()
    } else {
        let path = env.db_url.trim_start_matches("sqlite://").to_string();
        let mut all = std::fs::read(&path).unwrap();
        if let Ok(wal) = std::fs::read(format!("{path}-wal")) {
            all.extend(wal);
        }
        all
    };
    // The search finds what is there: the user's name and the credential ID are stored.
    let contains = |needle: &[u8]| {
        let hex = hex::encode(needle).into_bytes();
        [needle, hex.as_slice()]
            .iter()
            .any(|n| stored.windows(n.len()).any(|w| w == *n))
    };
    assert!(contains(s.user.as_bytes()) && contains(cred.as_bytes()));
    for (what, secret) in &secrets {
        assert!(!contains(secret), "the {what} is stored in clear");
    }
}
