//! Schema migrations and the upgrade checks around them: a database a newer Quill migrated is
//! refused, one an older Quill set up is migrated by `serve` and `demo` only (`Upgrade`), and an
//! SQLite library too old for Quill's statements is refused by name.

use diesel::connection::SimpleConnection;
use diesel::migration::MigrationSource;
use diesel::prelude::*;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use super::{DbConn, PG_WRITE_LOCK};

pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

type MigrationResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The versions of this build's migrations, dashes dropped (diesel writes them either way).
fn versions<M, DB>(migrations: MigrationResult<Vec<Box<M>>>) -> MigrationResult<Vec<String>>
where
    M: diesel::migration::Migration<DB> + ?Sized,
    DB: diesel::backend::Backend,
{
    Ok(migrations?
        .iter()
        .map(|m| m.name().version().to_string().replace('-', ""))
        .collect())
}

/// Whether opening a database may bring an older schema up to date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upgrade {
    /// `quill serve` and `quill demo`: the new version migrates at start.
    Migrate,
    /// Every other command: it sets up an empty database, but does not change the schema of
    /// one an older version made, under instances of that version that may still serve.
    Refuse,
}

/// Refuse a database that a newer Quill has migrated (a migration this build does not know):
/// its schema may have moved under this build's queries. With `Upgrade::Refuse`, refuse one
/// that an older Quill set up, too (a migration of this build not run yet).
fn refuse_newer_or_older(
    known: MigrationResult<Vec<String>>,
    applied: MigrationResult<Vec<String>>,
    upgrade: Upgrade,
) -> anyhow::Result<()> {
    let failed = |e| anyhow::anyhow!("database migration failed: {e}");
    let known = known.map_err(failed)?;
    let applied: Vec<String> = applied
        .map_err(failed)?
        .iter()
        .map(|v| v.replace('-', ""))
        .collect();
    if let Some(newer) = applied
        .iter()
        .find(|v| !known.contains(&v.replace('-', "")))
    {
        anyhow::bail!(
            "the database has migration {newer}, which this version of Quill does not know: it \
             was upgraded by a newer Quill; run that version (or restore a backup)"
        );
    }
    if upgrade == Upgrade::Refuse
        && !applied.is_empty()
        && let Some(pending) = known.iter().find(|v| !applied.contains(v))
    {
        anyhow::bail!(
            "the database was set up by an older version of Quill (migration {pending} has not \
             run): this command does not upgrade it, since instances of that version may still \
             be serving it; `quill serve` of this version migrates it at start (see the \
             README's Upgrades)"
        );
    }
    Ok(())
}

impl DbConn {
    /// Bring the schema up to date (idempotent; on PostgreSQL under the advisory lock so that
    /// instances starting together do not race). With `Upgrade::Refuse`, a database some of
    /// whose migrations have run but not all is refused instead (an empty one is set up).
    pub(super) fn migrate(&mut self, upgrade: Upgrade) -> anyhow::Result<()> {
        let failed = |e| anyhow::anyhow!("database migration failed: {e}");
        match self {
            DbConn::Sqlite(c) => {
                let version: String = diesel::select(diesel::dsl::sql::<diesel::sql_types::Text>(
                    "sqlite_version()",
                ))
                .get_result(c)?;
                check_sqlite_version(&version)?;
                // WAL is a property of the file: set once, before concurrent use.
                c.batch_execute("PRAGMA journal_mode = WAL;")?;
                let known = versions(MigrationSource::<diesel::sqlite::Sqlite>::migrations(
                    &SQLITE_MIGRATIONS,
                ));
                let applied = c
                    .applied_migrations()
                    .map(|v| v.iter().map(ToString::to_string).collect());
                refuse_newer_or_older(known, applied, upgrade)?;
                c.run_pending_migrations(SQLITE_MIGRATIONS)
                    .map_err(failed)?;
            }
            DbConn::Pg(c) => {
                c.batch_execute(&format!("SELECT pg_advisory_lock({PG_WRITE_LOCK})"))?;
                let known = versions(MigrationSource::<diesel::pg::Pg>::migrations(
                    &POSTGRES_MIGRATIONS,
                ));
                let applied = c
                    .applied_migrations()
                    .map(|v| v.iter().map(ToString::to_string).collect());
                let result = refuse_newer_or_older(known, applied, upgrade).and_then(|()| {
                    c.run_pending_migrations(POSTGRES_MIGRATIONS)
                        .map(|_| ())
                        .map_err(failed)
                });
                c.batch_execute(&format!("SELECT pg_advisory_unlock({PG_WRITE_LOCK})"))?;
                result?;
            }
        }
        Ok(())
    }
}

/// Oldest SQLite library Quill runs on: `RETURNING` (the SAD spend, token issue) is 3.35.
const SQLITE_MIN: (u32, u32) = (3, 35);

/// SQLite is the system's library (or compiled in with `bundled-sqlite`): refuse one too old for
/// Quill's statements with a message that says so, before any statement fails obscurely.
pub(super) fn check_sqlite_version(version: &str) -> anyhow::Result<()> {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    let found = (parts.next().flatten(), parts.next().flatten());
    match found {
        (Some(major), Some(minor)) if (major, minor) >= SQLITE_MIN => Ok(()),
        _ => anyhow::bail!(
            "SQLite {version} is too old: Quill needs {}.{} or later (install a newer \
             libsqlite3, or build with --features bundled-sqlite)",
            SQLITE_MIN.0,
            SQLITE_MIN.1
        ),
    }
}
