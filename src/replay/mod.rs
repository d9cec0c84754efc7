//! What reviewers read: `sessions`, `show` and `verify` output, as text for a
//! terminal and as the stable `--json` shapes of design/interfaces.md.
//!
//! Invariant: reviewer commands only read the store (a read-only
//! `crate::audit::Reader`, safe beside a running server); rendering writes
//! query results to the given `Write`, and text output never passes a
//! recorded control character through to the terminal.

mod cli;
mod json;
mod show;
pub mod time;

#[cfg(test)]
mod tests;

pub use cli::{sessions, show, verify, ReplayError, SessionsArgs};
pub use json::{write_refused_json, write_sessions_json, write_show_json, write_verify_json};
pub use show::{sanitize, write_refused, write_sessions, write_show, write_verify};
