//! `quill demo`: a working server on the embedded defaults in one command. On first start it
//! creates under `./var/` a SoftHSM2 configuration and token, the SQLite database, the
//! development CA (in the token) and a demo user with an RSA-2048 and a P-256 credential; later
//! starts reuse all of it. It prints the demo user's secrets and a curl walk-through, then serves.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::auth::token;
use crate::clock::SystemClock;
use crate::config::{HashArgs, ServeArgs, StoreArgs, TlsArgs, TokenArgs};
use crate::qscd::pkcs11::Pkcs11Qscd;
use crate::secret::Secret;
use crate::service::enrol::{self, EnrolRequest};

const TOKEN_LABEL: &str = "quill-demo";
const DEMO_USER: &str = "demo";

#[derive(Args)]
pub struct DemoArgs {
    /// Address to listen on.
    #[arg(long, env = "QUILL_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// Directory holding the demo's state.
    #[arg(long, default_value = "var")]
    pub dir: PathBuf,
    /// PKCS#11 module. SoftHSM2's (file name containing "softhsm") gets its token directory
    /// under --dir; another module is used with its own configuration.
    #[arg(
        long,
        env = "QUILL_PKCS11_MODULE",
        default_value = "/usr/lib/softhsm/libsofthsm2.so"
    )]
    pub pkcs11_module: PathBuf,
}

/// What the demo remembers about its user (demo only: a real deployment never keeps these).
#[derive(Serialize, Deserialize)]
struct DemoUser {
    user: String,
    password: String,
    pin: String,
    totp_secret: String,
    otpauth_uri: String,
    rsa_credential_id: String,
    ec_credential_id: String,
}

fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())?;
    Ok(())
}

/// Read a secret file, creating it with `make()` on first use.
fn persistent_secret(path: &Path, make: impl FnOnce() -> String) -> anyhow::Result<String> {
    if !path.exists() {
        write_private(path, &make())?;
    }
    Ok(fs::read_to_string(path)?.trim().to_string())
}

fn digits(n: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..n)
        .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
        .collect()
}

/// Whether `module` is SoftHSM2's (by its file name: `libsofthsm2.so`, or a versioned or
/// renamed copy that keeps the `softhsm` stem).
fn is_softhsm2(module: &Path) -> bool {
    module
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.to_ascii_lowercase().contains("softhsm"))
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    fs::create_dir_all(&args.dir)?;
    let dir = fs::canonicalize(&args.dir)?;
    let conf = dir.join("softhsm2.conf");
    let softhsm = is_softhsm2(&args.pkcs11_module);
    // SoftHSM2 reads SOFTHSM2_CONF when the module initialises: point it at our own token
    // directory by re-executing ourselves with the variable set. Another module keeps its own
    // configuration (the demo only makes its token there, in a free slot).
    if softhsm && std::env::var_os("SOFTHSM2_CONF").as_deref() != Some(conf.as_os_str()) {
        let tokens = dir.join("tokens");
        fs::create_dir_all(&tokens)?;
        fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
                tokens.display()
            ),
        )?;
        let err = std::process::Command::new(std::env::current_exe()?)
            .args(std::env::args_os().skip(1))
            .env("SOFTHSM2_CONF", &conf)
            .exec();
        return Err(anyhow::anyhow!("cannot re-execute quill demo: {err}"));
    }

    // Bound before anything is made or printed: a port in use fails here, and port 0 is
    // resolved for the banner.
    let listener = crate::startup::bind(args.listen)?;
    let listen = listener.local_addr()?;

    let token_pin = persistent_secret(&dir.join("token-pin"), || token::random_id(12))?;
    let so_pin = persistent_secret(&dir.join("token-so-pin"), || token::random_id(12))?;
    let created = Pkcs11Qscd::init_token(
        &args.pkcs11_module,
        TOKEN_LABEL,
        &SecretString::from(so_pin),
        &SecretString::from(token_pin.clone()),
    )?;
    if created && softhsm {
        eprintln!(
            "created SoftHSM2 token {TOKEN_LABEL:?} in {}",
            dir.join("tokens").display()
        );
    } else if created {
        eprintln!(
            "created token {TOKEN_LABEL:?} with {} (where it lives is that module's \
             configuration)",
            args.pkcs11_module.display()
        );
    }

    let serve_args = ServeArgs {
        listen,
        store: StoreArgs {
            database_url: format!("sqlite://{}", dir.join("quill.db").display()),
        },
        token: TokenArgs {
            pkcs11_module: args.pkcs11_module.clone(),
            token_label: vec![TOKEN_LABEL.into()],
            token_pin: vec![token_pin],
            pkcs11_sessions: 8,
        },
        hash: HashArgs {
            argon2_memory_kib: 19_456,
            argon2_iterations: 2,
            argon2_parallel: 1,
        },
        tls: TlsArgs::default(),
        access_token_ttl: 3600,
        sad_ttl: 300,
        max_auth_failures: 5,
        login_lock_secs: 900,
        // SQLite and SoftHSM2 both run in-process here.
        sign_on_worker: true,
        purge_every: 60,
        keep_expired: 3600,
        body_timeout: 30,
        async_callback_origins: Vec::new(),
        public_url: None,
        otp_sender: format!("outbox:{}", dir.join("otp-outbox.jsonl").display()),
        service_name: "Quill (demo)".into(),
        region: "EU".into(),
        logo: None,
    };
    let state = super::serve::state(&serve_args)?;

    let user_file = dir.join("demo-user.json");
    let demo: DemoUser = if user_file.exists() {
        serde_json::from_str(&fs::read_to_string(&user_file)?)?
    } else {
        let qscd: Arc<dyn crate::qscd::Qscd> = state.qscd.clone();
        let password = format!("demo-{}", token::random_id(6));
        let pin = digits(6);
        let request = |key: &str, totp: Option<String>| EnrolRequest {
            user: DEMO_USER.into(),
            password: Secret::new(password.clone()),
            pin: Secret::new(pin.clone()),
            key: key.into(),
            totp_secret: totp.map(Secret::new),
            online_otp: None,
            common_name: Some("Demo Signer".into()),
            multisign: 100,
            cert_days: enrol::CERT_DAYS,
            description: Some(format!("Demo {key} signing credential")),
        };
        let params = serve_args.hash.params();
        let rsa = enrol::enrol(
            &state.store,
            &qscd,
            &SystemClock,
            params,
            request("rsa-2048", None),
        )?;
        let ec = enrol::enrol(
            &state.store,
            &qscd,
            &SystemClock,
            params,
            request("ec-p256", rsa.totp_secret.clone()),
        )?;
        let demo = DemoUser {
            user: DEMO_USER.into(),
            password,
            pin,
            totp_secret: rsa.totp_secret.unwrap_or_default(),
            otpauth_uri: rsa.otpauth_uri.unwrap_or_default(),
            rsa_credential_id: rsa.credential_id,
            ec_credential_id: ec.credential_id,
        };
        write_private(&user_file, &serde_json::to_string_pretty(&demo)?)?;
        demo
    };
    print_banner(&demo, listen, &dir, !softhsm)?;
    super::serve::serve(state, listener, &serve_args)
}

