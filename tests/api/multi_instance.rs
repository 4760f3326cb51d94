//! Several `quill serve` instances on one PostgreSQL database and one token, and the faults
//! production sees: the database stopped and restarted under load, an instance killed with
//! SIGKILL in the middle of a load run. Counters, single-use OTPs and SAD spending must hold
//! across instances; nothing may be half-written.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::*;
use crate::pg::PgCluster;

const ES256: &str = "1.2.840.10045.4.3.2";

/// The CI's PostgreSQL server when `QUILL_TEST_PG_URL` is set, else a private cluster; and a
/// fresh database on it for `env`.
fn on_postgres(env: &mut Env) -> (Option<PgCluster>, PgDb) {
    let (cluster, db) = match test_pg_url() {
        Some(admin) => (None, PgDb::create(&admin)),
        None => {
            let c = PgCluster::start();
            let db = c.database();
            (Some(c), db)
        }
    };
    env.db_url = db.url();
    (cluster, db)
}

/// POST without the schema checks and without panicking on a transport error (a killed or
/// stopped server is the point of these tests): `None` when no HTTP answer came.
fn try_post(app: &TestApp, path: &str, token: &str, body: &Value) -> Option<Resp> {
    let r = app
        .client
        .post(format!("{}{path}", app.base))
        .bearer_auth(token)
        .timeout(Duration::from_secs(30))
        .json(body)
        .send()
        .ok()?;
    let status = r.status().as_u16();
    let body = r.json::<Value>().unwrap_or(Value::Null);
    Some(Resp { status, body })
}

fn sign_one(cred: &str, sad: &str, h: &[u8]) -> Value {
    json!({"credentialID": cred, "SAD": sad, "hashes": [b64(h)], "signAlgo": ES256})
}

