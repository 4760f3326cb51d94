//! The token measured without the server: the raw `Pkcs11Qscd::sign` rate of one key, and the
//! cost of one argon2id PIN verification.

use std::sync::Arc;
use std::time::Instant;

use super::args::{KeyKind, SignArgs, random_digest, token_input};
use crate::auth::password;
use crate::cli::bench::load::{self, Limits, Run};
use crate::qscd::Qscd;
use crate::secret::Secret;

/// Raw sign rate of one key through `Pkcs11Qscd`, one digest per call.
pub(super) fn measure_raw(
    qscd: &Arc<dyn Qscd>,
    kind: &KeyKind,
    key_id: &[u8],
    threads: usize,
    limits: Limits,
) -> anyhow::Result<Run> {
    let inputs = (0..64)
        .map(|_| token_input(kind, &random_digest(kind.hash)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    load::run(
        threads,
        limits,
        |_| Ok(()),
        |_, i| {
            let input = inputs
                .get(i % inputs.len())
                .ok_or_else(|| anyhow::anyhow!("no input"))?;
            let out = qscd.sign(key_id, kind.mechanism, &[input.as_slice()])?;
            anyhow::ensure!(
                out.len() == 1,
                "the token returned {} signatures",
                out.len()
            );
            Ok(1)
        },
    )
}

/// Median time of a few argon2id PIN verifications with the configured cost and the token's
/// pepper (fetched once, as the server does at start-up), ms.
pub(super) fn argon2_verify_ms(args: &SignArgs, qscd: &dyn Qscd) -> anyhow::Result<f64> {
    let pin = Secret::new("12345678");
    let pepper = password::Pepper::from_token(qscd)?;
    let phc = password::hash(&pin, args.hash.params(), &pepper).map_err(anyhow::Error::msg)?;
    let mut times: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            let ok = password::verify(&pin, &phc, &pepper);
            (ok, t.elapsed().as_secs_f64() * 1000.0)
        })
        .map(|(ok, ms)| {
            if ok {
                Ok(ms)
            } else {
                Err(anyhow::anyhow!("argon2 verify failed"))
            }
        })
        .collect::<anyhow::Result<_>>()?;
    times.sort_by(f64::total_cmp);
    Ok(times.get(times.len() / 2).copied().unwrap_or_default())
}
