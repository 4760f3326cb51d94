//! SQLite only: the write-ahead log's checkpointer, a thread of its own that copies the log back
//! into the database file off the request path and has the log started over under steady load.

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel::sqlite::SqliteConnection;

use super::conn::SQLITE_WRITER;

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
pub(super) struct Checkpointer {
    _stop: std::sync::mpsc::Sender<()>,
}

pub(super) const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);
/// Log size (frames of one page) at which the checkpointer has the log started over (64 MiB):
/// large, so that the short wait it costs writers comes seldom (once a minute at a megabyte a
/// second); after the first round the log is rewritten in place, in pages the OS has cached.
pub(super) const RESTART_FRAMES: i64 = 16384;
/// A log that grew beyond this anyway (a burst, a long reader, another process) is cut back to
/// it when it starts over (`PRAGMA journal_size_limit`).
pub(super) const WAL_SIZE_LIMIT: i64 = 128 << 20;

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
    pub(super) fn start(path: &str, restart_frames: i64) -> anyhow::Result<Checkpointer> {
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
