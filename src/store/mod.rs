//! State in a database through diesel; the only module that imports diesel. Two backends with one
//! code path: SQLite (the embedded default: WAL, busy timeout, foreign keys on) and PostgreSQL
//! (several instances on one database), behind diesel's `MultiConnection`. Every security
//! decision that involves state (is this token live? may this SAD sign these hashes?) is one
//! statement or one write transaction here, so it stays correct under concurrency — also across
//! processes sharing one PostgreSQL database.

pub mod explain;
pub mod models;
pub mod repo;
pub mod schema;
pub mod scratch;

mod checkpoint;
mod conn;
mod migrate;
mod pool;

pub use conn::{DbConn, PG_WRITE_LOCK, StoreError};
pub use migrate::{POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS, Upgrade};
pub use pool::{Conn, Health, Manager, Pooled};

use std::path::Path;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::r2d2::{ManageConnection, Pool};

use checkpoint::{Checkpointer, RESTART_FRAMES};

/// `$body` with `$c` bound to the backend's own connection (the body is compiled once per
/// backend). Diesel's `MultiConnection` renders a query's whole SQL text again on every
/// execution, cached statement or not, to hand it to the inner connection: a tenth of the
/// server's CPU on a P-256 signHash. The queries of the signHash path go to the backend
/// directly, where a cached statement is found by its type and only its binds are collected.
macro_rules! on_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::store::DbConn::Sqlite($c) => $body,
            $crate::store::DbConn::Pg($c) => $body,
        }
    };
}
pub(crate) use on_backend;

/// Which database a URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Path of the SQLite file.
    Sqlite(String),
    /// A libpq connection URL.
    Postgres(String),
}

impl Target {
    /// `sqlite://PATH` (or a plain path) or `postgres[ql]://…`.
    pub fn parse(database_url: &str) -> anyhow::Result<Target> {
        if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
            return Ok(Target::Postgres(database_url.to_string()));
        }
        let path = database_url
            .strip_prefix("sqlite://")
            .or_else(|| database_url.strip_prefix("sqlite:"))
            .unwrap_or(database_url);
        anyhow::ensure!(!path.is_empty(), "empty database path in {database_url:?}");
        // Name only the scheme: the rest of a URL may hold a password.
        if let Some((scheme, _)) = path.split_once("://") {
            anyhow::bail!(
                "unsupported database URL scheme {scheme:?}: use sqlite://PATH or postgres://…"
            );
        }
        Ok(Target::Sqlite(path.to_string()))
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
    pool: Pool<Manager>,
    backend: &'static str,
    /// SQLite: the WAL checkpointer runs while any clone of the store lives.
    _checkpointer: Option<Checkpointer>,
}

/// Create a new SQLite file readable by its owner only (it holds password and PIN hashes,
/// sealed OTP secrets and the audit log; SQLite would make it 0644 under the usual umask, and
/// gives its `-wal` and `-shm` files the database file's mode). An existing file is left as
/// it is; `:memory:` and `file:` URIs are SQLite's own business.
fn create_private(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if path.as_os_str() == ":memory:" || path.to_string_lossy().starts_with("file:") {
        return Ok(());
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(anyhow::anyhow!("cannot create {}: {e}", path.display())),
    }
}

/// Path of the SQLite file named by a `sqlite://PATH` URL (or a plain path).
pub fn sqlite_path(database_url: &str) -> anyhow::Result<String> {
    match Target::parse(database_url)? {
        Target::Sqlite(path) => Ok(path),
        Target::Postgres(_) => anyhow::bail!("{database_url:?} is not an SQLite database"),
    }
}

impl Store {
    /// Open (creating an SQLite file if needed) the database and bring its schema up to date.
    pub fn open(database_url: &str, max_connections: u32) -> anyhow::Result<Store> {
        Store::open_with(
            database_url,
            max_connections,
            RESTART_FRAMES,
            Upgrade::Migrate,
        )
    }

    /// `open` for the operator commands that write (enrolment, OAuth clients, seeding): an
    /// empty database is set up, one an older version set up is refused, not migrated.
    pub fn open_for_command(database_url: &str, max_connections: u32) -> anyhow::Result<Store> {
        Store::open_with(
            database_url,
            max_connections,
            RESTART_FRAMES,
            Upgrade::Refuse,
        )
    }

    /// `open` for commands that inspect or change what is already there (audit, credential and
    /// user commands): a SQLite file that does not exist is a mistyped path, not a database to
    /// create (an empty one would verify as a clean audit log).
    pub fn open_existing(database_url: &str, max_connections: u32) -> anyhow::Result<Store> {
        if let Target::Sqlite(path) = Target::parse(database_url)? {
            anyhow::ensure!(
                Path::new(&path).exists(),
                "no database at {path}: check --database-url"
            );
        }
        Store::open_for_command(database_url, max_connections)
    }

    /// `open`, with the log size at which SQLite's log is started over.
    fn open_with(
        database_url: &str,
        max_connections: u32,
        restart_frames: i64,
        upgrade: Upgrade,
    ) -> anyhow::Result<Store> {
        let target = Target::parse(database_url)?;
        if let Target::Sqlite(path) = &target
            && let Some(parent) = Path::new(path)
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent)?;
        }
        if let Target::Sqlite(path) = &target {
            create_private(Path::new(path))?;
        }
        // Migrate on a connection of its own before the pool opens any (WAL must be set before
        // SQLite connections start sharing the file).
        let checkpointer = match &target {
            Target::Sqlite(path) => Some(path.clone()),
            Target::Postgres(_) => None,
        };
        let manager = Manager { target };
        let mut first = manager.connect()?;
        first.migrate(upgrade)?;
        let backend = first.backend();
        drop(first);
        let pool = Pool::builder()
            .max_size(max_connections)
            .min_idle(Some(1))
            // A PostgreSQL connection can die with the network or the server, so it is tested
            // before use; an SQLite connection is a file handle (an error marks it broken).
            .test_on_check_out(backend == "postgres")
            .connection_timeout(Duration::from_secs(5))
            .build(manager)?;
        let checkpointer = checkpointer
            .map(|path| Checkpointer::start(&path, restart_frames))
            .transpose()?;
        Ok(Store {
            pool,
            backend,
            _checkpointer: checkpointer,
        })
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// A pooled connection.
    pub fn conn(&self) -> Result<Pooled, StoreError> {
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
pub(crate) mod tests;
