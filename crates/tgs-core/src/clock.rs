//! The current time and who we are, with overrides for reproducible runs.
//!
//! `TGS_NOW` (an RFC 3339 timestamp) pins the clock, so tests and demos can
//! check leases and retry delays without sleeping.

use jiff::{Timestamp, Unit};

/// Now, to the second (timestamps in state files carry no fractions).
pub fn now() -> Timestamp {
    if let Some(t) = std::env::var("TGS_NOW")
        .ok()
        .and_then(|s| s.parse::<Timestamp>().ok())
    {
        return t;
    }
    Timestamp::now()
        .round(Unit::Second)
        .unwrap_or_else(|_| Timestamp::now())
}

/// Sleep for `d`, unless the clock is pinned (`TGS_NOW`): a pinned clock
/// never moves, so waiting for it would only slow tests down.
pub fn sleep(d: std::time::Duration) {
    if !is_pinned() {
        std::thread::sleep(d);
    }
}

/// Whether `TGS_NOW` pins the clock.
pub fn is_pinned() -> bool {
    std::env::var_os("TGS_NOW").is_some()
}

/// The default worker identity: `hostname/user`.
pub fn default_worker_id() -> String {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| account_name().unwrap_or_else(|| "unknown".into()));
    format!("{host}/{user}")
}

/// The name of the account running tgs, from the password database.
fn account_name() -> Option<String> {
    // SAFETY: getpwuid returns a pointer into static storage or null; the name
    // is copied out at once, before any other call could overwrite it.
    unsafe {
        let pw = libc::getpwuid(libc::getuid());
        if pw.is_null() || (*pw).pw_name.is_null() {
            return None;
        }
        Some(
            std::ffi::CStr::from_ptr((*pw).pw_name)
                .to_string_lossy()
                .into_owned(),
        )
    }
}
