//! Codex CLI JSON events (being written).
