//! Operator commands on credentials and users: `quill credential unblock --credential ID` and
//! `quill user unblock --user NAME` clear the failure counters after a lockout;
//! `quill credential disable` / `enable --credential ID [--reason TEXT]` suspend a credential
//! and lift the suspension; `quill credential expiring` lists the certificates that end soon and
//! `quill credential renew --credential ID` gives a credential a new certificate for its key;
//! `quill credential csr --credential ID [--out FILE]` writes a PKCS#10 request for its key, for
//! the operator's own CA, and `quill credential import-cert --credential ID --chain FILE` takes
//! the chain that CA issued;
//! `quill credential orphan-keys [--delete]` finds the key pairs no credential refers to.
//! Each prints one JSON object (`expiring`, one per line).

use clap::{Args, Subcommand};

use crate::clock::{Clock, SystemClock};
use crate::config::{StoreArgs, TokenArgs};
use crate::service::event;
use crate::store::models::{STATUS_DISABLED, STATUS_ENABLED};
use crate::store::{Store, repo};

#[derive(Subcommand)]
pub enum CredentialCommand {
    /// Clear a credential's PIN/OTP failure count (lifts a lockout).
    Unblock {
        #[command(flatten)]
        store: StoreArgs,
        /// The credential ID.
        #[arg(long)]
        credential: String,
    },
    /// Suspend a credential: no authorization and no signature (SADs already issued
    /// included) until it is enabled again; `credentials/info` shows `key.status: "disabled"`.
    Disable(StatusArgs),
    /// Lift a suspension (`disable`).
    Enable(StatusArgs),
    /// List the credentials whose certificates end within some days (or have ended), soonest
    /// first: one JSON object per line, `{"credential_id", "user", "status", "not_after"}`.
    Expiring {
        #[command(flatten)]
        store: StoreArgs,
        /// Days from now.
        #[arg(long, default_value_t = 30)]
        within_days: u32,
        /// At most this many lines.
        #[arg(long, default_value_t = 1000)]
        limit: u32,
    },
    /// Issue a new certificate for a credential's key (same subject, new serial number and
    /// validity) from the development CA: before the old one expires, or to replace it.
    Renew {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        token: TokenArgs,
        /// The credential ID.
        #[arg(long)]
        credential: String,
        /// Validity of the new certificate from now, in days.
        #[arg(long, default_value_t = crate::service::enrol::CERT_DAYS)]
        days: u32,
    },
    /// Write a PEM PKCS#10 certification request for a credential's key (signed in the token;
    /// subject: its current certificate's) for another CA to certify; `import-cert` then
    /// takes the chain it issued. Without --out, the PEM goes to standard output.
    Csr {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        token: TokenArgs,
        /// The credential ID.
        #[arg(long)]
        credential: String,
        /// Write the request to this file (prints `{"credential_id", "csr"}`).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// Replace a credential's certificate chain with one another CA issued for its key (PEM
    /// file: the end-entity certificate first, then its issuers). Refused, changing nothing,
    /// unless the certificate is for the credential's key and not expired, and each
    /// certificate is issued and signed by the next, a CA. Audited (`import_certificate`).
    ImportCert {
        #[command(flatten)]
        store: StoreArgs,
        /// The credential ID.
        #[arg(long)]
        credential: String,
        /// The PEM certificate chain, end entity first.
        #[arg(long)]
        chain: std::path::PathBuf,
    },
    /// List the credential key pairs in the token(s) that no credential refers to (left by an
    /// enrolment killed between making the key and storing the credential), one JSON object
    /// per line, `{"orphan_key", "destroyed"}`; with --delete, destroy them. Run it while no
    /// `quill enroll` is running: an enrolment in progress has its key and no credential yet.
    OrphanKeys(OrphanKeysArgs),
}

#[derive(Args)]
pub struct OrphanKeysArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub token: TokenArgs,
    /// Destroy them (audited), not only list them.
    #[arg(long)]
    pub delete: bool,
}

#[derive(Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The credential ID.
    #[arg(long)]
    pub credential: String,
    /// Why, for the audit trail (e.g. "user reported a lost phone").
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Clear a user's failed-login count (lifts a lockout).
    Unblock(UserUnblockArgs),
}

#[derive(Args)]
pub struct UserUnblockArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The user name.
    #[arg(long)]
    pub user: String,
}

