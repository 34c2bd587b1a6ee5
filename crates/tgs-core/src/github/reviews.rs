//! The review loop on GitHub: reading an open pull request's reviews and
//! comments (`GET /pulls/{n}`, `/pulls/{n}/reviews`, `/pulls/{n}/comments`,
//! `/issues/{n}/comments`), when GitHub saw a branch pushed
//! (`GET /activity`), asking who may push
//! (`GET /collaborators/{login}/permission`), and answering on the pull
//! request (a comment, the `tgs:needs-human` label). What is read is only
//! parsed here; [`crate::review`] decides what it asks for. Every time read
//! here is on GitHub's clock, to be compared only with GitHub's.

use jiff::Timestamp;
use serde_json::{json, Value};

use super::{html_url, pr_state_of, tolerate_unprocessable, Call, GitHub, PrState};
use crate::review::{PrActivity, PrEvent, Source};
use crate::Error;

/// The label of pull requests tgs hands back to humans.
pub const NEEDS_HUMAN_LABEL: &str = "tgs:needs-human";
/// Pages of 100 read at most per list (10,000 reviews or comments).
const MAX_PAGES: u32 = 100;

/// What a pull request is, for the review loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrInfo {
    pub number: u64,
    pub state: PrState,
    /// `Some(false)`: GitHub says it conflicts with its base; `None`: not
    /// computed yet (GitHub computes it in the background).
    pub mergeable: Option<bool>,
    pub head_sha: String,
    /// Its head branch (`head.ref`).
    pub head_ref: String,
    /// Its head is in another repository (a fork).
    pub from_fork: bool,
    /// When it was opened, on GitHub's clock.
    pub created_at: Option<Timestamp>,
}

impl GitHub {
    /// The pull request `number`: state, mergeability, head.
    pub fn pr_info(&self, number: u64) -> Result<PrInfo, Error> {
        let v = self
            .call(&Call::get(
                format!("{}/pulls/{number}", self.repo_path()),
                format!("reading pull request #{number}"),
                "pull requests: read",
            ))
            .map_err(|e| self.error(e))?;
        Ok(parse_pr_info(number, &v))
    }

    /// Every review, conversation comment and inline comment of `number`.
    pub fn pr_activity(&self, number: u64) -> Result<PrActivity, Error> {
        let repo = self.repo_path();
        Ok(PrActivity {
            reviews: self.list(
                &format!("{repo}/pulls/{number}/reviews"),
                number,
                Source::Review,
            )?,
            comments: self.list(
                &format!("{repo}/issues/{number}/comments"),
                number,
                Source::Comment,
            )?,
            inline: self.list(
                &format!("{repo}/pulls/{number}/comments"),
                number,
                Source::Inline,
            )?,
        })
    }

    /// When GitHub recorded the push that put `branch` at `sha` (the
    /// earliest, from the repository's activity), on GitHub's clock. `None`
    /// when it has no record of one or cannot be asked (an older GitHub
    /// Enterprise, a token without the permission): the caller falls back
    /// on another time GitHub reported.
    pub fn pushed_at(&self, branch: &str, sha: &str) -> Option<Timestamp> {
        let r#ref = super::query(&format!("refs/heads/{branch}"));
        let got = self.call(&Call::get(
            format!("{}/activity?ref={ref}&per_page=100", self.repo_path()),
            format!("reading when {branch} was pushed"),
            "contents: read",
        ));
        match got {
            Ok(v) => parse_pushed_at(&v, sha),
            Err(e) => {
                tracing::debug!(target: "tgs::github", "no push time of {branch}: {}", self.error(e));
                None
            }
        }
    }

