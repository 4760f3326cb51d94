//! Settings shared by `serve`, `enroll` and `demo`: each is a flag, a `QUILL_*` environment
//! variable and a key of the config file (`cli::config_file`); a flag beats the environment,
//! which beats the file, which beats the default. Validated once before anything binds or
//! opens. Secrets (the token PIN) are typed so they cannot be printed; `--help` hides their
//! environment and file values.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use secrecy::SecretString;

use crate::auth::password::HashParams;
use crate::qscd::pkcs11::Pkcs11Config;

/// Where state lives.
#[derive(Args, Clone)]
pub struct StoreArgs {
    /// Database URL: `sqlite://PATH` (or a plain path) for the embedded default.
    #[arg(
        long,
        env = "QUILL_DATABASE_URL",
        hide_env_values = true,
        default_value = "sqlite://var/quill.db"
    )]
    pub database_url: String,
}

/// Which PKCS#11 token(s) hold the keys.
#[derive(Args, Clone)]
pub struct TokenArgs {
    /// PKCS#11 module (shared library). SoftHSM2 honours its own SOFTHSM2_CONF.
    #[arg(
        long,
        env = "QUILL_PKCS11_MODULE",
        default_value = "/usr/lib/softhsm/libsofthsm2.so"
    )]
    pub pkcs11_module: PathBuf,
    /// Label of the token (tokens are found by label, never by slot number). Several labels,
    /// comma-separated, spread new keys over several tokens of the module; the first one also
    /// holds the sealing key and Quill's certificates.
    #[arg(
        long,
        env = "QUILL_TOKEN_LABEL",
        default_value = "quill",
        value_delimiter = ','
    )]
    pub token_label: Vec<String>,
    /// User PIN of the token: once for every token, or once per `--token-label` in the same
    /// order (repeat the flag). Never printed or logged.
    #[arg(long, env = "QUILL_TOKEN_PIN", hide_env_values = true, action = clap::ArgAction::Append)]
    pub token_pin: Vec<String>,
    /// Most PKCS#11 sessions kept open at once, per token.
    #[arg(long, env = "QUILL_PKCS11_SESSIONS", default_value_t = 8)]
    pub pkcs11_sessions: usize,
}

impl std::fmt::Debug for TokenArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenArgs")
            .field("pkcs11_module", &self.pkcs11_module)
            .field("token_label", &self.token_label)
            .field("token_pin", &"[REDACTED]")
            .finish()
    }
}

impl TokenArgs {
    /// One configuration per token, in the order given.
    pub fn pkcs11_configs(&self) -> anyhow::Result<Vec<Pkcs11Config>> {
        anyhow::ensure!(
            !self.token_pin.is_empty(),
            "the token PIN is required: --token-pin or QUILL_TOKEN_PIN"
        );
        anyhow::ensure!(
            self.pkcs11_sessions >= 1,
            "--pkcs11-sessions must be at least 1"
        );
        let labels: Vec<&str> = self
            .token_label
            .iter()
            .map(|l| l.trim())
            .filter(|l| !l.is_empty())
            .collect();
        anyhow::ensure!(!labels.is_empty(), "--token-label is empty");
        let mut seen = std::collections::HashSet::new();
        for l in &labels {
            anyhow::ensure!(
                seen.insert(*l),
                "token {l:?} is listed twice in --token-label"
            );
        }
        anyhow::ensure!(
            self.token_pin.len() == 1 || self.token_pin.len() == labels.len(),
            "give one --token-pin for every token, or one per --token-label ({} labels, {} PINs)",
            labels.len(),
            self.token_pin.len()
        );
        // One PIN for all, or one per label (checked above).
        let pins = self.token_pin.iter().cycle();
        Ok(labels
            .iter()
            .zip(pins)
            .map(|(label, pin)| Pkcs11Config {
                module: self.pkcs11_module.clone(),
                token_label: (*label).to_string(),
                pin: SecretString::from(pin.clone()),
                max_sessions: self.pkcs11_sessions,
            })
            .collect())
    }

    /// The configured token(s) as one QSCD: logged in, ready to sign.
    pub fn open(&self) -> anyhow::Result<std::sync::Arc<dyn crate::qscd::Qscd>> {
        Ok(crate::qscd::open(&self.pkcs11_configs()?)?)
    }
}

