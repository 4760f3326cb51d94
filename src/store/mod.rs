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

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use diesel::connection::{
    AnsiTransactionManager, InstrumentationEvent, SimpleConnection, TransactionManager,
};
use diesel::migration::MigrationSource;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::r2d2::{ManageConnection, Pool, PooledConnection, R2D2Connection};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Key of the PostgreSQL advisory lock that serialises Quill's write transactions (and
/// migrations) across every instance sharing the database.
pub const PG_WRITE_LOCK: i64 = 0x5155_494c_4c00_0001;

/// SQLite has one writer at a time, and a connection that finds the writer lock taken waits in
/// SQLite's busy handler, which sleeps 1, 2, 5, 10 … ms between tries: two signHash calls that
/// meet would cost the second one at least a millisecond although the first holds the lock for
/// a tenth of that. Writers of this process therefore queue here first and are woken the moment
/// the previous one commits; the busy timeout still covers other processes (the admin CLI).
/// One lock for every SQLite database of the process: write transactions never nest.
static SQLITE_WRITER: std::sync::Mutex<()> = std::sync::Mutex::new(());

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
fn is_unavailable(e: &DieselError) -> bool {
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

/// How long after a PostgreSQL connection last answered the pool hands it out without testing
/// it first (`SELECT 1`, a round trip that every request paid): the idea of HikariCP's
/// alive-bypass window, with its 500 ms. A connection that died meanwhile (server restart,
/// `pg_terminate_backend`) fails its next statement instead, is marked lost by that failure and
/// dropped when it goes back: the request gets a 503, as it would during the outage itself.
const ALIVE_BYPASS: Duration = Duration::from_millis(500);

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
    target: Target,
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

    /// Bring the schema up to date (idempotent; on PostgreSQL under the advisory lock so that
    /// instances starting together do not race). With `Upgrade::Refuse`, a database some of
    /// whose migrations have run but not all is refused instead (an empty one is set up).
    fn migrate(&mut self, upgrade: Upgrade) -> anyhow::Result<()> {
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

    /// The backend's name, for logs and metrics.
    pub fn backend(&self) -> &'static str {
        match self {
            DbConn::Sqlite(_) => "sqlite",
            DbConn::Pg(_) => "postgres",
        }
    }
}

/// Oldest SQLite library Quill runs on: `RETURNING` (the SAD spend, token issue) is 3.35.
const SQLITE_MIN: (u32, u32) = (3, 35);

/// SQLite is the system's library (or compiled in with `bundled-sqlite`): refuse one too old for
/// Quill's statements with a message that says so, before any statement fails obscurely.
fn check_sqlite_version(version: &str) -> anyhow::Result<()> {
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

/// Copies an SQLite database's write-ahead log back into the database file every
/// `CHECKPOINT_EVERY`, on a thread and connection of its own. SQLite would otherwise run the
/// checkpoint (and its fsyncs) inside whichever commit crosses 1000 WAL pages, stalling that
/// request and, behind the writer lock, every other writer for milliseconds: on signHash that
/// was the p99. PASSIVE never blocks readers or writers. The thread ends when the last clone
/// of its `Store` is dropped.
///
/// A PASSIVE checkpoint alone does not keep the log small under steady load: SQLite starts the
/// log over only when a writer begins while every frame has been copied back, and with commits
/// arriving every few hundred microseconds some always arrive while a checkpoint copies, so the
/// log grew by about a megabyte a second for as long as the load lasted (each commit writing
/// fresh file pages, too). Once the log holds `RESTART_FRAMES`, `checkpoint_round` therefore
/// ends with a pass that this process's writers wait for; the next writer then starts the log
/// over from its beginning.
#[derive(Clone)]
struct Checkpointer {
    _stop: std::sync::mpsc::Sender<()>,
}

const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);
/// Log size (frames of one page) at which the checkpointer has the log started over (64 MiB):
/// large, so that the short wait it costs writers comes seldom (once a minute at a megabyte a
/// second); after the first round the log is rewritten in place, in pages the OS has cached.
const RESTART_FRAMES: i64 = 16384;
/// A log that grew beyond this anyway (a burst, a long reader, another process) is cut back to
/// it when it starts over (`PRAGMA journal_size_limit`).
const WAL_SIZE_LIMIT: i64 = 128 << 20;

