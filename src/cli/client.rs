//! OAuth 2.0 client registration: `quill client add|list|remove`. Each prints one JSON object;
//! a confidential client's secret is shown once, at `add`, and stored only as a hash.

use clap::Subcommand;

use crate::clock::{Clock, SystemClock};
use crate::config::StoreArgs;
use crate::service::oauth;
use crate::store::{Store, repo};

#[derive(Subcommand)]
pub enum ClientCommand {
    /// Register a client; prints {"client_id", "client_secret"} (no secret with --public).
    Add {
        #[command(flatten)]
        store: StoreArgs,
        /// An exact redirect URI (repeat for several). https, or http on a loopback address.
        #[arg(long = "redirect-uri", required = true)]
        redirect_uris: Vec<String>,
        /// A public client (a wallet or browser app): no secret, PKCE only.
        #[arg(long)]
        public: bool,
        /// Name shown to signers on the authorization page.
        #[arg(long, default_value = "OAuth client")]
        name: String,
        /// Allow the client_credentials grant, acting as this user (service scope only).
        #[arg(long)]
        service_user: Option<String>,
    },
    /// List registered clients (never their secrets).
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Remove a client; its tokens stop working.
    Remove {
        #[command(flatten)]
        store: StoreArgs,
        /// The client_id.
        #[arg(long)]
        client_id: String,
    },
}

pub fn run(cmd: ClientCommand) -> anyhow::Result<()> {
    match cmd {
        ClientCommand::Add {
            store,
            redirect_uris,
            public,
            name,
            service_user,
        } => {
            anyhow::ensure!(
                !(public && service_user.is_some()),
                "a public client cannot use client_credentials"
            );
            let store = Store::open_for_command(&store.database_url, 1)?;
            let new = oauth::register_client(
                &store,
                &name,
                &redirect_uris,
                public,
                service_user.as_deref(),
                SystemClock.now(),
            )?;
            tracing::info!(client_id = %new.client_id, public, "OAuth client registered");
            let out = match &new.client_secret {
                Some(secret) => serde_json::json!({
                    "client_id": new.client_id,
                    "client_secret": secret.expose(),
                }),
                None => serde_json::json!({ "client_id": new.client_id }),
            };
            println!("{out}");
        }
        ClientCommand::List { store } => {
            let store = Store::open_for_command(&store.database_url, 1)?;
            let clients = store.with(repo::oauth::clients)?;
            let list: Vec<_> = clients
                .iter()
                .map(|c| {
                    serde_json::json!({
                        "client_id": c.client_id,
                        "name": c.name,
                        "public": c.secret_hash.is_none(),
                        "redirect_uris": serde_json::from_str::<serde_json::Value>(&c.redirect_uris)
                            .unwrap_or_default(),
                        "client_credentials": c.service_user_id.is_some(),
                    })
                })
                .collect();
            println!("{}", serde_json::json!({ "clients": list }));
        }
        ClientCommand::Remove { store, client_id } => {
            let store = Store::open_for_command(&store.database_url, 1)?;
            let found = store.with(|c| repo::oauth::remove_client(c, &client_id))?;
            anyhow::ensure!(found, "no client {client_id:?}");
            println!("{}", serde_json::json!({ "removed": client_id }));
        }
    }
    Ok(())
}