/// Cost of the argon2id hashes of passwords and PINs.
#[derive(Args, Debug, Clone)]
pub struct HashArgs {
    /// argon2id memory cost in KiB.
    #[arg(long, env = "QUILL_ARGON2_MEMORY_KIB", default_value_t = 19_456)]
    pub argon2_memory_kib: u32,
    /// argon2id iterations.
    #[arg(long, env = "QUILL_ARGON2_ITERATIONS", default_value_t = 2)]
    pub argon2_iterations: u32,
    /// argon2id hashes run at once (password and PIN checks); each holds its memory cost, so
    /// this bounds the server's memory under login/authorize load. Raise it for more logins
    /// per second on more cores.
    #[arg(long, env = "QUILL_ARGON2_PARALLEL", default_value_t = 1)]
    pub argon2_parallel: usize,
}

impl HashArgs {
    pub fn params(&self) -> HashParams {
        HashParams {
            memory_kib: self.argon2_memory_kib,
            iterations: self.argon2_iterations,
        }
    }

    /// The parameters, refused at start-up when argon2 would reject them at the first login
    /// (then the dummy hash for unknown users fails and answers fast: user names could be told
    /// apart by timing) or could not allocate them (the process would abort on one request).
    pub fn checked(&self) -> anyhow::Result<HashParams> {
        anyhow::ensure!(
            (1_024..=1_048_576).contains(&self.argon2_memory_kib),
            "--argon2-memory-kib must be between 1024 and 1048576 (1 GiB)"
        );
        anyhow::ensure!(
            (1..=64).contains(&self.argon2_iterations),
            "--argon2-iterations must be between 1 and 64"
        );
        anyhow::ensure!(
            (1..=64).contains(&self.argon2_parallel),
            "--argon2-parallel must be between 1 and 64"
        );
        Ok(self.params())
    }
}

/// HTTPS for `quill serve`: both files or neither (then plain HTTP, e.g. behind a TLS proxy).
#[derive(Args, Debug, Clone, Default)]
pub struct TlsArgs {
    /// PEM file with the server certificate chain, leaf first; serves HTTPS (needs --tls-key).
    #[arg(long, env = "QUILL_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM file with the server's private key (PKCS#8, PKCS#1 or SEC1; needs --tls-cert).
    #[arg(long, env = "QUILL_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
}

impl TlsArgs {
    /// The rustls configuration, `None` for plain HTTP.
    pub fn server_config(&self) -> anyhow::Result<Option<rustls::ServerConfig>> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Ok(Some(crate::tls::server_config(cert, key)?)),
            (None, None) => Ok(None),
            _ => anyhow::bail!("--tls-cert and --tls-key go together: give both or neither"),
        }
    }
}

