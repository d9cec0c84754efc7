//! A session's page: the player, the observed commands, the downloads,
//! the chain status (or the archive's seal), the transcript, the live
//! view, who viewed it. Every recorded value goes through [`escape`].

use std::fmt::Write;

use super::{Origin, Read};
use crate::audit::{Entry, Event, Transcript};
use crate::clock::rfc3339_us;
use crate::replay::{self, recording::Recording};
use crate::web::html::{escape, page};

/// The observed command lines, in order: (seconds from the start, line).
fn observed(t: &Transcript) -> Vec<(f64, &str)> {
    let start = t.session.started_at_us;
    t.events
        .iter()
        .filter_map(|e| match &e.entry {
            Entry::Event(Event::CommandObserved { line }) => {
                Some((e.at_us.saturating_sub(start) as f64 / 1e6, line.as_str()))
            }
            _ => None,
        })
        .collect()
}

/// One session: a player and its observed commands when it had a
/// terminal, the downloads, the chain status, the transcript as
/// `portcullis show` prints it (escaped), the live view while it is open,
/// and who has read it. The page's script (`/assets/session.js`) reads
/// only the `data-` attributes set here; without it the page still reads.
/// Another replica's session is ended (only ended ones are archived) and
/// its chain status is its seal, checked as it was read.
pub(super) fn session_page(
    who: (&str, &str),
    read: &Read,
    transcript: &str,
    origin: Origin<'_>,
) -> String {
    let t = &read.transcript;
    let id = t.session.id.0;
    let path = origin.path(id);
    let open = t.session.ended_at_us.is_none() && matches!(origin, Origin::Local);
    let (title, heading) = match origin {
        Origin::Local => (format!("session {id}"), format!("Session {id}")),
        Origin::Replica(name) => (
            format!("session {id} of replica {name}"),
            format!("Session {id} of replica {}", escape(name)),
        ),
    };
    let mut body = format!(
        "<h1>{heading}</h1><p class=\"state\" id=\"state\">{}</p>",
        match open {
            true => "open: following as it is recorded",
            false => "ended",
        }
    );
    if Recording::of(t).terminal.is_some() {
        let _ = write!(
            body,
            "<h2>Terminal</h2><link rel=\"stylesheet\" href=\"/assets/asciinema-player.css\"><div id=\"player\" data-cast=\"{path}/asciicast\"></div>"
        );
        let marks = observed(t);
        if !marks.is_empty() {
            body.push_str(
                "<h3>Observed commands</h3><p class=\"note\">read off the screen on Enter; \
                 best effort, not authoritative</p><ol id=\"markers\">",
            );
            for (index, (at, line)) in marks.iter().enumerate() {
                let _ = write!(
                    body,
                    "<li><button type=\"button\" data-marker=\"{index}\">+{at:.1}s</button> \
                     <code>{}</code></li>",
                    escape(&replay::sanitize(line))
                );
            }
            body.push_str("</ol>");
        }
    }
    let _ = write!(
        body,
        "<p class=\"downloads\">download: <a href=\"{path}/asciicast\" download>asciicast</a> \
         <a href=\"{path}/transcript.json\" download>JSON transcript</a></p>"
    );
    match origin {
        Origin::Local => {
            let _ = write!(
                body,
                "<p id=\"chain\" data-src=\"/api/sessions/{id}/verify\">chain: \
                 <a href=\"/api/sessions/{id}/verify\">verify this session's rows</a></p>"
            );
        }
        Origin::Replica(name) => {
            let _ = write!(
                body,
                "<p id=\"seal\">read from the archive: the object matches its seal \
                 chained in the cluster (replica {}'s own chain is verified there)</p>",
                escape(name)
            );
        }
    }
    let _ = write!(
        body,
        "<h2>Transcript</h2><pre id=\"transcript\">{}</pre>",
        escape(transcript)
    );
    if open {
        let last = t.events.last().map_or(0, |e| e.seq);
        let _ = write!(
            body,
            "<h2>Live</h2><pre id=\"live\" data-src=\"/sessions/{id}/live?after={last}\"></pre>"
        );
    }
    body.push_str("<h2>Viewed by</h2><ul id=\"viewers\">");
    for (identity, at_us, form) in &read.viewers {
        let how = match form.is_empty() {
            true => String::new(),
            false => format!(" ({})", escape(form)),
        };
        let _ = write!(
            body,
            "<li>viewed by {} at {}{how}</li>",
            escape(identity),
            rfc3339_us(*at_us)
        );
    }
    body.push_str(
        "</ul><script src=\"/assets/asciinema-player.min.js\"></script>\
                   <script src=\"/assets/session.js\"></script>",
    );
    page(&title, Some(who), &body)
}
