//! `portcullis events`: every chained event (stream bytes are not events:
//! they stay in the transcript), oldest first, as text or one JSON object
//! per line; `--follow` goes on printing events as they are committed, by
//! any process writing the store, for a SIEM agent to tail.
//!
//! Invariant: each event is printed once, in sequence order; a reader that
//! stopped resumes with `--after SEQ` and misses none.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use super::cli::parse_since;
use super::json::event_line_json;
use super::show::sanitize;
use super::ReplayError;
use crate::audit::{Entry, EventRecord, Reader};
use crate::clock::rfc3339_us;

/// How often `--follow` looks for new events.
const FOLLOW_POLL: Duration = Duration::from_millis(200);
/// Events read per query.
const PAGE: usize = 1000;

#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    /// Keep printing events as they are committed (until interrupted)
    #[arg(long)]
    pub follow: bool,
    /// Only events from this time on: RFC 3339 (2026-11-28T07:40:00Z) or unix seconds
    #[arg(long, value_parser = parse_since)]
    pub since: Option<i64>,
    /// Only events after this sequence number (to resume where a reader stopped)
    #[arg(long, default_value_t = 0)]
    pub after: i64,
    /// One JSON object per line
    #[arg(long)]
    pub json: bool,
    /// With `[cluster]`: the cluster's control chain (revocations,
    /// suspensions, archive seals, requests and their decisions) instead
    /// of this replica's store
    #[arg(long)]
    pub cluster: bool,
}

/// Prints the events; with `follow`, never returns unless writing fails.
pub fn events(store: &Path, args: &EventsArgs, out: &mut dyn Write) -> Result<(), ReplayError> {
    let reader = Reader::open(store)?;
    let mut after = args.after;
    loop {
        let page = reader.events_after(after, args.since, PAGE)?;
        for event in &page {
            after = event.seq;
            match args.json {
                true => event_line_json(event, out)?,
                false => event_line(event, out)?,
            }
        }
        out.flush()?;
        if page.len() < PAGE {
            if !args.follow {
                return Ok(());
            }
            std::thread::sleep(FOLLOW_POLL);
        }
    }
}

/// `TIME  SEQ  SESSION  CHANNEL  KIND  FIELDS` (fields as JSON).
fn event_line(e: &EventRecord, out: &mut dyn Write) -> std::io::Result<()> {
    let fields = match &e.entry {
        Entry::Event(event) => {
            let mut value = serde_json::to_value(event).unwrap_or_default();
            if let Some(map) = value.as_object_mut() {
                map.remove("kind");
            }
            value.to_string()
        }
        Entry::Data { stream, data } => {
            format!("{{\"stream\":\"{stream:?}\",\"len\":{}}}", data.len())
        }
        Entry::Unparsed { detail, .. } => detail.clone(),
    };
    let dash = || "-".to_string();
    writeln!(
        out,
        "{}  {}  session {}  ch {}  {}  {}",
        rfc3339_us(e.at_us),
        e.seq,
        e.session.map_or_else(dash, |s| s.0.to_string()),
        e.channel.map_or_else(dash, |c| c.to_string()),
        sanitize(e.entry.kind()),
        sanitize(&fields)
    )
}
