//! `portcullis export SESSION --format asciicast|json [-o FILE]`.
//!
//! Invariant: an export is written from one read-only snapshot of the
//! transcript. The JSON form is the whole transcript in a stable shape
//! (documented in the README): the `show --json` session object, the
//! terminal the session started with, and every event of `show --json`,
//! where stream rows also carry their exact bytes as `base64` (the `text`
//! field is lossy UTF-8).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use serde::Serialize;

use super::asciicast::write_asciicast;
use super::cli::{read_transcript, ReplayError};
use super::json::{event_json, write_json, EventJson, SessionJson};
use super::recording::{Recording, TerminalInfo};
use crate::audit::{Entry, Event, Transcript};

/// The `format` and `version` of the JSON export; the version changes only
/// when a field changes meaning or goes away.
pub const JSON_FORMAT: &str = "portcullis-transcript";
pub const JSON_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// asciinema v2 (`.cast`): output, input and resizes with their timing
    Asciicast,
    /// The whole transcript as JSON, with exact bytes
    Json,
}

/// Arguments of `portcullis export`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    /// The session to export
    pub session: i64,
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// Write to this file instead of stdout
    #[arg(short = 'o', long = "output")]
    pub output: Option<PathBuf>,
    /// With `[cluster]`: the replica that recorded the session, when it is
    /// not this one (read from the archive)
    #[arg(long)]
    pub replica: Option<String>,
}

/// `portcullis export`
pub fn export(store: &Path, args: &ExportArgs) -> Result<(), ReplayError> {
    export_transcript(&read_transcript(store, args.session)?, args)
}

/// `portcullis export` of a transcript read elsewhere (the archive).
pub fn export_transcript(transcript: &Transcript, args: &ExportArgs) -> Result<(), ReplayError> {
    match &args.output {
        Some(path) => {
            let file = File::create(path).map_err(|e| ReplayError::Output {
                path: path.clone(),
                source: e,
            })?;
            let mut out = BufWriter::new(file);
            write_export(transcript, args.format, &mut out)?;
            out.flush()?;
        }
        None => {
            let mut out = io::stdout().lock();
            write_export(transcript, args.format, &mut out)?;
            out.flush()?;
        }
    }
    Ok(())
}

pub fn write_export(t: &Transcript, format: ExportFormat, out: &mut dyn Write) -> io::Result<()> {
    match format {
        ExportFormat::Asciicast => write_asciicast(t, out),
        ExportFormat::Json => write_transcript_json(t, out),
    }
}

#[derive(Serialize)]
struct Export<'a> {
    format: &'static str,
    version: u32,
    session: SessionJson<'a>,
    terminal: Option<TerminalInfoJson>,
    events: Vec<ExportEvent<'a>>,
}

#[derive(Serialize)]
struct TerminalInfoJson {
    term: String,
    cols: u32,
    rows: u32,
}

#[derive(Serialize)]
struct ExportEvent<'a> {
    #[serde(flatten)]
    event: EventJson<'a>,
    /// The exact bytes of a stream row.
    #[serde(skip_serializing_if = "Option::is_none")]
    base64: Option<String>,
}

/// `export --format json`.
pub fn write_transcript_json(t: &Transcript, out: &mut dyn Write) -> io::Result<()> {
    let start = t.session.started_at_us;
    let terminal = Recording::of(t)
        .terminal
        .map(|TerminalInfo { term, cols, rows }| TerminalInfoJson { term, cols, rows });
    let events = t
        .events
        .iter()
        .filter(|e| !matches!(e.entry, Entry::Event(Event::SessionStart(_))))
        .map(|e| ExportEvent {
            event: event_json(e, Some(start)),
            base64: match &e.entry {
                Entry::Data { data, .. } => {
                    Some(base64::engine::general_purpose::STANDARD.encode(data))
                }
                _ => None,
            },
        })
        .collect();
    let export = Export {
        format: JSON_FORMAT,
        version: JSON_VERSION,
        session: SessionJson::new(&t.session),
        terminal,
        events,
    };
    write_json(&export, out)
}