/// Everything `quill serve` needs.
#[derive(Args, Clone)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the bound address is printed).
    #[arg(long, env = "QUILL_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub token: TokenArgs,
    #[command(flatten)]
    pub hash: HashArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Lifetime of an access token from `auth/login`, seconds.
    #[arg(long, env = "QUILL_ACCESS_TOKEN_TTL", default_value_t = 3600)]
    pub access_token_ttl: i64,
    /// Lifetime of a SAD from `credentials/authorize`, seconds.
    #[arg(long, env = "QUILL_SAD_TTL", default_value_t = 300)]
    pub sad_ttl: i64,
    /// Wrong PIN/OTP attempts per credential (and wrong passwords per user) before it locks.
    #[arg(long, env = "QUILL_MAX_AUTH_FAILURES", default_value_t = 5)]
    pub max_auth_failures: i32,
    /// How long a user's login stays locked after the last wrong password once
    /// --max-auth-failures is reached, seconds; then one more attempt is allowed (a wrong one
    /// locks again). 0: until an operator runs `quill user unblock`. (Credentials locked by
    /// wrong PINs stay locked until `quill credential unblock`.)
    #[arg(long, env = "QUILL_LOGIN_LOCK_SECS", default_value_t = 900)]
    pub login_lock_secs: i64,
    /// Where online OTP codes go, comma-separated, first match per channel: `outbox:PATH`
    /// (development), `webhook:URL` (SMS/e-mail gateway), `smtp[s]://[user:pass@]HOST[:PORT][?tls=required][&from=ADDR]` (e-mail).
    #[arg(
        long,
        env = "QUILL_OTP_SENDER",
        hide_env_values = true,
        default_value = "outbox:var/otp-outbox.jsonl"
    )]
    pub otp_sender: String,
    /// signHash does its database work on the HTTP worker thread instead of the blocking pool,
    /// and its token work too while that is expected to take at most 20 ms (the key's learned
    /// cost per signature times the hashes; for a key not measured yet, a body of up to 2 KiB):
    /// two thread handoffs fewer per call. Only for in-process components: SQLite and a PKCS#11
    /// module that signs in the calling thread (SoftHSM2); refused with PostgreSQL, and leave it
    /// off for a network HSM, whose round trips would hold the worker.
    #[arg(long, env = "QUILL_SIGN_ON_WORKER")]
    pub sign_on_worker: bool,
    /// How often expired state is deleted (SADs with their hashes, access tokens, OTP
    /// challenges, OAuth requests, codes and refresh tokens), seconds; 0: never. The audit log
    /// is never purged.
    #[arg(long, env = "QUILL_PURGE_EVERY", default_value_t = 60)]
    pub purge_every: u64,
    /// How long expired state is kept before the purge deletes it, seconds (until then an
    /// expired SAD is answered "SAD expired" rather than unknown).
    #[arg(long, env = "QUILL_KEEP_EXPIRED", default_value_t = 3600)]
    pub keep_expired: i64,
    /// Origins (`https://platform.example`, comma-separated) an asynchronous signHash or
    /// signDoc (`operationMode: "A"`) may name in `response_uri`: Quill posts the finished
    /// call's `responseID` there. A `response_uri` elsewhere is refused (Quill does not post to
    /// addresses a client picks). Unset: none.
    #[arg(long, env = "QUILL_ASYNC_CALLBACK_ORIGINS", value_delimiter = ',')]
    pub async_callback_origins: Vec<String>,
    /// Name announced by `info`.
    #[arg(long, env = "QUILL_SERVICE_NAME", default_value = "Quill")]
    pub service_name: String,
    /// Longest a client may take to send a request body, seconds, counted from its arrival
    /// (a slower one gets 408 and the connection is closed).
    #[arg(long, env = "QUILL_BODY_TIMEOUT", default_value_t = 30)]
    pub body_timeout: u64,
    /// This server's public origin as clients reach it (`https://sign.example.com`): the OAuth
    /// issuer and the base of the endpoints in its metadata. Unset, they come from each
    /// request's Host (and X-Forwarded-*/Forwarded) headers, which a client controls: set it
    /// in production.
    #[arg(long, env = "QUILL_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// ISO 3166-1 alpha-2 region announced by `info` (two capital letters: the country the
    /// provider is established in).
    #[arg(long, env = "QUILL_REGION", default_value = "EU")]
    pub region: String,
    /// The service logo `info` announces: an http(s) URL, or a `data:image/png;base64,…` /
    /// `data:image/jpeg;base64,…` URI. Unset: Quill's own, served at `/logo.png`.
    #[arg(long, env = "QUILL_LOGO")]
    pub logo: Option<String>,
}

/// Validated service settings.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    pub access_token_ttl: i64,
    pub sad_ttl: i64,
    pub service_name: String,
    pub region: String,
    pub hash: HashParams,
    pub max_auth_failures: i32,
    /// `--login-lock-secs` (`None`: until unblocked).
    pub login_lock_secs: Option<i64>,
    /// `--sign-on-worker`
    pub sign_on_worker: bool,
    /// `--purge-every` (`None`: never).
    pub purge_every: Option<std::time::Duration>,
    /// `--keep-expired`, seconds.
    pub keep_expired: i64,
    /// `--body-timeout`.
    pub body_timeout: std::time::Duration,
    /// `--public-url`, checked and without a trailing slash.
    pub public_url: Option<String>,
    /// `--logo`, checked; `None`: `<issuer>/logo.png`.
    pub logo: Option<String>,
    /// `--async-callback-origins`, each an origin's ASCII serialization.
    pub async_callback_origins: Vec<String>,
}

