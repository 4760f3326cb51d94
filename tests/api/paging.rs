//! `credentials/list` paging (`maxResults`, `pageToken` → `nextPageToken`) on /csc/v2 and
//! /csc/v1: every credential exactly once and in order, `nextPageToken` exactly when more
//! follow (also with `onlyValid`), clear 400s for bad values, and a page token is worthless to
//! another user.

use serde_json::{Value, json};

use crate::helpers::*;

const V2: &str = "/csc/v2/credentials/list";
const V1: &str = "/csc/v1/credentials/list";

fn ids(r: &Resp) -> Vec<String> {
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["credentialIDs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// Walk every page with `body` + `maxResults`; the pages' ids.
fn walk(app: &TestApp, path: &str, token: &str, body: Value, max: u32) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let mut b = body.clone();
        b["maxResults"] = json!(max);
        if let Some(t) = &next {
            b["pageToken"] = json!(t);
        }
        let r = app.post(path, Some(token), &b);
        let page = ids(&r);
        assert!(page.len() <= max as usize, "{}", r.body);
        if let Some(infos) = r.body.get("credentialInfos") {
            let info_ids: Vec<&str> = infos
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["credentialID"].as_str().unwrap())
                .collect();
            assert_eq!(info_ids, page, "credentialInfos follow the page");
        }
        pages.push(page);
        next = r.body["nextPageToken"].as_str().map(str::to_string);
        if next.is_none() {
            return pages;
        }
        assert!(pages.len() < 50, "paging does not end");
    }
}

fn enroll_many(env: &Env, s: &Signer, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| env.enroll(s, "ec-p256").credential_id)
        .collect()
}

#[test]
fn pages_walk_every_credential_once_in_order() {
    let env = Env::new();
    let alice = signer("alice-pages");
    let bob = signer("bob-pages");
    let enrolled = enroll_many(&env, &alice, 5);
    let bobs = enroll_many(&env, &bob, 1);
    let app = env.spawn();
    let token = app.login(&alice.user, &alice.password);

    // Without maxResults: everything (under the cap of 1000), no nextPageToken.
    let all = app.post(V2, Some(&token), &json!({}));
    let full = ids(&all);
    assert!(all.body.get("nextPageToken").is_none(), "{}", all.body);
    let mut sorted = full.clone();
    sorted.sort();
    let mut want = enrolled.clone();
    want.sort();
    assert_eq!(sorted, want, "exactly alice's credentials");
    assert!(!full.contains(&bobs[0]));

    for path in [V2, V1] {
        let pages = walk(&app, path, &token, json!({}), 2);
        let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
        assert_eq!(sizes, [2, 2, 1], "{path}");
        assert_eq!(pages.concat(), full, "{path}: same order, each id once");
    }
    // Page sizes that end exactly on the last credential: no token after the last page.
    assert_eq!(walk(&app, V2, &token, json!({}), 5), vec![full.clone()]);
    let pages = walk(&app, V2, &token, json!({}), 4);
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [4, 1]);
    // An integral JSON number is an integer.
    let r = app.post(V2, Some(&token), &json!({"maxResults": 3.0}));
    assert_eq!(ids(&r).len(), 3);
    // Details page along with the ids.
    let pages = walk(
        &app,
        V2,
        &token,
        json!({"credentialInfo": true, "certificates": "none"}),
        2,
    );
    assert_eq!(pages.concat(), full);

    // onlyValid with paging: disable two credentials behind Quill's back (one by status, one
    // by failure count); pages are full until the last, and nothing valid is skipped.
    let off = [&full[1], &full[2]];
    env.db_execute(&format!(
        "UPDATE credentials SET status = 'scale-test' WHERE id = '{}'",
        off[0]
    ));
    env.db_execute(&format!(
        "UPDATE credentials SET failed_auths = 5 WHERE id = '{}'",
        off[1]
    ));
    let valid: Vec<String> = full
        .iter()
        .filter(|id| !off.contains(id))
        .cloned()
        .collect();
    let pages = walk(&app, V2, &token, json!({"onlyValid": true}), 2);
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 1]);
    assert_eq!(pages.concat(), valid);
    let r = app.post(
        V2,
        Some(&token),
        &json!({"onlyValid": true, "maxResults": 3}),
    );
    assert_eq!(ids(&r), valid);
    assert!(r.body.get("nextPageToken").is_none(), "{}", r.body);
    assert_eq!(r.body["onlyValid"], true);
}

#[test]
fn bad_paging_parameters_and_foreign_tokens_are_refused() {
    let env = Env::new();
    let alice = signer("alice-badpage");
    let bob = signer("bob-badpage");
    let alices = enroll_many(&env, &alice, 3);
    let bobs = enroll_many(&env, &bob, 2);
    let app = env.spawn();
    let ta = app.login(&alice.user, &alice.password);
    let tb = app.login(&bob.user, &bob.password);

    for bad in [
        json!(0),
        json!(-1),
        json!(1001),
        json!(2.5),
        json!("2"),
        json!(true),
        json!([2]),
        json!({"n": 2}),
    ] {
        for path in [V2, V1] {
            let r = app.post(path, Some(&ta), &json!({"maxResults": bad}));
            r.assert_error(400, "invalid_request");
            assert_eq!(
                r.description(),
                "Invalid parameter maxResults: an integer from 1 to 1000",
                "{bad}"
            );
        }
    }

    let first = app.post(V2, Some(&ta), &json!({"maxResults": 1}));
    let token = first.body["nextPageToken"].as_str().unwrap().to_string();
    let mut flipped = token.clone().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    for bad in [
        json!("garbage"),
        json!(""),
        json!("not base64!"),
        json!(flipped),
        json!(format!("{token}{token}")),
        json!("A".repeat(300)),
        json!(7),
        json!([token]),
    ] {
        let r = app.post(V2, Some(&ta), &json!({"maxResults": 1, "pageToken": bad}));
        r.assert_error(400, "invalid_request");
        assert_eq!(r.description(), "Invalid parameter pageToken", "{bad}");
    }
    // The genuine token still works, for alice.
    let second = app.post(V2, Some(&ta), &json!({"maxResults": 1, "pageToken": token}));
    assert_eq!(ids(&second), vec![alices_in_order(&app, &ta)[1].clone()]);

    // Alice's token is worthless to bob: refused, and nothing of alice's is shown.
    let r = app.post(V2, Some(&tb), &json!({"maxResults": 1, "pageToken": token}));
    r.assert_error(400, "invalid_request");
    assert_eq!(r.description(), "Invalid parameter pageToken");
    let text = r.body.to_string();
    assert!(
        alices.iter().all(|id| !text.contains(id.as_str())),
        "{text}"
    );
    // Bob's own pages never contain alice's credentials.
    let bob_all = walk(&app, V2, &tb, json!({}), 1).concat();
    let mut got = bob_all.clone();
    got.sort();
    let mut want = bobs.clone();
    want.sort();
    assert_eq!(got, want);
    // Without a token, paging needs a bearer token like any list.
    app.post(V2, None, &json!({"maxResults": 1}))
        .assert_error(401, "invalid_token");
}

fn alices_in_order(app: &TestApp, token: &str) -> Vec<String> {
    ids(&app.post(V2, Some(token), &json!({})))
}