#[test]
fn two_instances_share_tokens_sads_counters_and_otps() {
    let mut env = Env::new();
    let (_cluster, _db) = on_postgres(&mut env);
    let s = signer("nadia");
    let cred = env.enroll(&s, "ec-p256").credential_id;
    let locked = env.enroll(&s, "ec-p256").credential_id;
    let a = Arc::new(env.spawn_named("a", &[]));
    let b = Arc::new(env.spawn_named("b", &[]));
    assert_ne!(a.base, b.base);

    // A token issued by one instance works on the other, and revoking it on one kills it on both.
    let token = a.login(&s.user, &s.password);
    let list = b.post("/csc/v2/credentials/list", Some(&token), &json!({}));
    assert_eq!(list.status, 200, "{}", list.body);
    let mut ids: Vec<&str> = list.body["credentialIDs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    ids.sort_unstable();
    let mut expected = vec![cred.as_str(), locked.as_str()];
    expected.sort_unstable();
    assert_eq!(ids, expected);
    let other = b.login(&s.user, &s.password);
    assert_eq!(
        a.post(
            "/csc/v2/auth/revoke",
            Some(&other),
            &json!({"token": other})
        )
        .status,
        204
    );
    b.post("/csc/v2/credentials/list", Some(&other), &json!({}))
        .assert_error(401, "invalid_token");

    // One SAD for 4 hashes, spent by 40 concurrent signHash calls spread over both instances:
    // exactly 4 signatures come out, one per hash, each verifying.
    let hashes: Vec<Vec<u8>> = (0..4)
        .map(|i| digest(SHA256, format!("doc {i}").as_bytes()))
        .collect();
    let sad = a.authorize(&token, &s, &cred, &hashes, SHA256);
    let results: Vec<(usize, Resp)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..40)
            .map(|i| {
                let app = if i % 2 == 0 { &a } else { &b };
                let body = sign_one(&cred, &sad, &hashes[i % 4]);
                let token = &token;
                scope.spawn(move || (i % 4, app.sign_hash_raw(token, body)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let key = p256_key(&a, &token, &cred);
    let mut signed = [0usize; 4];
    for (h, r) in &results {
        if r.status == 200 {
            signed[*h] += 1;
            verify_p256(&key, &hashes[*h], r.body["signatures"][0].as_str().unwrap());
        } else {
            r.assert_error(400, "invalid_request");
            assert!(r.body.get("signatures").is_none());
        }
    }
    assert_eq!(signed, [1, 1, 1, 1], "exactly numSignatures, one per hash");
    assert_eq!(
        env.db_i64("SELECT CAST(remaining AS BIGINT) AS n FROM sads"),
        0,
        "the SAD is spent"
    );

    // A TOTP code accepted by one instance is refused by the other.
    let code = s.next_otp(&cred);
    let body = |code: &str, doc: &[u8]| {
        json!({"credentialID": cred, "numSignatures": 1, "hashes": [b64(&digest(SHA256, doc))],
               "hashAlgorithmOID": SHA256,
               "authData": [{"id": "PIN", "value": s.pin}, {"id": "OTP", "value": code}]})
    };
    let first = a.post(
        "/csc/v2/credentials/authorize",
        Some(&token),
        &body(&code, b"x"),
    );
    assert_eq!(first.status, 200, "{}", first.body);
    b.post(
        "/csc/v2/credentials/authorize",
        Some(&token),
        &body(&code, b"y"),
    )
    .assert_error(400, "invalid_authentication_data");

    // Wrong PINs count across instances: of 8 in parallel over both, exactly 5 are judged (and
    // lock the credential for both) and 3 find it locked.
    let answers: Vec<String> = std::thread::scope(|scope| {
        let calls: Vec<_> = (0..8)
            .map(|i| {
                let app = if i % 2 == 0 { &a } else { &b };
                let (token, locked, s) = (&token, &locked, &s);
                scope.spawn(move || {
                    let r = app.post(
                        "/csc/v2/credentials/authorize",
                        Some(token),
                        &json!({"credentialID": locked, "numSignatures": 1,
                                "hashes": [b64(&digest(SHA256, b"z"))], "hashAlgorithmOID": SHA256,
                                "authData": [{"id": "PIN", "value": "999000"},
                                             {"id": "OTP", "value": totp_now(&s.totp_secret)}]}),
                    );
                    assert_eq!(r.status, 400, "{}", r.body);
                    format!("{} {}", r.body["error"], r.description())
                })
            })
            .collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    let judged = answers
        .iter()
        .filter(|a| a.contains("invalid_authentication_data"))
        .count();
    let refused = answers
        .iter()
        .filter(|a| a.ends_with("Credential locked"))
        .count();
    assert_eq!((judged, refused), (5, 3), "{answers:?}");
    assert_eq!(
        env.db_i64(&format!(
            "SELECT CAST(failed_auths AS BIGINT) AS n FROM credentials WHERE id = '{locked}'"
        )),
        5,
        "the counter stops at the limit, whichever instance counted"
    );
    for app in [&a, &b] {
        let r = app.authorize_raw(&token, &s, &locked, &[digest(SHA256, b"w")], SHA256);
        r.assert_error(400, "invalid_request");
        assert_eq!(r.description(), "Credential locked");
    }
    audit_verifies(&env);
}

#[test]
fn database_outage_under_load_is_503_then_full_service() {
    // Always a private cluster: this test stops it.
    let mut env = Env::new();
    let cluster = PgCluster::start();
    let _db = {
        let db = cluster.database();
        env.db_url = db.url();
        db
    };
    let s = signer("olek");
    let cred = env.enroll(&s, "ec-p256").credential_id;
    let app = env.spawn();
    let token = app.login(&s.user, &s.password);
    let h = digest(SHA256, b"signed after the outage");
    let sad = app.authorize(&token, &s, &cred, std::slice::from_ref(&h), SHA256);

    // Load: list requests from two threads until told to stop (bounded in time and count).
    let stop = AtomicBool::new(false);
    let statuses = Mutex::new(Vec::new());
    let down_since = Mutex::new(None::<Instant>);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                let started = Instant::now();
                for _ in 0..5_000 {
                    if stop.load(Ordering::Relaxed) || started.elapsed() > Duration::from_secs(120)
                    {
                        break;
                    }
                    let r = try_post(&app, "/csc/v2/credentials/list", &token, &json!({}))
                        .expect("the server stays up while the database is down");
                    if r.status != 200 {
                        r.assert_error(503, "temporarily_unavailable");
                    }
                    statuses.lock().unwrap().push(r.status);
                    std::thread::sleep(Duration::from_millis(20));
                }
            });
        }
        std::thread::sleep(Duration::from_millis(500));
        cluster.down("fast");
        *down_since.lock().unwrap() = Some(Instant::now());

        // While it is down: a CSC 503, and signHash neither signs nor spends the SAD.
        let r = try_post(
            &app,
            "/csc/v2/signatures/signHash",
            &token,
            &sign_one(&cred, &sad, &h),
        )
        .unwrap();
        r.assert_error(503, "temporarily_unavailable");
        assert!(r.body.get("signatures").is_none());
        let r = app.login_raw(Some(&format!(
            "Basic {}",
            b64(format!("{}:{}", s.user, s.password).as_bytes())
        )));
        r.assert_error(503, "temporarily_unavailable");
        let ready = app
            .client
            .get(format!("{}/readyz", app.base))
            .timeout(Duration::from_secs(30))
            .send()
            .unwrap();
        assert_eq!(ready.status().as_u16(), 503);
        let ready: Value = ready.json().unwrap();
        assert_eq!(ready["error"], "temporarily_unavailable");
        assert!(
            ready["error_description"]
                .as_str()
                .unwrap()
                .contains("database"),
            "{ready}"
        );

        cluster.up();
        // Full service again, without restarting Quill.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let r = try_post(&app, "/csc/v2/credentials/list", &token, &json!({})).unwrap();
            if r.status == 200 {
                break;
            }
            assert!(Instant::now() < deadline, "no recovery: {}", r.body);
            std::thread::sleep(Duration::from_millis(200));
        }
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
    });
    let statuses = statuses.into_inner().unwrap();
    assert!(statuses.contains(&503), "the outage was seen");
    assert!(statuses.iter().filter(|s| **s == 200).count() >= 2);

    // The SAD survived the outage untouched: it signs now, once.
    let r = app.sign_hash_raw(&token, sign_one(&cred, &sad, &h));
    assert_eq!(r.status, 200, "{}", r.body);
    let key = p256_key(&app, &token, &cred);
    verify_p256(&key, &h, r.body["signatures"][0].as_str().unwrap());
    app.sign_hash_raw(&token, sign_one(&cred, &sad, &h))
        .assert_error(400, "invalid_request");
    let login = app.login(&s.user, &s.password);
    assert!(!login.is_empty());
    let ready = app
        .client
        .get(format!("{}/readyz", app.base))
        .send()
        .unwrap();
    assert_eq!(ready.status().as_u16(), 200);
    audit_verifies(&env);
}

