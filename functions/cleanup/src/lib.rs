//! The clean-up function: finishes the clean-ups that deletes leave behind
//! (an erased user's conversations and memberships, a deleted segment's
//! memberships; see `shared::store` `cleanup`).
//!
//! In AWS it runs when the table's stream shows a clean-up job written or
//! touched, and every few minutes on a schedule. Whatever the event, it does
//! the same: every pending job, until each is finished or the invocation's
//! deadline is near; a job it leaves unfinished is touched, and that change
//! starts the next invocation through the stream. Its events carry nothing
//! it needs, so it reads them as plain JSON.
//!
//! A failure (the database unavailable) is logged and answered as a summary,
//! not as an error: the jobs stay in the table and the next event takes them
//! up; an error would only make the stream re-deliver a batch that holds no
//! work of its own.

use std::time::Duration;

use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use shared::deadline::Deadline;
use shared::store::Store;

/// What an invocation keeps in hand before its deadline.
pub const INVOCATION_MARGIN: Duration = Duration::from_secs(2);

/// Works on every pending clean-up within the invocation's time.
pub async fn handle(
    store: &Store,
    event: LambdaEvent<Value>,
) -> Result<Value, lambda_runtime::Error> {
    Ok(clean_up(store, &event.context).await)
}

/// One sweep of the pending clean-ups, summarised.
pub async fn clean_up(store: &Store, context: &Context) -> Value {
    let deadline = Deadline::at(Deadline::of_invocation(context).instant() - INVOCATION_MARGIN);
    match store.run_cleanup(deadline).await {
        Ok(sweep) => {
            tracing::info!(
                finished = sweep.finished,
                pending = sweep.pending,
                "clean-up sweep"
            );
            json!({ "finished": sweep.finished, "pending": sweep.pending })
        }
        Err(error) => {
            tracing::warn!(error = ?error, "clean-up sweep failed; the jobs stay for the next one");
            json!({ "failed": error.to_string() })
        }
    }
}