/// Further passes stop early once writers appended fewer frames than this during one: about
/// what the pass with writers waiting then has to copy.
const LOCKED_PASS_FRAMES: i64 = 64;

/// One `PRAGMA wal_checkpoint(PASSIVE)`: frames in the log when it started (it copies those).
fn checkpoint_passive(conn: &mut SqliteConnection) -> Result<i64, DieselError> {
    #[derive(QueryableByName)]
    struct Checkpointed {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        log: i64,
    }
    let row: Checkpointed = diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)").get_result(conn)?;
    Ok(row.log)
}

/// One round of the checkpointer: a PASSIVE pass; when the log has grown to `restart_frames`,
/// up to three more while writers keep appending more than a few frames during each, then one
/// with this process's writers waiting, after which the next writer starts the log over. That
/// last pass copies what arrived during the one before and makes the database file durable
/// (an fsync covering every pass since the last complete one): about ten milliseconds here,
/// once per `restart_frames` of log.
fn checkpoint_round(conn: &mut SqliteConnection, restart_frames: i64) -> Result<(), DieselError> {
    let mut log = checkpoint_passive(conn)?;
    if log < restart_frames {
        return Ok(());
    }
    for _ in 0..3 {
        let next = checkpoint_passive(conn)?;
        let appended = next - log;
        log = next;
        if appended <= LOCKED_PASS_FRAMES {
            break;
        }
    }
    let _writers_wait = SQLITE_WRITER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    checkpoint_passive(conn).map(|_| ())
}

impl Checkpointer {
    fn start(path: &str, restart_frames: i64) -> anyhow::Result<Checkpointer> {
        use std::sync::mpsc::RecvTimeoutError;
        let mut conn = SqliteConnection::establish(path)?;
        conn.batch_execute("PRAGMA busy_timeout = 10000;")?;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("quill-wal-checkpoint".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_EVERY) {
                    if let Err(e) = checkpoint_round(&mut conn, restart_frames) {
                        tracing::warn!(error = %e, "SQLite WAL checkpoint failed");
                    }
                }
            })?;
        Ok(Checkpointer { _stop: stop })
    }
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
pub(crate) mod tests {
    use super::*;

