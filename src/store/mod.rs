//! State in a database through diesel; the only module that imports diesel. SQLite is the
//! embedded default (WAL, busy timeout, foreign keys on). Every security decision that involves
//! state (is this token live? may this SAD sign these hashes?) is one statement or one
//! transaction here, so it stays correct under concurrency.

pub mod models;
pub mod repo;
pub mod schema;

use std::path::Path;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// The connection type repositories work with.
pub type DbConn = SqliteConnection;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached (pool timeout, file unreadable …).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A query failed.
    #[error("database query failed: {0}")]
    Query(String),
}

impl From<diesel::result::Error> for StoreError {
    fn from(e: diesel::result::Error) -> Self {
        StoreError::Query(e.to_string())
    }
}

#[derive(Debug)]
struct SqlitePragmas;

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        conn.batch_execute(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
             PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;",
        )
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// Use of the connection pool, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolState {
    pub connections: u32,
    pub idle: u32,
    pub max: u32,
}

/// A pool of database connections.
#[derive(Clone)]
pub struct Store {
    pool: Pool<ConnectionManager<SqliteConnection>>,
}

/// Path of the SQLite file named by a `sqlite://PATH` URL (or a plain path).
pub fn sqlite_path(database_url: &str) -> anyhow::Result<&str> {
    if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
        anyhow::bail!("PostgreSQL is not supported by this build yet; use sqlite://PATH");
    }
    let path = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))
        .unwrap_or(database_url);
    anyhow::ensure!(!path.is_empty(), "empty database path in {database_url:?}");
    Ok(path)
}

impl Store {
    /// Open (creating if needed) the database and bring its schema up to date.
    pub fn open(database_url: &str, max_connections: u32) -> anyhow::Result<Store> {
        let path = sqlite_path(database_url)?;
        if let Some(parent) = Path::new(path)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent)?;
        }
        let manager = ConnectionManager::<SqliteConnection>::new(path);
        let pool = Pool::builder()
            .max_size(max_connections)
            .connection_timeout(Duration::from_secs(10))
            .connection_customizer(Box::new(SqlitePragmas))
            .build(manager)?;
        let store = Store { pool };
        let mut conn = store.conn()?;
        conn.run_pending_migrations(SQLITE_MIGRATIONS)
            .map_err(|e| anyhow::anyhow!("database migration failed: {e}"))?;
        Ok(store)
    }

    /// A pooled connection.
    pub fn conn(
        &self,
    ) -> Result<PooledConnection<ConnectionManager<SqliteConnection>>, StoreError> {
        self.pool
            .get()
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    /// Is the database reachable? One trivial round trip (blocking).
    pub fn ping(&self) -> Result<(), StoreError> {
        self.with(|c| {
            c.batch_execute("SELECT 1")?;
            Ok(())
        })
    }

    /// Connections the pool holds, and how many of them are idle.
    pub fn pool_state(&self) -> PoolState {
        let s = self.pool.state();
        PoolState {
            connections: s.connections,
            idle: s.idle_connections,
            max: self.pool.max_size(),
        }
    }

    /// Run `f` with a connection (blocking; call from a blocking thread).
    pub fn with<T>(
        &self,
        f: impl FnOnce(&mut DbConn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn()?;
        f(&mut conn)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A fresh store in a temporary directory.
    pub(crate) fn temp_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db", dir.path().display());
        let store = Store::open(&url, 4).unwrap();
        (dir, store)
    }

    #[test]
    fn url_forms() {
        assert_eq!(
            sqlite_path("sqlite://var/quill.db").unwrap(),
            "var/quill.db"
        );
        assert_eq!(sqlite_path("/tmp/x.db").unwrap(), "/tmp/x.db");
        assert!(sqlite_path("postgres://h/db").is_err());
        assert!(sqlite_path("sqlite://").is_err());
    }

    #[test]
    fn migrations_apply_twice_without_error() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/a/b.db", dir.path().display());
        Store::open(&url, 2).unwrap();
        Store::open(&url, 2).unwrap();
    }
}
