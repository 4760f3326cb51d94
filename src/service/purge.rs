//! The purge of expired state while the server runs (`--purge-every`, `--keep-expired`):
//! `store::repo::purge` on a timer, counted in `quill_purged_rows_total`.

use std::time::Duration;

use crate::blocking;
use crate::error::CscError;
use crate::state::AppState;
use crate::store::repo::purge::{self, Purged};

/// Between two batches of one purge: the writers that queued behind a batch go first.
const PAUSE: Duration = Duration::from_millis(5);
/// Batches per purge (about 100 000 rows per table); more waits for the next one, so a large
/// backlog never holds up a shutdown for long.
const MAX_BATCHES: usize = 200;

/// Delete what expired more than `keep_expired` seconds ago, and asynchronous calls' answers
/// once they expire (they count against their caller's allowance until deleted) (blocking).
fn run_once(st: &AppState) -> Result<Purged, CscError> {
    let now = st.clock.now();
    let cutoff = now - st.settings.keep_expired;
    let purged = st
        .store
        .with(|c| purge::run(c, cutoff, now, MAX_BATCHES, PAUSE))?;
    for (table, n) in purged.by_table() {
        if n > 0 {
            st.metrics.purged(table, n);
        }
    }
    if purged.total() > 0 {
        tracing::info!(
            sads = purged.sads,
            sad_digests = purged.digests,
            access_tokens = purged.access_tokens,
            otp_challenges = purged.otp_challenges,
            oauth = purged.oauth_requests + purged.oauth_codes + purged.oauth_refresh_tokens,
            sign_jobs = purged.sign_jobs,
            "expired state purged"
        );
    }
    Ok(purged)
}

/// `run_once` every `every`, the first time at once, for as long as the runtime runs. A failed
/// purge is logged and tried again at the next tick.
pub async fn every(state: AppState, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let st = state.clone();
        if let Err(e) = blocking::run(move || run_once(&st)).await {
            tracing::warn!(error = %e, "purge of expired state failed");
        }
    }
}