impl ServeArgs {
    pub fn service_settings(&self) -> anyhow::Result<ServiceSettings> {
        anyhow::ensure!(
            (60..=86_400).contains(&self.access_token_ttl),
            "--access-token-ttl must be between 60 and 86400 seconds"
        );
        anyhow::ensure!(
            (1..=3_600).contains(&self.sad_ttl),
            "--sad-ttl must be between 1 and 3600 seconds"
        );
        anyhow::ensure!(
            (1..=100).contains(&self.max_auth_failures),
            "--max-auth-failures must be between 1 and 100"
        );
        anyhow::ensure!(
            (0..=30 * 86_400).contains(&self.login_lock_secs),
            "--login-lock-secs must be between 0 and 2592000 seconds (0: until unblocked)"
        );
        anyhow::ensure!(
            !self.sign_on_worker || crate::store::sqlite_path(&self.store.database_url).is_ok(),
            "--sign-on-worker is for SQLite: with PostgreSQL the worker would wait on the network"
        );
        anyhow::ensure!(
            self.purge_every <= 86_400,
            "--purge-every must be at most 86400 seconds (0: never)"
        );
        anyhow::ensure!(
            (0..=30 * 86_400).contains(&self.keep_expired),
            "--keep-expired must be between 0 and 2592000 seconds"
        );
        anyhow::ensure!(
            (1..=600).contains(&self.body_timeout),
            "--body-timeout must be between 1 and 600 seconds"
        );
        let public_url = self.public_url.as_deref().map(public_origin).transpose()?;
        anyhow::ensure!(
            self.region.len() == 2 && self.region.bytes().all(|b| b.is_ascii_uppercase()),
            "--region must be an ISO 3166-1 alpha-2 code: two capital letters such as BG or DE"
        );
        let logo = self.logo.as_deref().map(logo_uri).transpose()?;
        let async_callback_origins = self
            .async_callback_origins
            .iter()
            .filter(|o| !o.trim().is_empty())
            .map(|o| callback_origin(o.trim()))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(ServiceSettings {
            async_callback_origins,
            public_url,
            logo,
            body_timeout: std::time::Duration::from_secs(self.body_timeout),
            sign_on_worker: self.sign_on_worker,
            purge_every: (self.purge_every > 0)
                .then(|| std::time::Duration::from_secs(self.purge_every)),
            keep_expired: self.keep_expired,
            max_auth_failures: self.max_auth_failures,
            login_lock_secs: (self.login_lock_secs > 0).then_some(self.login_lock_secs),
            access_token_ttl: self.access_token_ttl,
            sad_ttl: self.sad_ttl,
            service_name: self.service_name.clone(),
            region: self.region.clone(),
            hash: self.hash.checked()?,
        })
    }
}