pub fn run_credential(cmd: CredentialCommand) -> anyhow::Result<()> {
    match cmd {
        CredentialCommand::Unblock { store, credential } => {
            let store = Store::open_existing(&store.database_url, 1)?;
            let audit = event(
                SystemClock.now(),
                "operator",
                "unblock",
                Some(&credential),
                "ok",
                serde_json::json!({}),
            );
            let found = store.with(|c| {
                c.write_tx(|c| {
                    // An unknown id records nothing: the audit record goes in only with a change.
                    let found = repo::credentials::clear_attempts(c, &credential)?;
                    if found {
                        repo::audit::append(c, &audit)?;
                    }
                    Ok(found)
                })
            })?;
            anyhow::ensure!(found, "no credential {credential:?}");
            tracing::info!(credential_id = %credential, "credential unblocked by the operator");
            println!(
                "{}",
                serde_json::json!({ "unblocked_credential": credential })
            );
            Ok(())
        }
        CredentialCommand::OrphanKeys(args) => orphan_keys(args),
        CredentialCommand::Disable(args) => change_status(args, false),
        CredentialCommand::Enable(args) => change_status(args, true),
        CredentialCommand::Expiring {
            store,
            within_days,
            limit,
        } => {
            let store = Store::open_existing(&store.database_url, 1)?;
            let before = SystemClock
                .now()
                .saturating_add(i64::from(within_days).saturating_mul(86_400));
            let rows = store.with(|c| repo::credentials::expiring(c, before, i64::from(limit)))?;
            let mut out = std::io::stdout().lock();
            for row in rows {
                use std::io::Write as _;
                writeln!(out, "{}", serde_json::to_string(&row)?)?;
            }
            Ok(())
        }
        CredentialCommand::Renew {
            store,
            token,
            credential,
            days,
        } => {
            let store = Store::open_existing(&store.database_url, 1)?;
            let qscd = token.open()?;
            let renewed = crate::service::enrol::renew_certificate(
                &store,
                &qscd,
                &SystemClock,
                &credential,
                days,
            )?;
            tracing::info!(credential_id = %credential, "certificate renewed by the operator");
            println!("{}", serde_json::to_string(&renewed)?);
            Ok(())
        }
        CredentialCommand::Csr {
            store,
            token,
            credential,
            out,
        } => {
            let store = Store::open_existing(&store.database_url, 1)?;
            let qscd = token.open()?;
            let pem = crate::service::own_ca::certification_request(&store, &qscd, &credential)?;
            match out {
                None => print!("{pem}"),
                Some(path) => {
                    std::fs::write(&path, pem)
                        .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
                    println!(
                        "{}",
                        serde_json::json!({ "credential_id": credential, "csr": path })
                    );
                }
            }
            Ok(())
        }
        CredentialCommand::ImportCert {
            store,
            credential,
            chain,
        } => {
            let pem = std::fs::read(&chain)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", chain.display()))?;
            let store = Store::open_existing(&store.database_url, 1)?;
            let imported = crate::service::own_ca::import_certificate(
                &store,
                &SystemClock,
                &credential,
                &pem,
            )?;
            tracing::info!(credential_id = %credential, "certificate chain imported by the operator");
            println!("{}", serde_json::to_string(&imported)?);
            Ok(())
        }
    }
}

/// `orphan-keys`: the token's `quill:<id>` key pairs whose CKA_ID no credential has.
fn orphan_keys(args: OrphanKeysArgs) -> anyhow::Result<()> {
    use std::io::Write as _;
    let store = Store::open_existing(&args.store.database_url, 1)?;
    let qscd = args.token.open()?;
    let mut out = std::io::stdout().lock();
    for id in qscd.key_ids_labelled(crate::service::enrol::CREDENTIAL_KEY_LABEL)? {
        if store.with(|c| repo::credentials::key_in_use(c, &id))? {
            continue;
        }
        let name = String::from_utf8_lossy(&id).into_owned();
        if args.delete {
            qscd.destroy_key_pair(&id)?;
            let audit = event(
                SystemClock.now(),
                "operator",
                "destroy_orphan_key",
                Some(&name),
                "ok",
                serde_json::json!({}),
            );
            store.with(|c| repo::audit::append_alone(c, &audit))?;
            tracing::info!(key = %name, "orphan key pair destroyed by the operator");
        }
        writeln!(
            out,
            "{}",
            serde_json::json!({ "orphan_key": name, "destroyed": args.delete })
        )?;
    }
    Ok(())
}

/// `disable` (enabled → disabled) or `enable` (disabled → enabled), audited with the reason;
/// a credential already so is a success that changes nothing. Any other status (`scale-test`
/// rows) is left alone, with an error.
fn change_status(args: StatusArgs, enable: bool) -> anyhow::Result<()> {
    let StatusArgs {
        store,
        credential,
        reason,
    } = args;
    let credential = credential.as_str();
    let (from, to, action) = if enable {
        (STATUS_DISABLED, STATUS_ENABLED, "enable_credential")
    } else {
        (STATUS_ENABLED, STATUS_DISABLED, "disable_credential")
    };
    let store = Store::open_existing(&store.database_url, 1)?;
    let audit = event(
        SystemClock.now(),
        "operator",
        action,
        Some(credential),
        "ok",
        serde_json::json!({ "reason": reason }),
    );
    let changed = store.with(|c| {
        c.write_tx(|c| {
            let changed = repo::credentials::change_status(c, credential, from, to)?;
            if changed {
                repo::audit::append(c, &audit)?;
            }
            Ok(changed)
        })
    })?;
    if !changed {
        match store.with(|c| repo::credentials::by_id(c, credential))? {
            None => anyhow::bail!("no credential {credential:?}"),
            // Already so: nothing to do, nothing audited (scripts may run it twice).
            Some(row) if row.status == to => {}
            Some(row) => anyhow::bail!(
                "credential {credential:?} is {:?}, not {from}: left as it is",
                row.status
            ),
        }
    } else {
        tracing::info!(credential_id = %credential, status = to, "credential status changed by the operator");
    }
    println!(
        "{}",
        serde_json::json!({ "credential_id": credential, "status": to, "changed": changed })
    );
    Ok(())
}

pub fn run_user(cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Unblock(args) => {
            let store = Store::open_existing(&args.store.database_url, 1)?;
            let user = store
                .with(|c| repo::users::by_name(c, &args.user))?
                .ok_or_else(|| anyhow::anyhow!("no user {:?}", args.user))?;
            let audit = event(
                SystemClock.now(),
                "operator",
                "unblock_user",
                None,
                "ok",
                serde_json::json!({"user_id": user.id}),
            );
            store.with(|c| {
                c.write_tx(|c| {
                    repo::users::clear_logins(c, &user.id)?;
                    repo::audit::append(c, &audit)
                })
            })?;
            tracing::info!("user unblocked by the operator");
            println!("{}", serde_json::json!({ "unblocked_user": args.user }));
            Ok(())
        }
    }
}
