//! The audit trail: flows leave chained records; editing one row is found by `quill audit verify`.

use serde_json::json;

use crate::helpers::*;

#[test]
fn flows_are_audited_and_tampering_is_detected() {
    let env = Env::new();
    let s = signer("pia");
    let cred = env.enroll(&s, "ec-p256").credential_id;
    let app = env.spawn();
    let token = app.login(&s.user, &s.password);
    let bad = format!("Basic {}", b64(format!("{}:wrong-pass", s.user).as_bytes()));
    app.login_raw(Some(&bad))
        .assert_error(400, "authentication_error");
    let h = digest(SHA256, b"audited");
    let sad = app.authorize(&token, &s, &cred, std::slice::from_ref(&h), SHA256);
    let r = app.sign_hash_raw(
        &token,
        json!({"credentialID": cred, "SAD": sad, "hashes": [b64(&h)], "signAlgo": "1.2.840.10045.4.3.2"}),
    );
    assert_eq!(r.status, 200);
    let r = app.sign_hash_raw(
        &token,
        json!({"credentialID": cred, "SAD": sad, "hashes": [b64(&h)], "signAlgo": "1.2.840.10045.4.3.2"}),
    );
    assert_eq!(r.status, 400);
    // a wrong PIN: a failed authorization is recorded too
    let wrong = app.authorize_wrongly(&token, &cred, &h);
    wrong.assert_error(400, "invalid_authentication_data");
    drop(app);

    let export = env
        .quill()
        .args(["audit", "export", "--since", "0"])
        .output()
        .unwrap();
    assert!(export.status.success());
    let records: Vec<serde_json::Value> = String::from_utf8(export.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<(String, String)> = records
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap().into(),
                r["outcome"].as_str().unwrap().into(),
            )
        })
        .collect();
    for expected in [
        ("login", "ok"),
        ("login", "failed"),
        ("authorize", "granted"),
        ("authorize", "failed"),
        ("sign_hash", "sad_spent"),
        ("sign_hash", "refused"),
    ] {
        assert!(
            kinds.contains(&(expected.0.to_string(), expected.1.to_string())),
            "{expected:?} missing from {kinds:?}"
        );
    }
    let spent = records
        .iter()
        .find(|r| r["outcome"] == "sad_spent")
        .unwrap();
    let detail: serde_json::Value =
        serde_json::from_str(spent["detail"].as_str().unwrap()).unwrap();
    assert_eq!(detail["hashes"], json!([hex::encode(&h)]));
    assert_eq!(spent["credential_id"], cred);
    // A refusal names its digests by count and one SHA-256 over them.
    let refused = records.iter().find(|r| r["outcome"] == "refused").unwrap();
    let detail: serde_json::Value =
        serde_json::from_str(refused["detail"].as_str().unwrap()).unwrap();
    assert_eq!(detail.get("hashes"), None, "{detail}");
    assert_eq!(detail["n"], 1);
    assert_eq!(
        detail["hashes_sha256"],
        hex::encode(digest(SHA256, &h)),
        "{detail}"
    );

    let verify = env.quill().args(["audit", "verify"]).output().unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    // Its head, kept aside, is an anchor: cutting records off the end leaves a chain that
    // verifies alone, but not held to the anchor.
    let out: serde_json::Value = serde_json::from_slice(&verify.stdout).unwrap();
    let anchor = format!(
        "{}:{}",
        out["head"]["seq"],
        out["head"]["hash"].as_str().unwrap()
    );
    let last = records.last().unwrap()["seq"].as_i64().unwrap();
    assert_eq!(out["head"]["seq"], last);
    assert!(
        env.quill()
            .args(["audit", "verify", "--anchor", &anchor])
            .status()
            .unwrap()
            .success()
    );
    let cut = env.db_execute(&format!("DELETE FROM audit_log WHERE seq >= {}", last - 1));
    assert_eq!(cut, 2);
    assert!(
        env.quill()
            .args(["audit", "verify"])
            .status()
            .unwrap()
            .success()
    );
    let held = env
        .quill()
        .args(["audit", "verify", "--anchor", &anchor])
        .output()
        .unwrap();
    assert!(!held.status.success());
    assert!(
        String::from_utf8_lossy(&held.stderr).contains("no longer holds record"),
        "{}",
        String::from_utf8_lossy(&held.stderr)
    );

    // edit one row behind Quill's back
    let touched = env.db_execute(
        "UPDATE audit_log SET outcome = 'ok' WHERE action = 'login' AND outcome = 'failed'",
    );
    assert_eq!(touched, 1);
    let edited = records.iter().find(|r| r["outcome"] == "failed").unwrap()["seq"]
        .as_i64()
        .unwrap();
    let verify = env.quill().args(["audit", "verify"]).output().unwrap();
    assert!(!verify.status.success());
    let out: serde_json::Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert_eq!(out["first_broken"], edited);
}
