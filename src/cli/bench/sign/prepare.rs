//! The run's state and the phases before any server measurement: the token, database and
//! signer (step 1), one SAD-preparing credential per key with the raw ceiling on its key
//! (steps 2 and 3), the TOTP credentials of the flows, and the login to the started server.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use secrecy::SecretString;
use serde_json::{Value, json};

use super::args::{KeyKind, SignArgs, key_kind};
use super::client::Client;
use super::raw::measure_raw;
use super::setup::{Creds, Otp, Signer, enrol_credentials};
use super::{FLOW_KEYS, MARGIN, OUTBOX, PREP_HASH, TOKEN_LABEL, USER};
use crate::auth::password::HashParams;
use crate::auth::{otp, token};
use crate::cli::bench::child::ServeChild;
use crate::cli::bench::load::{Http, Limits, Run};
use crate::qscd::Qscd;
use crate::qscd::pkcs11::{Pkcs11Config, Pkcs11Qscd};
use crate::store::Store;

/// What every phase of one run shares: the settings, the token and database, the signer, the
/// SAD-preparing credentials and the standalone raw figures.
pub(super) struct Bench<'a> {
    pub(super) args: &'a SignArgs,
    pub(super) levels: Vec<usize>,
    pub(super) duration: Duration,
    pub(super) kinds: Vec<KeyKind>,
    pub(super) token_pin: String,
    // `store` before `qscd`: fields drop in order, the store first.
    store: Store,
    pub(super) qscd: Arc<dyn Qscd>,
    /// "sqlite" or "postgres", for the report.
    pub(super) database: &'static str,
    pub(super) signer: Signer,
    /// Per key: the one online-OTP credential that serves the raw rows and every prepared SAD.
    pub(super) creds: BTreeMap<String, Creds>,
    /// Per key and concurrency: the standalone raw run.
    pub(super) raw: BTreeMap<(String, usize), Run>,
}

impl<'a> Bench<'a> {
    /// 1. Token, database, signer; the run's header line.
    pub(super) fn setup(args: &'a SignArgs, db_url: &str) -> anyhow::Result<Bench<'a>> {
        let levels = args.levels();
        let duration = Duration::from_millis(args.duration_ms);
        let kinds = args
            .keys
            .iter()
            .map(|k| key_kind(k))
            .collect::<anyhow::Result<Vec<_>>>()?;

        let token_pin = token::random_id(12);
        Pkcs11Qscd::init_token(
            &args.pkcs11_module,
            TOKEN_LABEL,
            &SecretString::from(token::random_id(12)),
            &SecretString::from(token_pin.clone()),
        )?;
        let qscd: Arc<dyn Qscd> = Arc::new(Pkcs11Qscd::open(&Pkcs11Config {
            module: args.pkcs11_module.clone(),
            token_label: TOKEN_LABEL.into(),
            pin: SecretString::from(token_pin.clone()),
            max_sessions: 8,
        })?);
        let store = Store::open(db_url, 2)?;
        let database = if crate::store::sqlite_path(db_url).is_ok() {
            "sqlite"
        } else {
            "postgres"
        };
        let signer = Signer {
            password: format!("bench-{}", token::random_id(8)),
            pin: "24681357".into(),
            totp: otp::generate_secret(),
        };
        let build = if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        };
        eprintln!(
            "quill bench sign: {build} build, {database}, keys {}, concurrency {levels:?}, \
             {} ms per scenario, at most {} signatures per scenario",
            args.keys.join(","),
            args.duration_ms,
            args.max_signatures
        );
        Ok(Bench {
            args,
            levels,
            duration,
            kinds,
            token_pin,
            store,
            qscd,
            database,
            signer,
            creds: BTreeMap::new(),
            raw: BTreeMap::new(),
        })
    }

    fn enrol(
        &self,
        hash: HashParams,
        key: &str,
        n: usize,
        otp_kind: Otp,
        c: &mut Creds,
    ) -> anyhow::Result<()> {
        enrol_credentials(
            &self.store,
            &self.qscd,
            hash,
            &self.signer,
            key,
            n,
            otp_kind,
            c,
        )
    }

