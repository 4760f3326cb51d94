//! Scale-test tooling: `quill admin seed` writes exactly USERS × CREDENTIALS_PER_USER marked
//! rows that log in, list and show over HTTP but never authorize; `quill bench scale` seeds,
//! serves, walks and measures, and reuses a matching seed.

use serde_json::{Value, json};

use crate::helpers::*;

/// A scalar SQL expression evaluated on the test's database.
fn scalar(env: &Env, expr: &str) -> i64 {
    use diesel::prelude::*;
    let q = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(expr));
    if env.db_url.starts_with("postgres") {
        let mut c = diesel::PgConnection::establish(&env.db_url).unwrap();
        q.get_result(&mut c).unwrap()
    } else {
        let mut c = diesel::SqliteConnection::establish(env.db_url.trim_start_matches("sqlite://"))
            .unwrap();
        q.get_result(&mut c).unwrap()
    }
}

fn run_json(env: &Env, args: &[&str]) -> Value {
    let out = env.quill().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "one JSON line: {stdout}");
    serde_json::from_str(&stdout).unwrap()
}

#[test]
fn seed_writes_exactly_n_marked_rows_that_list_and_show_but_never_sign() {
    let env = Env::new();
    let seed = [
        "admin",
        "seed",
        "--users",
        "3",
        "--credentials-per-user",
        "7",
        "--user-prefix",
        "sc-",
        "--password",
        "seed-password-1",
    ];
    let report = run_json(&env, &seed);
    assert_eq!(report["credentials"], 21);
    assert_eq!(report["users"], 3);
    let template = report["template_credential_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(scalar(&env, "(SELECT COUNT(*) FROM credentials)"), 21);
    assert_eq!(
        scalar(
            &env,
            "(SELECT COUNT(*) FROM credentials WHERE description = 'scale-test shared key')"
        ),
        21
    );
    assert_eq!(
        scalar(&env, "(SELECT COUNT(*) FROM users WHERE name LIKE 'sc-%')"),
        3
    );
    // Only the template is enabled; every copy is marked and has a key id of its own.
    assert_eq!(
        scalar(
            &env,
            "(SELECT COUNT(*) FROM credentials WHERE status = 'scale-test')"
        ),
        20
    );
    assert_eq!(
        scalar(&env, "(SELECT COUNT(DISTINCT key_id) FROM credentials)"),
        21
    );
    // Seeding the same prefix again is refused and writes nothing.
    let again = env.quill().args(seed).output().unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a seed"));
    assert_eq!(scalar(&env, "(SELECT COUNT(*) FROM credentials)"), 21);

    let app = env.spawn();
    let mut template_cert = None;
    let mut seen = Vec::new();
    for u in 0..3 {
        let user = format!("sc-{u}");
        let token = app.login(&user, "seed-password-1");
        let mut mine = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let mut body = json!({"maxResults": 3});
            if let Some(t) = &next {
                body["pageToken"] = json!(t);
            }
            let r = app.post("/csc/v2/credentials/list", Some(&token), &body);
            assert_eq!(r.status, 200, "{}", r.body);
            for id in r.body["credentialIDs"].as_array().unwrap() {
                mine.push(id.as_str().unwrap().to_string());
            }
            next = r.body["nextPageToken"].as_str().map(str::to_string);
            if next.is_none() {
                break;
            }
        }
        assert_eq!(mine.len(), 7, "{user}");
        assert_eq!(mine.contains(&template), u == 0);
        for id in &mine {
            let info = app.credential_info(&token, id);
            assert_eq!(info["description"], "scale-test shared key");
            let enabled = info["key"]["status"] == "enabled";
            assert_eq!(enabled, *id == template, "{id}: {info}");
            let cert = info["cert"]["certificates"][0].clone();
            assert!(cert.is_string());
            if *id == template {
                template_cert = Some(cert);
            } else if let Some(t) = &template_cert {
                assert_eq!(&cert, t, "copies share the template's certificate");
            }
        }
        // A copy never authorizes (refused before any PIN or OTP check).
        let copy = mine.iter().find(|id| **id != template).unwrap();
        let s = Signer {
            user: user.clone(),
            password: "seed-password-1".into(),
            pin: "123456".into(),
            totp_secret: "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP".into(),
            used_steps: Default::default(),
        };
        let hash = digest(SHA256, b"scale");
        let r = app.authorize_raw(&token, &s, copy, &[hash], SHA256);
        r.assert_error(400, "invalid_request");
        assert!(r.description().contains("disabled"), "{}", r.body);
        seen.extend(mine);
    }
    seen.sort();
    seen.dedup();
    assert_eq!(
        seen.len(),
        21,
        "every credential belongs to exactly one user"
    );
}

#[test]
fn bench_scale_seeds_serves_measures_and_reuses_the_seed() {
    let env = Env::new();
    let json_file = env.dir.path().join("bench.json");
    let args = [
        "bench",
        "scale",
        "--users",
        "2",
        "--credentials-per-user",
        "1500",
        "--requests",
        "5",
        "--max-seconds",
        "60",
        "--json",
        json_file.to_str().unwrap(),
    ];
    let report = run_json(&env, &args);
    let from_file: Value =
        serde_json::from_str(&std::fs::read_to_string(&json_file).unwrap()).unwrap();
    assert_eq!(report, from_file);
    let backend = if test_pg_url().is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    assert_eq!(report["backend"], backend);
    assert_eq!(report["credentials"], 3000);
    assert_eq!(report["seed"]["credentials"], 3000);
    assert!(report["seed"]["credentials_per_second"].as_f64().unwrap() > 0.0);
    assert_eq!(report["walk"]["credentials"], 1500);
    assert_eq!(report["walk"]["pages_of_1000"], 2);
    for plan in ["list_first_page", "list_middle_page", "info"] {
        let p = report["plans"][plan].as_str().unwrap();
        assert!(
            !p.contains("Seq Scan") && !p.starts_with("SCAN"),
            "{plan}: {p}"
        );
    }
    let scenarios = report["scenarios"].as_array().unwrap();
    assert_eq!(scenarios.len(), 8);
    for s in scenarios {
        assert_eq!(s["requests"], 5, "{s}");
        let p50 = s["p50_ms"].as_f64().unwrap();
        let p99 = s["p99_ms"].as_f64().unwrap();
        assert!(p50 > 0.0 && p50 <= p99, "{s}");
    }
    let items: Vec<i64> = scenarios
        .iter()
        .map(|s| s["items"].as_i64().unwrap())
        .collect();
    // Default page (1500 > the 1000 cap), 10, 10, 100, 100, 10 with info, onlyValid (the one
    // real credential belongs to this user), info.
    assert_eq!(items, [1000, 10, 10, 100, 100, 10, 1, 1]);

    // A second run finds the seed and reuses it; another shape is refused.
    let again = run_json(&env, &args);
    assert_eq!(again["seed"]["reused"], true);
    assert_eq!(
        scalar(&env, "(SELECT COUNT(*) FROM credentials)"),
        3000,
        "nothing seeded twice"
    );
    let other = env
        .quill()
        .args([
            "bench",
            "scale",
            "--users",
            "3",
            "--credentials-per-user",
            "10",
        ])
        .output()
        .unwrap();
    assert!(!other.status.success());
}
