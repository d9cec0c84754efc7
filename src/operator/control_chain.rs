//! `portcullis events --cluster`: the cluster's control chain (what every
//! replica and operator decided: revocations, suspensions, archive seals,
//! grant requests and held commands with their decisions and expiries),
//! oldest first, as text or one JSON object per line; `--follow` goes on
//! as events are appended by any replica.
//!
//! Invariant: each event is printed once, in sequence order, and a reader
//! that stopped resumes with `--after SEQ`, as with the store's events.

use std::io::Write;
use std::time::Duration;

use super::cluster::with_cluster;
use crate::clock::rfc3339_us;
use crate::cluster::ChainEvent;
use crate::config::ClusterSettings;
use crate::replay::{sanitize, EventsArgs};

/// How often `--follow` looks for new events.
const FOLLOW_POLL: Duration = Duration::from_millis(200);
/// Events read per query.
const PAGE: usize = 1000;

/// Prints the chain's events; with `follow`, never returns unless a read
/// or a write fails.
pub fn events(
    settings: &ClusterSettings,
    args: &EventsArgs,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    with_cluster(settings, async |cluster| {
        let mut after = args.after;
        loop {
            let page = cluster.chain_events(after, args.since, PAGE).await?;
            for event in &page {
                after = event.seq;
                match args.json {
                    true => json_line(event, out)?,
                    false => text_line(event, out)?,
                }
            }
            out.flush()?;
            if page.len() < PAGE {
                if !args.follow {
                    return Ok(());
                }
                tokio::time::sleep(FOLLOW_POLL).await;
            }
        }
    })
}

/// `TIME  SEQ  SOURCE  KIND  FIELDS` (fields as JSON).
fn text_line(e: &ChainEvent, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "{}  {}  {}  {}  {}",
        rfc3339_us(e.at_us),
        e.seq,
        sanitize(&e.source),
        sanitize(&e.kind),
        sanitize(&e.body)
    )
}

/// The event's fields with `seq`, `at`, `source` and `kind` beside them.
fn json_line(e: &ChainEvent, out: &mut dyn Write) -> std::io::Result<()> {
    let mut line = match serde_json::from_str::<serde_json::Value>(&e.body) {
        Ok(serde_json::Value::Object(fields)) => fields,
        _ => serde_json::Map::from_iter([("body".to_owned(), e.body.clone().into())]),
    };
    line.insert("seq".into(), e.seq.into());
    line.insert("at".into(), rfc3339_us(e.at_us).into());
    line.insert("source".into(), e.source.clone().into());
    line.insert("kind".into(), e.kind.clone().into());
    serde_json::to_writer(&mut *out, &line)?;
    writeln!(out)
}
