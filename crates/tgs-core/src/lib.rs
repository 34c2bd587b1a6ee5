//! The `tgs` library core: TGSFlow thoughts, the server-mode backlog and its
//! store, git access, and agent execution.
//!
//! Nothing here prints or parses command lines; the `tgs` binary is a thin
//! layer over these modules. Errors are [`Error`] values whose variants tell
//! the kind of failure, so the CLI can map them to exit codes.

pub mod agent;
pub mod archive;
pub mod backlog;
pub mod clock;
pub mod config;
pub mod context;
pub mod credential;
pub mod diskwatch;
mod error;
pub mod events;
pub mod failpoint;
pub mod forge;
pub mod git;
pub mod github;
pub mod guardrails;
pub mod history;
pub mod init;
pub mod lockfile;
pub mod objects;
pub mod process;
pub mod procfs;
pub mod prompt;
pub mod question;
pub mod reaper;
pub mod records;
pub mod repo;
pub mod report;
pub mod review;
pub mod runner;
pub mod sandbox;
pub mod scaffold;
pub mod secrets;
pub mod selfcheck;
pub mod session;
pub mod stall;
pub mod template;
pub mod thought;
pub mod topology;
pub mod transcript;
pub mod verify;
pub mod worktree;

pub use error::{Error, ForgeErrorKind, Result};
