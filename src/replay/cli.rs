//! The reviewer subcommands as `main.rs` calls them: open the store
//! read-only, query, render.
//!
//! Invariant: these functions only read (a [`Reader`]), so they are safe to
//! run while a server writes, and they never create a store that is missing.

use std::io::{self, Write};
use std::path::Path;

use crate::audit::{Reader, SessionFilter, SessionId, StoreError, Transcript};

use super::json::{write_refused_json, write_sessions_json, write_show_json, write_verify_json};
use super::show::{write_refused, write_sessions, write_show, write_verify};
use crate::clock::parse_time;

/// Arguments of `portcullis sessions`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SessionsArgs {
    /// Only sessions of this identity
    #[arg(long)]
    pub identity: Option<String>,
    /// Only sessions of this task
    #[arg(long)]
    pub task: Option<String>,
    /// Only sessions to this target
    #[arg(long)]
    pub target: Option<String>,
    /// Only from this time on: RFC 3339 (2026-11-28T07:40:00Z) or unix seconds
    #[arg(long, value_parser = parse_since)]
    pub since: Option<i64>,
    /// List refusals outside sessions (authentications, grant requests, limits)
    #[arg(long)]
    pub refused: bool,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

pub(super) fn parse_since(s: &str) -> Result<i64, String> {
    parse_time(s).ok_or_else(|| format!("`{s}` is neither an RFC 3339 time nor unix seconds"))
}

/// What can stop a reviewer command.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no session {0} in the audit store")]
    NoSuchSession(i64),
    #[error("cannot write the output: {0}")]
    Io(#[from] io::Error),
    #[error("cannot write {path}: {source}")]
    Output {
        path: std::path::PathBuf,
        source: io::Error,
    },
    #[error("cannot use the terminal: {0}")]
    Terminal(io::Error),
}

/// One session's transcript, read-only.
pub(super) fn read_transcript(store: &Path, session: i64) -> Result<Transcript, ReplayError> {
    Reader::open(store)?
        .transcript(SessionId(session))?
        .ok_or(ReplayError::NoSuchSession(session))
}

/// `portcullis sessions [--identity --task --target --since] [--refused] [--json]`
pub fn sessions(store: &Path, args: &SessionsArgs, out: &mut dyn Write) -> Result<(), ReplayError> {
    let reader = Reader::open(store)?;
    if args.refused {
        let refused = reader.list_refusals(args.since)?;
        match args.json {
            true => write_refused_json(&refused, out)?,
            false => write_refused(&refused, out)?,
        }
        return Ok(());
    }
    let filter = SessionFilter {
        identity: args.identity.clone(),
        task: args.task.clone(),
        target: args.target.clone(),
        since_us: args.since,
        ..SessionFilter::default()
    };
    let list = reader.list_sessions(&filter)?;
    match args.json {
        true => write_sessions_json(&list, out)?,
        false => write_sessions(&list, out)?,
    }
    Ok(())
}

/// `portcullis show SESSION [--json]`
pub fn show(
    store: &Path,
    session: i64,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), ReplayError> {
    show_transcript(&read_transcript(store, session)?, json, out)
}

/// `portcullis show` of a transcript read elsewhere (the archive).
pub fn show_transcript(
    transcript: &Transcript,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), ReplayError> {
    match json {
        true => write_show_json(transcript, out)?,
        false => write_show(transcript, out)?,
    }
    Ok(())
}

/// `portcullis verify [SESSION] [--json]`; returns whether the log is intact.
pub fn verify(
    store: &Path,
    session: Option<i64>,
    json: bool,
    out: &mut dyn Write,
) -> Result<bool, ReplayError> {
    let report = Reader::open(store)?.verify(session.map(SessionId))?;
    match json {
        true => write_verify_json(&report, out)?,
        false => write_verify(&report, out)?,
    }
    Ok(report.is_ok())
}