    #[test]
    fn an_unsupported_url_is_refused_without_its_password() {
        let e = Target::parse("mysql://quill:DbPassw0rd@db/quill")
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"mysql\"") && !e.contains("DbPassw0rd"), "{e}");
        assert_eq!(
            Target::parse("sqlite://var/q.db").unwrap(),
            Target::Sqlite("var/q.db".into())
        );
    }

    #[test]
    fn sqlite_older_than_3_35_is_refused_by_name() {
        for ok in ["3.35.0", "3.40.1", "3.50.4", "4.0.0"] {
            assert!(check_sqlite_version(ok).is_ok(), "{ok}");
        }
        for old in ["3.34.1", "3.7.17", "2.8.17", "", "x.y"] {
            let e = check_sqlite_version(old).unwrap_err().to_string();
            assert!(e.contains("3.35 or later"), "{old}: {e}");
        }
    }

    /// A new SQLite database and its WAL files are the owner's alone; an existing file keeps
    /// the mode its operator gave it.
    #[test]
    fn a_new_sqlite_database_is_private_to_its_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/q.db");
        let store = Store::open(&format!("sqlite://{}", path.display()), 2).unwrap();
        store.ping().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        let wal = dir.path().join("sub/q.db-wal");
        assert!(wal.exists());
        assert_eq!(mode(&wal), 0o600);
        drop(store);
        let shared = dir.path().join("shared.db");
        std::fs::write(&shared, b"").unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o640)).unwrap();
        Store::open(&format!("sqlite://{}", shared.display()), 2).unwrap();
        assert_eq!(mode(&shared), 0o640);
    }

    /// The PostgreSQL server the tests run against (`QUILL_TEST_PG_URL`, which CI sets);
    /// `None`: SQLite.
    pub(crate) fn test_pg_url() -> Option<String> {
        std::env::var("QUILL_TEST_PG_URL")
            .ok()
            .filter(|u| !u.is_empty())
    }

    /// A fresh store: a temporary SQLite file, or — when `QUILL_TEST_PG_URL` names a
    /// PostgreSQL server (CI sets it) — a fresh database on that server.
    pub(crate) fn temp_store() -> (TempDb, Store) {
        let (db, url) = temp_db();
        let store = Store::open(&url, 4).unwrap();
        (db, store)
    }

    /// `temp_store`'s database, not opened yet: what holds it, and its URL.
    pub(crate) fn temp_db() -> (TempDb, String) {
        let dir = tempfile::tempdir().unwrap();
        let (url, pg) = match test_pg_url() {
            Some(admin) => {
                let db = scratch::ScratchDatabase::create(&admin, "quill_unit").unwrap();
                (db.url(), Some(db))
            }
            None => (format!("sqlite://{}/t.db", dir.path().display()), None),
        };
        (TempDb { _dir: dir, _pg: pg }, url)
    }

    /// Keeps the temporary directory, and the PostgreSQL database until the end.
    pub(crate) struct TempDb {
        _dir: tempfile::TempDir,
        _pg: Option<scratch::ScratchDatabase>,
    }

    impl TempDb {
        /// The scratch directory (for files a test needs beside the database).
        pub(crate) fn path(&self) -> &Path {
            self._dir.path()
        }
    }

    /// A database a newer Quill migrated (a migration version this build lacks) is refused by
    /// name, on either backend, and nothing is run on it; a known one opens as before.
    #[test]
    fn a_database_from_a_newer_quill_is_refused() {
        let (_db, url) = temp_db();
        let store = Store::open(&url, 1).unwrap();
        store
            .with(|c| {
                Ok(c.batch_execute(
                    "INSERT INTO __diesel_schema_migrations (version) VALUES ('29990101000001')",
                )?)
            })
            .unwrap();
        drop(store);
        let e = Store::open(&url, 1).err().expect("refused").to_string();
        assert!(
            e.contains("29990101000001") && e.contains("newer Quill"),
            "{e}"
        );
        store_reopens_once_the_unknown_migration_is_gone(&url);
    }

    /// A database an older Quill set up (a migration of this build not run yet) is migrated by
    /// `open` (serve, demo) only: the operator commands refuse it by name and change nothing,
    /// so that running one of the new version does not move the schema under instances of the
    /// old one. An empty database is set up by either.
    #[test]
    fn only_serve_upgrades_a_database_an_older_quill_set_up() {
        use diesel_migrations::MigrationHarness;
        let (_db, url) = temp_db();
        let fresh = Store::open_for_command(&url, 1).unwrap();
        let last = fresh
            .with(|c| {
                Ok(match c {
                    DbConn::Sqlite(c) => c.revert_last_migration(SQLITE_MIGRATIONS),
                    DbConn::Pg(c) => c.revert_last_migration(POSTGRES_MIGRATIONS),
                }
                .unwrap()
                .to_string()
                .replace('-', ""))
            })
            .unwrap();
        drop(fresh);
        let applied = |url: &str| -> i64 {
            let mut c = DbConn::establish(url).unwrap();
            if let DbConn::Sqlite(_) = c {
                // The dropped store's checkpointer may still be finishing.
                c.batch_execute("PRAGMA busy_timeout = 5000").unwrap();
            }
            diesel::sql_query(
                "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM __diesel_schema_migrations",
            )
            .get_result::<Count>(&mut c)
            .unwrap()
            .n
        };
        let before = applied(&url);
        for e in [
            Store::open_for_command(&url, 1).err(),
            Store::open_existing(&url, 1).err(),
        ] {
            let e = e.expect("refused").to_string();
            assert!(e.contains(&last) && e.contains("older version"), "{e}");
        }
        assert_eq!(applied(&url), before, "nothing migrated");
        Store::open(&url, 1).unwrap();
        assert_eq!(applied(&url), before + 1);
        Store::open_existing(&url, 1).unwrap();
    }

    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }

    fn store_reopens_once_the_unknown_migration_is_gone(url: &str) {
        let mut conn = DbConn::establish(url).unwrap();
        // The dropped store's checkpointer may still hold SQLite's lock for a moment.
        if let DbConn::Sqlite(c) = &mut conn {
            c.batch_execute("PRAGMA busy_timeout = 10000").unwrap();
        }
        conn.batch_execute(
            "DELETE FROM __diesel_schema_migrations WHERE version = '29990101000001'",
        )
        .unwrap();
        drop(conn);
        assert!(Store::open(url, 1).is_ok());
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
        assert!(Target::parse("mysql://h/db").is_err());
        assert_eq!(
            Target::parse("postgresql://u@h:5/db").unwrap(),
            Target::Postgres("postgresql://u@h:5/db".into())
        );
    }

    #[test]
    fn migrations_apply_twice_without_error() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/a/b.db", dir.path().display());
        Store::open(&url, 2).unwrap();
        Store::open(&url, 2).unwrap();
    }

    /// A user row whose password hash is `size` bytes, in a write transaction of its own.
    fn insert_user(store: &Store, id: &str, size: usize) {
        use crate::store::schema::users;
        store
            .with(|c| {
                c.write_tx(|c| {
                    diesel::insert_into(users::table)
                        .values((
                            users::id.eq(id),
                            users::name.eq(format!("user {id}")),
                            users::password_hash.eq("h".repeat(size)),
                            users::failed_logins.eq(0),
                            users::created_at.eq(0_i64),
                        ))
                        .execute(c)?;
                    Ok::<_, StoreError>(())
                })
            })
            .unwrap();
    }

    #[test]
    fn sqlite_wal_is_checkpointed_off_the_request_path() {
        if test_pg_url().is_some() {
            return; // SQLite only
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.db");
        let store = Store::open(path.to_str().unwrap(), 2).unwrap();
        let wal = dir.path().join("q.db-wal");
        // No pooled connection checkpoints inside a commit.
        let auto: i64 = store
            .with(|c| {
                #[derive(QueryableByName)]
                struct Auto {
                    #[diesel(sql_type = diesel::sql_types::BigInt)]
                    wal_autocheckpoint: i64,
                }
                let row: Auto = diesel::sql_query("PRAGMA wal_autocheckpoint").get_result(c)?;
                Ok(row.wal_autocheckpoint)
            })
            .unwrap();
        assert_eq!(auto, 0);
        // Ten rounds of writes with a pause: without the checkpointer the log would only grow
        // (about ten times one round); with it, each round reuses the log from its start.
        let mut n = 0;
        let mut round_size = 0;
        for round in 0..10 {
            for _ in 0..100 {
                n += 1;
                insert_user(&store, &format!("u{n}"), 500);
            }
            if round == 0 {
                round_size = std::fs::metadata(&wal).unwrap().len();
            }
            std::thread::sleep(CHECKPOINT_EVERY * 4);
        }
        let size = std::fs::metadata(&wal).unwrap().len();
        assert!(round_size > 0);
        assert!(
            size < round_size * 4,
            "WAL of {size} bytes after ten rounds of {round_size}"
        );
        // Dropping the store stops the thread and closes its connection: SQLite then folds
        // the log into the database and removes it.
        drop(store);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while wal.exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!wal.exists(), "the checkpointer's connection was closed");
    }

    #[test]
    fn sqlite_wal_starts_over_under_steady_writes() {
        if test_pg_url().is_some() {
            return; // SQLite only
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.db");
        // Started over at 1024 frames (4 MiB) instead of 16384, to see it happen quickly.
        let store = Store::open_with(path.to_str().unwrap(), 2, 1024, Upgrade::Migrate).unwrap();
        let wal = dir.path().join("q.db-wal");
        // Bytes 12..16 of the log's header count the times it was started over.
        let restarts = || {
            let mut header = [0_u8; 16];
            std::fs::File::open(&wal)
                .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut header))
                .map_or(0, |()| {
                    u32::from_be_bytes([header[12], header[13], header[14], header[15]])
                })
        };
        // Steady commits, a few thousand a second (each logging a few 4 KiB pages), never a
        // pause in which a checkpoint could copy the whole log before the next one.
        let mut seen = std::collections::BTreeSet::new();
        for n in 0..6000 {
            insert_user(&store, &format!("u{n}"), 1500);
            if n % 20 == 0 {
                seen.insert(restarts());
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        assert!(
            seen.len() >= 5,
            "the log was started over {} times under steady writes: {seen:?}",
            seen.len() - 1
        );
    }

    /// PostgreSQL: a connection that answered a moment ago is handed out without `SELECT 1`,
    /// one idle for longer is tested first; one whose server process was terminated fails its
    /// next statement (unavailable, not a query error), is dropped by the pool, and the next
    /// checkout works; one terminated while idle for longer is replaced without an error.
    #[test]
    fn pg_connections_are_tested_after_a_pause_and_dropped_when_lost() {
        let Some(admin) = test_pg_url() else {
            return;
        };
        #[derive(QueryableByName)]
        struct Pid {
            #[diesel(sql_type = diesel::sql_types::Integer)]
            pid: i32,
        }
        let db = scratch::ScratchDatabase::create(&admin, "quill_unit").unwrap();
        let store = Store::open(&db.url(), 1).unwrap();
        let pid = |store: &Store| {
            store.with(|c| {
                Ok(diesel::sql_query("SELECT pg_backend_pid() AS pid")
                    .get_result::<Pid>(c)?
                    .pid)
            })
        };
        let last_answer = |store: &Store| store.conn().unwrap().health().unwrap().last_answer_us();
        let first = pid(&store).unwrap();
        let used = last_answer(&store);
        assert_ne!(used, 0);
        assert_eq!(last_answer(&store), used, "no SELECT 1 right after use");
        std::thread::sleep(ALIVE_BYPASS + Duration::from_millis(100));
        assert!(last_answer(&store) > used, "a SELECT 1 after a pause");

        let mut killer = PgConnection::establish(&db.url()).unwrap();
        let terminate = |killer: &mut PgConnection, pid: i32| {
            diesel::sql_query(format!("SELECT pg_terminate_backend({pid})"))
                .execute(killer)
                .unwrap();
            #[derive(QueryableByName)]
            struct Count {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                n: i64,
            }
            for _ in 0..100 {
                let left: Count = diesel::sql_query(format!(
                    "SELECT count(*) AS n FROM pg_stat_activity WHERE pid = {pid}"
                ))
                .get_result(killer)
                .unwrap();
                if left.n == 0 {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            panic!("backend {pid} still there");
        };
        let second = pid(&store).unwrap();
        assert_eq!(second, first, "one connection, kept");
        terminate(&mut killer, second);
        // Within the window: the dead connection is handed out, fails, and is dropped.
        assert!(matches!(pid(&store), Err(StoreError::Unavailable(_))));
        let third = pid(&store).unwrap();
        assert_ne!(third, second, "a new connection");
        // After a pause: tested, found dead and replaced before use.
        terminate(&mut killer, third);
        std::thread::sleep(ALIVE_BYPASS + Duration::from_millis(100));
        let fourth = pid(&store).unwrap();
        assert_ne!(fourth, third);
    }

    #[test]
    fn write_tx_rolls_back_on_error_and_serialises_writers() {
        use crate::store::schema::users;
        let (_d, store) = temp_store();
        let insert = |c: &mut DbConn, id: &str| {
            diesel::insert_into(users::table)
                .values((
                    users::id.eq(id),
                    users::name.eq(id),
                    users::password_hash.eq("h"),
                    users::failed_logins.eq(0),
                    users::created_at.eq(0_i64),
                ))
                .execute(c)
        };
        let failed: Result<(), StoreError> = store.with(|c| {
            c.write_tx(|c| {
                insert(c, "a")?;
                Err(StoreError::Query("no".into()))
            })
        });
        assert!(failed.is_err());
        let count = |store: &Store| {
            store
                .with(|c| Ok(users::table.count().get_result::<i64>(c)?))
                .unwrap()
        };
        assert_eq!(count(&store), 0, "rolled back");
        // Read-then-write in parallel: every transaction sees the previous one's write.
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let s = store.clone();
                std::thread::spawn(move || {
                    s.with(|c| {
                        c.write_tx(|c| {
                            let n: i64 = users::table.count().get_result(c)?;
                            insert(c, &format!("u{n}-{i}"))?;
                            Ok::<i64, StoreError>(n)
                        })
                    })
                    .unwrap()
                })
            })
            .collect();
        let mut seen: Vec<i64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..8).collect::<Vec<_>>());
        assert_eq!(
            store.backend(),
            if test_pg_url().is_some() {
                "postgres"
            } else {
                "sqlite"
            }
        );
    }
}
