//! Which actions each status of an entry allows: the state machine's
//! table, checked by every transition (`machine`, and the review loop's in
//! `revision`) before it changes anything.

use super::{Entry, Status};
use crate::Error;

/// The commands that may act on an entry in each status.
pub fn allowed_actions(status: Status) -> Vec<&'static str> {
    match status {
        Status::Queued => vec!["next", "priority", "remove"],
        Status::InProgress => vec!["complete", "fail", "remove"],
        Status::HandoverPending => vec!["complete", "fail", "retry", "remove"],
        Status::Failed => vec!["retry", "priority", "remove"],
        Status::Completed => vec!["remove"],
        Status::NeedsInput => vec!["answer", "priority", "remove"],
    }
}

/// `Ok` when `e`'s status is one of `from`; else the error naming the
/// `action` refused and the actions its status allows.
pub(super) fn check(e: &Entry, action: &'static str, from: &[Status]) -> Result<(), Error> {
    if from.contains(&e.status) {
        Ok(())
    } else {
        Err(Error::Transition {
            action,
            dir: e.dir.clone(),
            status: e.status.to_string(),
            allowed: allowed_actions(e.status),
        })
    }
}
