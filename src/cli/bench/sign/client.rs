//! The HTTP side of the benchmark: online OTP challenges read back from the server's outbox,
//! `credentials/authorize`, signHash requests prepared ahead of the clock, the check of a
//! signHash answer, and the server's own token time from its `/metrics`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use serde_json::{Value, json};

use super::PER_SAD;
use super::args::{KeyKind, random_digest};
use super::setup::Signer;
use crate::cli::bench::load::{self, Http};
use crate::crypto;

/// The server's own count and total time of token sign calls (`quill_hsm_sign_seconds`), read
/// from its `/metrics` on a connection of its own.
pub(super) fn token_time(addr: SocketAddr) -> anyhow::Result<(u64, f64)> {
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n").into_bytes();
    let (status, body) = Http::connect(addr)?.send(&request)?;
    anyhow::ensure!(status == 200, "GET /metrics answered {status}");
    let text = String::from_utf8(body)?;
    let value = |name: &str| -> anyhow::Result<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .ok_or_else(|| anyhow::anyhow!("no {name} in /metrics"))
    };
    let count = value("quill_hsm_sign_seconds_count")?;
    Ok((count as u64, value("quill_hsm_sign_seconds_sum")?))
}

/// The HTTP side of the benchmark: the server's address, a bearer token, the signer.
pub(super) struct Client<'a> {
    pub(super) addr: SocketAddr,
    pub(super) bearer: String,
    pub(super) signer: &'a Signer,
    /// The server's OTP outbox file.
    pub(super) outbox: PathBuf,
}

impl Client<'_> {
    /// A fresh online OTP for `cred`: `credentials/getChallenge`, then the newest code the
    /// server wrote to its outbox for that credential (a new challenge replaces the last).
    pub(super) fn challenge(&self, http: &mut Http, cred: &str) -> anyhow::Result<String> {
        let request = load::post_request(
            self.addr,
            "/csc/v2/credentials/getChallenge",
            Some(&self.bearer),
            &json!({ "credentialID": cred, "authObjectID": "OTP" }).to_string(),
        );
        let (status, body) = http.send(&request)?;
        anyhow::ensure!(
            status == 204,
            "credentials/getChallenge: {status} {}",
            String::from_utf8_lossy(&body)
        );
        let outbox = std::fs::read_to_string(&self.outbox)
            .with_context(|| format!("cannot read {}", self.outbox.display()))?;
        outbox
            .lines()
            .rev()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|m| m.get("credential_id").and_then(Value::as_str) == Some(cred))
            .and_then(|m| m.get("code").and_then(Value::as_str).map(str::to_string))
            .ok_or_else(|| anyhow::anyhow!("no OTP for {cred} in the outbox"))
    }

    pub(super) fn authorize(
        &self,
        http: &mut Http,
        kind: &KeyKind,
        cred: &str,
        code: &str,
        hashes: &[String],
    ) -> anyhow::Result<String> {
        let answer = http.post_json(
            self.addr,
            "/csc/v2/credentials/authorize",
            Some(&self.bearer),
            &json!({
                "credentialID": cred,
                "numSignatures": hashes.len(),
                "hashes": hashes,
                "hashAlgorithmOID": kind.hash.oid(),
                "authData": [
                    {"id": "PIN", "value": self.signer.pin},
                    {"id": "OTP", "value": code},
                ],
            }),
        )?;
        Ok(answer
            .get("SAD")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow::anyhow!("credentials/authorize without SAD"))?
            .to_string())
    }

    pub(super) fn sign_hash_request(
        &self,
        kind: &KeyKind,
        cred: &str,
        sad: &str,
        hashes: &[String],
    ) -> Vec<u8> {
        let body = json!({
            "credentialID": cred,
            "SAD": sad,
            "hashes": hashes,
            "hashAlgorithmOID": kind.hash.oid(),
            "signAlgo": kind.sign_algo,
        });
        load::post_request(
            self.addr,
            "/csc/v2/signatures/signHash",
            Some(&self.bearer),
            &body.to_string(),
        )
    }
}

/// A signHash answer, counting signatures without keeping them.
#[derive(serde::Deserialize)]
struct Signed {
    signatures: Vec<serde::de::IgnoredAny>,
}

pub(super) fn expect_signed(status: u16, body: &[u8], n: usize) -> anyhow::Result<u64> {
    anyhow::ensure!(
        status == 200,
        "signHash: {status} {}",
        String::from_utf8_lossy(body)
    );
    let signed: Signed = serde_json::from_slice(body)?;
    anyhow::ensure!(
        signed.signatures.len() == n,
        "signHash returned {} signatures for {n} hashes",
        signed.signatures.len()
    );
    Ok(u64::try_from(n)?)
}

/// Authorize enough SADs for `signatures` digests and build the signHash calls that spend them,
/// `per_call` digests each.
pub(super) fn prepare_calls(
    client: &Client<'_>,
    kind: &KeyKind,
    cred: &str,
    signatures: usize,
    per_call: usize,
) -> anyhow::Result<Vec<Vec<u8>>> {
    let sads = signatures.div_ceil(PER_SAD).max(1);
    // A fresh connection: the server closes idle keep-alive connections after a few seconds.
    let mut http = Http::connect(client.addr)?;
    let mut calls = Vec::with_capacity(sads * PER_SAD / per_call);
    for _ in 0..sads {
        let hashes: Vec<String> = (0..PER_SAD)
            .map(|_| crypto::b64::encode(&random_digest(kind.hash)))
            .collect();
        let code = client.challenge(&mut http, cred)?;
        let sad = client.authorize(&mut http, kind, cred, &code, &hashes)?;
        for chunk in hashes.chunks(per_call) {
            calls.push(client.sign_hash_request(kind, cred, &sad, chunk));
        }
    }
    Ok(calls)
}
