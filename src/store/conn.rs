//! The connection repositories work with (`DbConn`: SQLite or PostgreSQL, one code path), the
//! store's error type, and write transactions that hold the database's writer lock from their
//! first statement (SQLite's `BEGIN IMMEDIATE` behind a per-process queue; PostgreSQL's
//! advisory lock shared by every instance on the database).

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::pg::PgConnection;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sqlite::SqliteConnection;

/// Key of the PostgreSQL advisory lock that serialises Quill's write transactions (and
/// migrations) across every instance sharing the database.
pub const PG_WRITE_LOCK: i64 = 0x5155_494c_4c00_0001;

/// SQLite has one writer at a time, and a connection that finds the writer lock taken waits in
/// SQLite's busy handler, which sleeps 1, 2, 5, 10 … ms between tries: two signHash calls that
/// meet would cost the second one at least a millisecond although the first holds the lock for
/// a tenth of that. Writers of this process therefore queue here first and are woken the moment
/// the previous one commits; the busy timeout still covers other processes (the admin CLI).
/// One lock for every SQLite database of the process: write transactions never nest.
pub(super) static SQLITE_WRITER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The connection repositories work with: either backend, same queries.
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Sqlite(SqliteConnection),
    Pg(PgConnection),
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached (pool timeout, connection lost, busy …): retry later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A query failed.
    #[error("database query failed: {0}")]
    Query(String),
}

impl From<DieselError> for StoreError {
    fn from(e: DieselError) -> Self {
        if is_unavailable(&e) {
            StoreError::Unavailable(e.to_string())
        } else {
            StoreError::Query(e.to_string())
        }
    }
}

/// Errors that say "the database is not there right now", not "this query is wrong".
pub(super) fn is_unavailable(e: &DieselError) -> bool {
    match e {
        DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            _,
        )
        | DieselError::BrokenTransactionManager => true,
        DieselError::DatabaseError(_, info) => {
            let m = info.message();
            // SQLite busy past its timeout; PostgreSQL shutting down or restarting.
            m.contains("database is locked")
                || m.contains("terminating connection")
                || m.contains("server closed the connection")
                || m.contains("the database system is")
        }
        _ => false,
    }
}

impl DbConn {
    /// Run `f` in a write transaction that holds the database's writer lock from its first
    /// statement: `BEGIN IMMEDIATE` on SQLite, a transaction-scoped advisory lock on PostgreSQL
    /// (shared by every instance on the database). Reads inside `f` therefore see the state
    /// they decide on until the commit. Any error rolls everything back.
    pub fn write_tx<T, E>(&mut self, f: impl FnOnce(&mut DbConn) -> Result<T, E>) -> Result<T, E>
    where
        E: From<DieselError>,
    {
        let _writer = matches!(self, DbConn::Sqlite(_)).then(|| {
            SQLITE_WRITER
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        });
        self.begin_write()?;
        match f(self) {
            Ok(value) => match self.finish(true) {
                Ok(()) => Ok(value),
                Err(e) => Err(e.into()),
            },
            Err(e) => {
                // A failed rollback leaves the connection marked broken; the pool drops it.
                let _ = self.finish(false);
                Err(e)
            }
        }
    }

    fn begin_write(&mut self) -> Result<(), DieselError> {
        match self {
            DbConn::Sqlite(c) => {
                AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")
            }
            // One round trip for both (a simple query of two statements): every signHash pays
            // each round trip to the server.
            DbConn::Pg(c) => AnsiTransactionManager::begin_transaction_sql(
                c,
                &format!("BEGIN; SELECT pg_advisory_xact_lock({PG_WRITE_LOCK})"),
            )
            .inspect_err(|_| {
                // BEGIN may have run before the lock failed: end the server's transaction too
                // (diesel counts none), or the connection's next statement would fail.
                let _ = c.batch_execute("ROLLBACK");
            }),
        }
    }

    fn finish(&mut self, commit: bool) -> Result<(), DieselError> {
        match (self, commit) {
            (DbConn::Sqlite(c), true) => AnsiTransactionManager::commit_transaction(c),
            (DbConn::Sqlite(c), false) => AnsiTransactionManager::rollback_transaction(c),
            (DbConn::Pg(c), true) => AnsiTransactionManager::commit_transaction(c),
            (DbConn::Pg(c), false) => AnsiTransactionManager::rollback_transaction(c),
        }
    }

    /// The backend's name, for logs and metrics.
    pub fn backend(&self) -> &'static str {
        match self {
            DbConn::Sqlite(_) => "sqlite",
            DbConn::Pg(_) => "postgres",
        }
    }
}