    /// Whether `login` may push to the repository; `None` when the token
    /// may not ask (then the caller falls back on `author_association`).
    pub fn can_write(&self, login: &str) -> Result<Option<bool>, Error> {
        let got = self.call(&Call::get(
            format!(
                "{}/collaborators/{}/permission",
                self.repo_path(),
                super::query(login)
            ),
            format!("reading the permission of @{login}"),
            "metadata: read",
        ));
        match got {
            Ok(v) => {
                Ok(Some(["permission", "role_name"].iter().any(|k| {
                    v[*k].as_str().is_some_and(crate::review::can_write)
                })))
            }
            // Not a collaborator at all.
            Err(e) if e.status() == Some(404) => Ok(Some(false)),
            Err(e) if e.status() == Some(403) => Ok(None),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Comment on pull request `number`; returns the comment's URL.
    pub fn comment_on_pr(&self, number: u64, body: &str) -> Result<String, Error> {
        let v = self
            .call(&Call::post(
                format!("{}/issues/{number}/comments", self.repo_path()),
                json!({ "body": body }),
                format!("commenting on pull request #{number}"),
                "pull requests: write",
            ))
            .map_err(|e| self.error(e))?;
        Ok(html_url(&v))
    }

    /// Put `label` on pull request `number`.
    pub fn label_pr(&self, number: u64, label: &str) -> Result<(), Error> {
        let r = self.call(&Call::post(
            format!("{}/issues/{number}/labels", self.repo_path()),
            json!({ "labels": [label] }),
            format!("labeling pull request #{number}"),
            "issues: write",
        ));
        tolerate_unprocessable(r, "labels").map_err(|e| self.error(e))
    }

    /// All pages of one list, as events.
    pub(super) fn list(
        &self,
        path: &str,
        number: u64,
        source: Source,
    ) -> Result<Vec<PrEvent>, Error> {
        let mut out = Vec::new();
        for page in 1..=MAX_PAGES {
            let v = self
                .call(&Call::get(
                    format!("{path}?per_page=100&page={page}"),
                    format!("reading the reviews and comments of pull request #{number}"),
                    "pull requests: read",
                ))
                .map_err(|e| self.error(e))?;
            let items = v.as_array().map(Vec::as_slice).unwrap_or_default();
            out.extend(items.iter().map(|i| parse_event(i, source)));
            if items.len() < 100 {
                break;
            }
        }
        Ok(out)
    }
}

/// A pull request's fields the review loop reads.
pub fn parse_pr_info(number: u64, v: &Value) -> PrInfo {
    let repo = |side: &str| v[side]["repo"]["full_name"].as_str().map(str::to_owned);
    PrInfo {
        number,
        state: pr_state_of(v),
        mergeable: v["mergeable"].as_bool(),
        head_sha: v["head"]["sha"].as_str().unwrap_or_default().to_owned(),
        head_ref: v["head"]["ref"].as_str().unwrap_or_default().to_owned(),
        from_fork: matches!((repo("head"), repo("base")), (Some(h), Some(b)) if h != b),
        created_at: time(&v["created_at"]),
    }
}

/// The earliest time in a list of repository activities at which a push
/// left the branch at `sha`.
pub fn parse_pushed_at(v: &Value, sha: &str) -> Option<Timestamp> {
    v.as_array()?
        .iter()
        .filter(|a| !sha.is_empty() && a["after"].as_str() == Some(sha))
        .filter_map(|a| time(&a["timestamp"]))
        .min()
}

fn time(v: &Value) -> Option<Timestamp> {
    v.as_str().and_then(|t| t.parse::<Timestamp>().ok())
}

/// A review or comment as GitHub lists it.
pub fn parse_event(v: &Value, source: Source) -> PrEvent {
    let text = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
    let (at, commit) = match source {
        Source::Review => (&v["submitted_at"], &v["commit_id"]),
        // An inline comment's `commit_id` follows the PR; where it was
        // written is the original one.
        Source::Inline => (&v["created_at"], &v["original_commit_id"]),
        Source::Comment => (&v["created_at"], &Value::Null),
    };
    PrEvent {
        id: v["id"].as_u64().unwrap_or_default(),
        author: v["user"]["login"].as_str().unwrap_or_default().to_owned(),
        association: text("author_association"),
        body: text("body"),
        url: html_url(v),
        at: time(at),
        commit: commit.as_str().unwrap_or_default().to_owned(),
        state: text("state"),
        review_id: v["pull_request_review_id"].as_u64(),
        path: text("path"),
        line: v["line"].as_u64().or_else(|| v["original_line"].as_u64()),
        hunk: text("diff_hunk"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_and_pull_requests_parse_as_github_sends_them() {
        let review = json!({
            "id": 80, "user": {"login": "alice"}, "author_association": "MEMBER",
            "body": "Please fix", "state": "CHANGES_REQUESTED",
            "html_url": "https://github.com/o/r/pull/1#pullrequestreview-80",
            "submitted_at": "2026-11-30T10:00:00Z", "commit_id": "abc"
        });
        let e = parse_event(&review, Source::Review);
        assert_eq!(
            (e.id, e.author.as_str(), e.state.as_str()),
            (80, "alice", "CHANGES_REQUESTED")
        );
        assert_eq!(e.at, Some("2026-11-30T10:00:00Z".parse().unwrap()));
        assert_eq!(e.commit, "abc");
        let inline = json!({
            "id": 90, "pull_request_review_id": 80, "user": {"login": "alice"},
            "body": "here", "path": "src/a.rs", "line": null, "original_line": 7,
            "diff_hunk": "@@ -1 +1 @@", "created_at": "2026-11-30T10:00:00Z",
            "commit_id": "def", "original_commit_id": "abc"
        });
        let e = parse_event(&inline, Source::Inline);
        assert_eq!(
            (e.review_id, e.line, e.path.as_str(), e.commit.as_str()),
            (Some(80), Some(7), "src/a.rs", "abc")
        );
        let pr = json!({
            "state": "open", "merged": false, "mergeable": false,
            "head": {"sha": "abc", "ref": "tgs/x", "repo": {"full_name": "o/r"}},
            "base": {"repo": {"full_name": "o/r"}}, "created_at": "2026-11-30T09:00:00Z"
        });
        let i = parse_pr_info(1, &pr);
        assert_eq!(
            (i.state, i.mergeable, i.from_fork, i.head_ref.as_str()),
            (PrState::Open, Some(false), false, "tgs/x")
        );
        assert_eq!(i.created_at, Some("2026-11-30T09:00:00Z".parse().unwrap()));
        let fork = json!({"state": "open", "head": {"repo": {"full_name": "x/r"}}, "base": {"repo": {"full_name": "o/r"}}});
        assert!(parse_pr_info(2, &fork).from_fork);
        assert_eq!(parse_pr_info(2, &fork).mergeable, None);
    }

    #[test]
    fn the_time_of_a_push_is_the_earliest_github_recorded_for_the_commit() {
        let activity = json!([
            {"after": "abc", "timestamp": "2026-11-30T10:05:00Z", "activity_type": "push"},
            {"after": "def", "timestamp": "2026-11-30T10:03:00Z", "activity_type": "push"},
            {"after": "abc", "timestamp": "2026-11-30T10:01:00Z", "activity_type": "force_push"},
        ]);
        assert_eq!(
            parse_pushed_at(&activity, "abc"),
            Some("2026-11-30T10:01:00Z".parse().unwrap())
        );
        assert_eq!(parse_pushed_at(&activity, "123"), None);
        assert_eq!(parse_pushed_at(&activity, ""), None);
        assert_eq!(
            parse_pushed_at(&json!({"message": "Not Found"}), "abc"),
            None
        );
    }
}
