//! What reviewers read: `sessions`, `show`, `events` and `verify` output, as text for a
//! terminal and as the stable `--json` shapes of docs/CONTRACT.md; and
//! what they play: `replay` in the terminal, `export` as asciicast or JSON.
//!
//! Invariant: reviewer commands only read the store (a read-only
//! `crate::audit::Reader`, safe beside a running server); rendering writes
//! query results to the given `Write`, and text output never passes a
//! recorded control character through to the terminal.

pub mod asciicast;
mod cli;
mod console;
mod events;
mod export;
mod json;
mod observed;
mod player;
pub mod recording;
mod show;
pub mod syslog;

#[cfg(test)]
mod tests;

pub use cli::{sessions, show, show_transcript, verify, ReplayError, SessionsArgs};
pub use events::{events, EventsArgs};
pub use export::{export, export_transcript, write_export, ExportArgs, ExportFormat};
pub use json::{
    write_cluster_sessions_json, write_events_json, write_refused_json, write_sessions_json,
    write_show_json, write_verify_json,
};
pub use player::{replay, replay_transcript, schedule, ReplayArgs, Step};
pub use show::{
    sanitize, write_cluster_sessions, write_refused, write_row, write_sessions, write_show,
    write_verify,
};
