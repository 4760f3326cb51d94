//! Operator commands on credentials and users: `quill credential unblock --credential ID` and
//! `quill user unblock --user NAME` clear the failure counters after a lockout. Each prints one
//! JSON object.

use clap::{Args, Subcommand};

use crate::clock::{Clock, SystemClock};
use crate::config::StoreArgs;
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
