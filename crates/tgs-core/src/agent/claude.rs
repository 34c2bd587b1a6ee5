//! Claude Code stream-json events (being written).
