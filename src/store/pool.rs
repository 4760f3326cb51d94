//! The connection pool's side of a connection: `Manager` opens them (SQLite with its pragmas,
//! PostgreSQL with an instrumentation that keeps its `Health`), and tests a PostgreSQL one before
//! use only when it has not answered lately (`ALIVE_BYPASS`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use diesel::connection::{InstrumentationEvent, SimpleConnection};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::r2d2::{ManageConnection, PooledConnection, R2D2Connection};
use diesel::sqlite::SqliteConnection;

use super::checkpoint::WAL_SIZE_LIMIT;
use super::conn::is_unavailable;
use super::{DbConn, Target};

/// How long after a PostgreSQL connection last answered the pool hands it out without testing
/// it first (`SELECT 1`, a round trip that every request paid): the idea of HikariCP's
/// alive-bypass window, with its 500 ms. A connection that died meanwhile (server restart,
/// `pg_terminate_backend`) fails its next statement instead, is marked lost by that failure and
/// dropped when it goes back: the request gets a 503, as it would during the outage itself.
pub(super) const ALIVE_BYPASS: Duration = Duration::from_millis(500);

/// What the pool knows of a PostgreSQL connection's health, kept by the connection's diesel
/// instrumentation as its statements finish.
#[derive(Debug, Default)]
pub struct Health {
    /// Microseconds since `health_epoch()` at which a statement last finished without error
    /// (0: none yet).
    last_ok_us: AtomicU64,
    /// A statement failed because the connection is gone.
    lost: AtomicBool,
}

fn health_epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn micros_since_epoch() -> u64 {
    u64::try_from(health_epoch().elapsed().as_micros())
        .unwrap_or(u64::MAX)
        .max(1)
}

impl Health {
    /// Answered without a connection error within `ALIVE_BYPASS`, and not lost since.
    fn answered_lately(&self) -> bool {
        let last = self.last_ok_us.load(Ordering::Relaxed);
        last != 0
            && !self.lost.load(Ordering::Relaxed)
            && micros_since_epoch().saturating_sub(last) < ALIVE_BYPASS.as_micros() as u64
    }

    /// When a statement last finished without error (microseconds on the health clock; 0:
    /// none yet). A checkout that tests the connection moves it.
    pub fn last_answer_us(&self) -> u64 {
        self.last_ok_us.load(Ordering::Relaxed)
    }
}

/// A pooled connection: the backend's own (repositories see it as a `DbConn`) and, for
/// PostgreSQL, what the pool knows of its health.
pub struct Conn {
    db: DbConn,
    health: Option<Arc<Health>>,
}

impl Conn {
    /// PostgreSQL: the connection's health record (`None`: SQLite).
    pub fn health(&self) -> Option<&Health> {
        self.health.as_deref()
    }
}

impl std::ops::Deref for Conn {
    type Target = DbConn;
    fn deref(&self) -> &DbConn {
        &self.db
    }
}

impl std::ops::DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut DbConn {
        &mut self.db
    }
}

/// A connection from the pool; it goes back when dropped.
pub type Pooled = PooledConnection<Manager>;

/// Opens connections for the pool: SQLite with its pragmas, PostgreSQL as given.
#[derive(Debug)]
pub struct Manager {
    pub(super) target: Target,
}

impl ManageConnection for Manager {
    type Connection = Conn;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<Conn, Self::Error> {
        match &self.target {
            Target::Sqlite(path) => {
                let mut c = SqliteConnection::establish(path)
                    .map_err(diesel::r2d2::Error::ConnectionError)?;
                // No checkpoint inside a commit: `Checkpointer` does them off the request path.
                c.batch_execute(&format!(
                    "PRAGMA busy_timeout = 10000; PRAGMA synchronous = NORMAL; \
                         PRAGMA foreign_keys = ON; PRAGMA wal_autocheckpoint = 0; \
                         PRAGMA journal_size_limit = {WAL_SIZE_LIMIT};"
                ))
                .map_err(diesel::r2d2::Error::QueryError)?;
                Ok(Conn {
                    db: DbConn::Sqlite(c),
                    health: None,
                })
            }
            Target::Postgres(url) => {
                let mut c =
                    PgConnection::establish(url).map_err(diesel::r2d2::Error::ConnectionError)?;
                let health = Arc::new(Health::default());
                let seen = Arc::clone(&health);
                c.set_instrumentation(move |event: InstrumentationEvent<'_>| match event {
                    InstrumentationEvent::FinishQuery { error: None, .. } => {
                        seen.last_ok_us
                            .store(micros_since_epoch(), Ordering::Relaxed);
                    }
                    InstrumentationEvent::FinishQuery { error: Some(e), .. }
                        if is_unavailable(e) =>
                    {
                        seen.lost.store(true, Ordering::Relaxed);
                    }
                    _ => {}
                });
                Ok(Conn {
                    db: DbConn::Pg(c),
                    health: Some(health),
                })
            }
        }
    }

    /// PostgreSQL connections are tested before use unless they answered a moment ago
    /// (`ALIVE_BYPASS`); an SQLite connection is a file handle and never needs it.
    fn is_valid(&self, conn: &mut Conn) -> Result<(), Self::Error> {
        match &conn.health {
            Some(health) if health.answered_lately() => Ok(()),
            _ => conn.db.ping().map_err(diesel::r2d2::Error::QueryError),
        }
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.health
            .as_ref()
            .is_some_and(|h| h.lost.load(Ordering::Relaxed))
            || conn.db.is_broken()
    }
}
