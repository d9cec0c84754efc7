//! The command lines observed in a session's terminal, as `show` lists
//! them after the events.
//!
//! Invariant: the list is labelled for what it is, a best-effort reading
//! of the screen (`command.observed`), not the authoritative record; like
//! all `show` output, every line is escaped by [`sanitize`].

use std::io::{self, Write};

use super::show::{offset_label, sanitize};
use crate::audit::{Entry, Event, Transcript};

pub fn write_observed(t: &Transcript, out: &mut dyn Write) -> io::Result<()> {
    let observed: Vec<(i64, Option<u32>, &str)> = t
        .events
        .iter()
        .filter_map(|e| match &e.entry {
            Entry::Event(Event::CommandObserved { line }) => {
                Some((e.at_us, e.channel, line.as_str()))
            }
            _ => None,
        })
        .collect();
    if observed.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    writeln!(
        out,
        "observed commands (read off the terminal screen on Enter; best effort, not authoritative):"
    )?;
    for (at_us, channel, line) in observed {
        let offset = offset_label(at_us.saturating_sub(t.session.started_at_us));
        let channel = channel.map_or_else(String::new, |ch| format!(" [ch {ch}]"));
        writeln!(out, "  {offset}{channel} {}", sanitize(line))?;
    }
    Ok(())
}