#[test]
fn kill_9_of_one_instance_mid_load_spends_nothing_twice() {
    let mut env = Env::new();
    let (_cluster, _db) = on_postgres(&mut env);
    let s = signer("piotr");
    let cred = env
        .try_enroll_signer(&s, "ec-p256", &["--multisign", "200"])
        .unwrap()
        .credential_id;
    let mut a = env.spawn_named("a", &[]);
    let b = env.spawn_named("b", &[]);
    let token = b.login(&s.user, &s.password);
    const N: usize = 120;
    let hashes: Vec<Vec<u8>> = (0..N)
        .map(|i| digest(SHA256, format!("page {i}").as_bytes()))
        .collect();
    let sad = b.authorize(&token, &s, &cred, &hashes, SHA256);

    // Four workers take hashes from one queue, alternately at A and B; A is killed when a third
    // of the hashes are done. A hash whose request to A got no answer is retried at B.
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let a_dead = AtomicBool::new(false);
    let outcomes: Mutex<Vec<(usize, &'static str, Resp)>> = Mutex::new(Vec::new());
    let a_ref = Mutex::new(&mut a);
    std::thread::scope(|scope| {
        for w in 0..4 {
            let (next, done, a_dead, outcomes, a_ref) = (&next, &done, &a_dead, &outcomes, &a_ref);
            let (b, token, sad, cred, hashes) = (&b, &token, &sad, &cred, &hashes);
            scope.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= N {
                        break;
                    }
                    let body = sign_one(cred, sad, &hashes[i]);
                    let at_a = (i + w) % 2 == 0 && !a_dead.load(Ordering::Relaxed);
                    let answer = if at_a {
                        let base = a_ref.lock().unwrap().base.clone();
                        let client = reqwest::blocking::Client::new();
                        client
                            .post(format!("{base}/csc/v2/signatures/signHash"))
                            .bearer_auth(token)
                            .timeout(Duration::from_secs(30))
                            .json(&body)
                            .send()
                            .ok()
                            .map(|r| {
                                let status = r.status().as_u16();
                                Resp {
                                    status,
                                    body: r.json().unwrap_or(Value::Null),
                                }
                            })
                            .map(|r| ("a", r))
                    } else {
                        None
                    };
                    let (who, r) = match answer {
                        Some(x) => x,
                        None => (
                            "b",
                            try_post(b, "/csc/v2/signatures/signHash", token, &body)
                                .expect("B keeps serving"),
                        ),
                    };
                    outcomes.lock().unwrap().push((i, who, r));
                    if done.fetch_add(1, Ordering::Relaxed) + 1 == N / 3 {
                        a_dead.store(true, Ordering::Relaxed);
                        a_ref.lock().unwrap().kill9();
                    }
                }
            });
        }
    });
    assert!(a_dead.load(Ordering::Relaxed));
    let outcomes = outcomes.into_inner().unwrap();
    let key = p256_key(&b, &token, &cred);
    let mut signatures = vec![0usize; N];
    let mut refused_as_spent = 0;
    let mut after_kill_at_b = 0;
    for (i, who, r) in &outcomes {
        if r.status == 200 {
            signatures[*i] += 1;
            verify_p256(&key, &hashes[*i], r.body["signatures"][0].as_str().unwrap());
            if *who == "b" {
                after_kill_at_b += 1;
            }
        } else {
            // Only a hash that A spent and then died on can come back refused.
            r.assert_error(400, "invalid_request");
            assert!(r.description().contains("already signed"), "{}", r.body);
            refused_as_spent += 1;
        }
    }
    assert!(signatures.iter().all(|n| *n <= 1), "no hash signed twice");
    let signed: usize = signatures.iter().sum();
    assert_eq!(signed + refused_as_spent, N, "every hash was answered once");
    assert!(
        refused_as_spent <= 4,
        "at most one in-flight request per worker was lost"
    );
    assert!(after_kill_at_b > N / 2, "B kept serving");
    // The database agrees: every hash used once, the count at zero, the audit chain whole.
    assert_eq!(env.used_digests("TRUE"), N as i64);
    assert_eq!(
        env.db_i64("SELECT CAST(remaining AS BIGINT) AS n FROM sads"),
        0
    );
    audit_verifies(&env);
    let spent_records = env.db_i64(
        "SELECT COUNT(*) AS n FROM audit_log WHERE action = 'sign_hash' AND outcome = 'sad_spent'",
    );
    assert_eq!(spent_records, N as i64, "one audit record per spent hash");
}