/// `--public-url`: an http(s) origin, optionally with a path prefix, no query or fragment;
/// returned without a trailing slash (endpoint paths are appended to it).
fn public_origin(raw: &str) -> anyhow::Result<String> {
    let url = url::Url::parse(raw).map_err(|e| anyhow::anyhow!("--public-url {raw:?}: {e}"))?;
    anyhow::ensure!(
        matches!(url.scheme(), "https" | "http")
            && url.host().is_some()
            && url.query().is_none()
            && url.fragment().is_none()
            && url.username().is_empty()
            && url.password().is_none(),
        "--public-url must be an http(s) URL with a host and no user, query or fragment"
    );
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// One of `--async-callback-origins`: an http(s) origin (scheme, host, port; no path).
fn callback_origin(raw: &str) -> anyhow::Result<String> {
    const MSG: &str = "--async-callback-origins takes http(s) origins such as \
                       https://platform.example (no path, query or user)";
    let url = url::Url::parse(raw).map_err(|e| anyhow::anyhow!("{MSG}: {raw:?}: {e}"))?;
    anyhow::ensure!(
        matches!(url.scheme(), "https" | "http")
            && url.host().is_some()
            && matches!(url.path(), "" | "/")
            && url.query().is_none()
            && url.fragment().is_none()
            && url.username().is_empty()
            && url.password().is_none(),
        "{MSG}: {raw:?}"
    );
    Ok(url.origin().ascii_serialization())
}

/// `--logo`: an http(s) URL without credentials, or a base64 PNG or JPEG `data:` URI.
fn logo_uri(raw: &str) -> anyhow::Result<String> {
    use base64::Engine;
    const MSG: &str = "--logo must be an http(s) URL or a data:image/png;base64,… or \
                       data:image/jpeg;base64,… URI";
    if let Some(rest) = raw.strip_prefix("data:") {
        let data = rest
            .strip_prefix("image/png;base64,")
            .or_else(|| rest.strip_prefix("image/jpeg;base64,"))
            .ok_or_else(|| anyhow::anyhow!(MSG))?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| anyhow::anyhow!("{MSG}: {e}"))?;
        anyhow::ensure!(!bytes.is_empty(), "{MSG}: the image is empty");
        return Ok(raw.to_string());
    }
    let url = url::Url::parse(raw).map_err(|e| anyhow::anyhow!("{MSG}: {e}"))?;
    anyhow::ensure!(
        matches!(url.scheme(), "https" | "http")
            && url.host().is_some()
            && url.username().is_empty()
            && url.password().is_none(),
        MSG
    );
    Ok(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn argon2_costs_are_refused_at_start_up_when_out_of_range() {
        let with = |flag: &str, v: &str| settings(&["--database-url", "sqlite://q.db", flag, v]);
        for (flag, bad) in [
            ("--argon2-memory-kib", "1"),
            ("--argon2-memory-kib", "4000000000"),
            ("--argon2-iterations", "0"),
            ("--argon2-parallel", "0"),
        ] {
            let e = with(flag, bad).unwrap_err().to_string();
            assert!(e.contains(flag), "{flag} {bad}: {e}");
        }
        assert_eq!(
            with("--argon2-memory-kib", "65536")
                .unwrap()
                .hash
                .memory_kib,
            65_536
        );
    }

    #[test]
    fn region_and_logo_are_checked() {
        let with = |k: &str, v: &str| settings(&["--database-url", "sqlite://q.db", k, v]);
        assert_eq!(with("--region", "BG").unwrap().region, "BG");
        for bad in ["bg", "BGR", "B", "", "B1"] {
            assert!(with("--region", bad).is_err(), "{bad}");
        }
        let png = "data:image/png;base64,iVBORw0KGgo=";
        assert_eq!(with("--logo", png).unwrap().logo.as_deref(), Some(png));
        assert_eq!(
            with("--logo", "https://tsp.example/logo.png")
                .unwrap()
                .logo
                .as_deref(),
            Some("https://tsp.example/logo.png")
        );
        for bad in [
            "data:image/png;base64,",
            "data:image/png;base64,!!",
            "data:text/html;base64,PGI+",
            "javascript:alert(1)",
            "https://u:p@tsp.example/l.png",
            "logo.png",
        ] {
            assert!(with("--logo", bad).is_err(), "{bad}");
        }
        assert_eq!(
            settings(&["--database-url", "sqlite://q.db"]).unwrap().logo,
            None
        );
    }

    #[test]
    fn async_callback_origins_are_origins() {
        let with = |v: &str| {
            settings(&[
                "--database-url",
                "sqlite://q.db",
                "--async-callback-origins",
                v,
            ])
        };
        assert_eq!(
            with("https://a.example,http://127.0.0.1:9000/")
                .unwrap()
                .async_callback_origins,
            ["https://a.example", "http://127.0.0.1:9000"]
        );
        for bad in [
            "https://a.example/cb",
            "ftp://a.example",
            "https://u:p@a.example",
            "a.example",
            "https://a.example?x=1",
        ] {
            assert!(with(bad).is_err(), "{bad}");
        }
        assert!(
            settings(&["--database-url", "sqlite://q.db"])
                .unwrap()
                .async_callback_origins
                .is_empty()
        );
    }

    #[test]
    fn public_url_is_an_origin_without_trailing_slash() {
        let url = |v: &str| settings(&["--database-url", "sqlite://q.db", "--public-url", v]);
        assert_eq!(
            url("https://Sign.Example.com/")
                .unwrap()
                .public_url
                .as_deref(),
            Some("https://sign.example.com")
        );
        assert_eq!(
            url("https://example.com:8443/quill/")
                .unwrap()
                .public_url
                .as_deref(),
            Some("https://example.com:8443/quill")
        );
        for bad in [
            "ftp://x",
            "https://x/?a=1",
            "https://x/#f",
            "https://u:p@x",
            "not a url",
        ] {
            assert!(url(bad).is_err(), "{bad}");
        }
        assert_eq!(
            settings(&["--database-url", "sqlite://q.db"])
                .unwrap()
                .public_url,
            None
        );
    }

    #[derive(Parser)]
    struct Serve {
        #[command(flatten)]
        args: ServeArgs,
    }

    fn settings(args: &[&str]) -> anyhow::Result<ServiceSettings> {
        let parsed = Serve::try_parse_from(std::iter::once("serve").chain(args.iter().copied()))?;
        parsed.args.service_settings()
    }

    #[test]
    fn sign_on_worker_is_for_sqlite_only() {
        let sqlite = settings(&["--database-url", "sqlite://q.db", "--sign-on-worker"]).unwrap();
        assert!(sqlite.sign_on_worker);
        assert!(
            !settings(&["--database-url", "sqlite://q.db"])
                .unwrap()
                .sign_on_worker
        );
        let pg = settings(&["--database-url", "postgres://h/db", "--sign-on-worker"]);
        assert!(pg.unwrap_err().to_string().contains("--sign-on-worker"));
    }

    #[test]
    fn purge_settings() {
        let default = settings(&[]).unwrap();
        assert_eq!(
            default.purge_every,
            Some(std::time::Duration::from_secs(60))
        );
        assert_eq!(default.keep_expired, 3600);
        let off = settings(&["--purge-every", "0", "--keep-expired", "0"]).unwrap();
        assert_eq!((off.purge_every, off.keep_expired), (None, 0));
        assert!(settings(&["--keep-expired", "-1"]).is_err());
        assert!(settings(&["--purge-every", "86401"]).is_err());
    }
}
