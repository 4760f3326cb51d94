//! The authorization page in a real browser: headless Chromium driven over WebDriver
//! (Debian's `chromium` + `chromium-driver`, which `.ci/deps` installs) with fantoccini. The
//! signer uses the keyboard only — the PIN field has focus on arrival, Tab moves to the OTP
//! field, Enter submits — the browser follows the redirect, the code is exchanged with PKCE, and
//! the credential token signs a hash whose signature verifies against the certificate. A
//! screenshot of the page is written under the test output directory for review.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use fantoccini::key::Key;
use serde_json::json;

use crate::helpers::*;
use crate::oauth::{
    REDIRECT, add_client, exchange_code, pkce, sign_verified_with_credential_token,
};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// chromedriver on a free loopback port, answering.
fn chromedriver() -> Option<Driver> {
    if !std::path::Path::new(CHROMEDRIVER).exists() {
        assert!(
            std::env::var("QUILL_SKIP_BROWSER").is_ok_and(|v| v == "1"),
            "{CHROMEDRIVER} is missing: run .ci/deps (installs chromium and chromium-driver), \
             or set QUILL_SKIP_BROWSER=1 to skip the browser test"
        );
        return None;
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let until = Instant::now() + Duration::from_secs(20);
    while reqwest::blocking::get(format!("{url}/status")).is_err() {
        assert!(Instant::now() < until, "chromedriver did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(Driver { child, url })
}

#[test]
fn signer_authorizes_in_headless_chromium_with_the_keyboard_only() {
    let Some(driver) = chromedriver() else {
        return;
    };
    let env = Env::new();
    let s = signer("vera");
    let cred = env.enroll(&s, "ec-p256").credential_id;
    let app = env.spawn();
    let client = add_client(&env, &[]);
    let (verifier, challenge) = pkce();
    let h = digest(SHA256, b"offer.pdf");
    let mut url = url::Url::parse(&format!("{}/oauth2/authorize", app.base)).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client.id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", "credential")
        .append_pair("credentialID", &cred)
        .append_pair("numSignatures", "1")
        .append_pair("hashes", &URL_SAFE_NO_PAD.encode(&h))
        .append_pair("hashAlgorithmOID", SHA256)
        .append_pair("description", "Mortgage offer")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("state", "browser-state");
    let (user, password, pin) = (s.user.clone(), s.password.clone(), s.pin.clone());
    let otp = s.next_otp(&cred);
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("oauth-authorize-page.png");

    let rt = tokio::runtime::Runtime::new().unwrap();
    let landed = rt.block_on(async {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=800,900"],
            }),
        );
        // The WebDriver is on loopback HTTP: no TLS stack for the client.
        let http = hyper_util::client::legacy::connect::HttpConnector::new();
        let browser = fantoccini::ClientBuilder::new(http)
            .capabilities(caps)
            .connect(&driver.url)
            .await
            .expect("a WebDriver session");
        browser.goto(url.as_str()).await.unwrap();
        let html = browser.source().await.unwrap();
        assert!(
            html.contains("Mortgage offer") && html.contains("Acme Bank"),
            "{html}"
        );
        std::fs::write(&shot, browser.screenshot().await.unwrap()).unwrap();

        // Keyboard only: focus starts in the user name field; Tab through password and PIN to
        // the OTP field; Enter submits.
        for (id, value) in [("username", &user), ("password", &password), ("pin", &pin)] {
            let focused = browser.active_element().await.unwrap();
            assert_eq!(focused.attr("id").await.unwrap().as_deref(), Some(id));
            focused.send_keys(value).await.unwrap();
            focused
                .send_keys(&char::from(Key::Tab).to_string())
                .await
                .unwrap();
        }
        let focused = browser.active_element().await.unwrap();
        assert_eq!(focused.attr("id").await.unwrap().as_deref(), Some("otp"));
        focused
            .send_keys(&format!("{otp}{}", char::from(Key::Enter)))
            .await
            .unwrap();

        // The browser is sent back to the client (nothing listens there: the URL is enough).
        let until = Instant::now() + Duration::from_secs(20);
        let landed = loop {
            let now = browser.current_url().await.unwrap();
            if now.as_str().starts_with(REDIRECT) {
                break now;
            }
            assert!(Instant::now() < until, "stuck at {now}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        browser.close().await.unwrap();
        landed
    });
    eprintln!("screenshot of the authorization page: {}", shot.display());
    assert!(std::fs::metadata(&shot).unwrap().len() > 1000);

    let q: std::collections::HashMap<_, _> = landed.query_pairs().into_owned().collect();
    assert_eq!(q["state"], "browser-state");
    let t = exchange_code(&app, &client, &q["code"], &verifier, &[]);
    sign_verified_with_credential_token(&app, &s, &cred, t["access_token"].as_str().unwrap(), &h);
}