    /// 2. One credential per key (it prepares every SAD), 3. the raw ceiling on its key.
    pub(super) fn enrol_and_measure_raw(&mut self) -> anyhow::Result<()> {
        let args = self.args;
        // The standalone raw figure sizes the prepared inputs and fills the `raw` rows; each
        // ratio is taken against the raw slices interleaved with its own scenario, so a
        // quarter will do.
        let raw_limits = Limits {
            duration: self.duration / 4,
            max_calls: args.max_signatures,
            warm_up: args.warm_up,
        };
        for kind in &self.kinds {
            let mut c = Creds::default();
            let t = Instant::now();
            self.enrol(PREP_HASH, &kind.name, 1, Otp::Online, &mut c)?;
            eprintln!(
                "enrolled one {} credential in {:.0} ms",
                kind.name,
                t.elapsed().as_secs_f64() * 1000.0
            );
            let key_id = c
                .key_ids
                .first()
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("no key"))?;
            for &n in &self.levels {
                let r = measure_raw(&self.qscd, kind, &key_id, n, raw_limits)?;
                eprintln!("raw {} ×{n}: {:.0} signatures/s", kind.name, r.rate());
                self.raw.insert((kind.name.clone(), n), r);
            }
            self.creds.insert(kind.name.clone(), c);
        }
        Ok(())
    }

    fn raw_rate(&self, key: &str, n: usize) -> f64 {
        self.raw
            .get(&(key.to_string(), n))
            .map(Run::rate)
            .unwrap_or_default()
    }

    /// Inputs for a scenario: what the raw rate could sign in its time, and some more.
    pub(super) fn signatures_for(&self, key: &str, n: usize, per_call: usize) -> usize {
        let args = self.args;
        let timed = (self.raw_rate(key, n) * self.duration.as_secs_f64() * MARGIN).ceil() as usize;
        (timed + n * args.warm_up * per_call)
            .max(n * per_call * 2)
            .min(args.max_signatures)
    }

    /// Enough TOTP credentials for every flow (each gives at least two TOTP steps at once), for
    /// the keys in `FLOW_KEYS`.
    pub(super) fn enrol_flow_credentials(&self) -> anyhow::Result<BTreeMap<String, Creds>> {
        let args = self.args;
        let mut flow_creds: BTreeMap<String, Creds> = BTreeMap::new();
        for kind in &self.kinds {
            let flows = if FLOW_KEYS.contains(&kind.name.as_str()) {
                self.levels
                    .iter()
                    .map(|n| args.flows + n * args.warm_up.min(1))
                    .sum()
            } else {
                0
            };
            let t = Instant::now();
            let mut f = Creds::default();
            let flow_creds_n = if flows > 0 {
                flows.div_ceil(2) + args.threads
            } else {
                0
            };
            if flow_creds_n == 0 {
                continue;
            }
            self.enrol(
                args.hash.params(),
                &kind.name,
                flow_creds_n,
                Otp::Totp,
                &mut f,
            )?;
            flow_creds.insert(kind.name.clone(), f);
            eprintln!(
                "enrolled {flow_creds_n} {} TOTP credentials for the flows in {:.1} s",
                kind.name,
                t.elapsed().as_secs_f64()
            );
        }
        Ok(flow_creds)
    }

    /// `auth/login` as the signer: the client with its bearer token, and the connection it
    /// logged in on (the caller keeps it open for the rest of the run).
    pub(super) fn login(
        &self,
        server: &ServeChild,
        dir: &Path,
    ) -> anyhow::Result<(Client<'_>, Http)> {
        let mut http = Http::connect(server.addr)?;
        let login = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("{USER}:{}", self.signer.password))
        );
        let answer = http.post_json(server.addr, "/csc/v2/auth/login", Some(&login), &json!({}))?;
        let client = Client {
            addr: server.addr,
            bearer: format!(
                "Bearer {}",
                answer
                    .get("access_token")
                    .and_then(Value::as_str)
                    .ok_or_else(|| anyhow::anyhow!("auth/login without access_token"))?
            ),
            signer: &self.signer,
            outbox: dir.join(OUTBOX),
        };
        Ok((client, http))
    }
}
