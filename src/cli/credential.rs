//! Operator commands on credentials and users: `quill credential unblock --credential ID` and
//! `quill user unblock --user NAME` clear the failure counters after a lockout;
//! `quill credential renew --credential ID` gives a credential a new certificate for its key.
//! Each prints one JSON object.

use clap::{Args, Subcommand};

use crate::clock::{Clock, SystemClock};
use crate::config::{StoreArgs, TokenArgs};
use crate::service::event;
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
            let store = Store::open(&store.database_url, 1)?;
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
                    let found = repo::credentials::clear_attempts(c, &credential)?;
                    repo::audit::append(c, &audit)?;
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
        CredentialCommand::Renew {
            store,
            token,
            credential,
            days,
        } => {
            let store = Store::open(&store.database_url, 1)?;
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
    }
}

pub fn run_user(cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Unblock(args) => {
            let store = Store::open(&args.store.database_url, 1)?;
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