/// `token_elsewhere`: the token is another module's, not under `dir`, and outlives it.
fn print_banner(
    d: &DemoUser,
    listen: std::net::SocketAddr,
    dir: &Path,
    token_elsewhere: bool,
) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let token = if token_elsewhere {
        format!(
            "\n(the token {TOKEN_LABEL:?} is the PKCS#11 module's: to start over, delete it there too)"
        )
    } else {
        String::new()
    };
    let base = format!("http://{listen}/csc/v2");
    let text = format!(
        r#"
==================== Quill demo ====================
CSC API v2 base URL : {base}
user                : {user}
password            : {password}
PIN                 : {pin}
TOTP secret         : {totp}
otpauth URI         : {uri}
RSA-2048 credential : {rsa}
P-256 credential    : {ec}
(kept in {file}; delete the {dir} directory to start over){token}

Walk-through (copy and paste into another terminal):

B={base}
TOKEN=$(curl -s -u '{user}:{password}' -X POST $B/auth/login -H 'Content-Type: application/json' -d '{{}}' | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
curl -s -X POST $B/credentials/list -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{{"credentialInfo":true,"certInfo":true}}'; echo
HASH=$(printf 'Hello, Quill' | openssl dgst -sha256 -binary | base64)
OTP=$({exe} otp --totp-secret {totp})
SAD=$(curl -s -X POST $B/credentials/authorize -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{{"credentialID":"{rsa}","numSignatures":1,"hashes":["'$HASH'"],"hashAlgorithmOID":"2.16.840.1.101.3.4.2.1","authData":[{{"id":"PIN","value":"{pin}"}},{{"id":"OTP","value":"'$OTP'"}}]}}' | sed -E 's/.*"SAD":"([^"]+)".*/\1/')
curl -s -X POST $B/signatures/signHash -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{{"credentialID":"{rsa}","SAD":"'$SAD'","hashes":["'$HASH'"],"signAlgo":"1.2.840.113549.1.1.11"}}'; echo
====================================================
"#,
        user = d.user,
        password = d.password,
        pin = d.pin,
        totp = d.totp_secret,
        uri = d.otpauth_uri,
        rsa = d.rsa_credential_id,
        ec = d.ec_credential_id,
        file = dir.join("demo-user.json").display(),
        dir = dir.display(),
        exe = exe.display(),
    );
    println!("{text}");
    Ok(())
}
