//! `export --format asciicast`: asciinema's v2 file format, playable by any
//! standard player (`asciinema play`, `asciinema cat`, the web player).
//!
//! Invariant: the header carries the recorded terminal's width and height
//! (80x24 when the session had none), the session start as `timestamp`,
//! and a title naming the session; then one `[time, code, data]` line per
//! frame in recorded order with non-decreasing times: `"o"` output, `"i"`
//! input, `"r"` resize as `"COLSxROWS"`. Data is text: bytes are decoded
//! as UTF-8 across chunk boundaries, so valid UTF-8 output concatenates
//! back to exactly the recorded bytes; invalid bytes become U+FFFD.

use std::io::{self, Write};

use serde::Serialize;

use super::recording::{crlf, FrameKind, Recording};
use crate::audit::Transcript;

/// The terminal size a session without a PTY is shown in.
const DEFAULT_SIZE: (u32, u32) = (80, 24);

#[derive(Serialize)]
struct Header {
    version: u8,
    width: u32,
    height: u32,
    timestamp: i64,
    title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    env: Option<Env>,
}

#[derive(Serialize)]
struct Env {
    #[serde(rename = "TERM")]
    term: String,
}

pub fn write_asciicast(t: &Transcript, out: &mut dyn Write) -> io::Result<()> {
    let recording = Recording::of(t);
    let (width, height) = recording
        .terminal
        .as_ref()
        .map_or(DEFAULT_SIZE, |t| playable(t.cols, t.rows));
    let s = &t.session;
    let task = s
        .task
        .as_deref()
        .map_or_else(String::new, |task| format!(", task {task}"));
    let header = Header {
        version: 2,
        width,
        height,
        timestamp: s.started_at_us.div_euclid(1_000_000),
        title: format!(
            "portcullis session {}: {} on {}{task}",
            s.id, s.identity, s.target
        ),
        env: recording.terminal.as_ref().map(|t| Env {
            term: t.term.clone(),
        }),
    };
    write_line(out, &header)?;
    // Without a PTY the target's output has bare line feeds: show them as
    // the agent's terminal did.
    let plain = recording.terminal.is_none();
    let (mut output, mut input) = (Utf8Stream::default(), Utf8Stream::default());
    let mut last = 0.0;
    for frame in &recording.frames {
        last = frame.offset_us as f64 / 1e6;
        let (code, text) = match frame.kind {
            FrameKind::Output(data) if plain => ("o", output.push(&crlf(data))),
            FrameKind::Output(data) => ("o", output.push(data)),
            FrameKind::Input(data) => ("i", input.push(data)),
            FrameKind::Resize { cols, rows } => {
                let (cols, rows) = playable(cols, rows);
                ("r", format!("{cols}x{rows}"))
            }
            FrameKind::Marker(line) => ("m", marker_label(line)),
        };
        if !text.is_empty() {
            write_line(out, &(last, code, text))?;
        }
    }
    for (code, stream) in [("o", &mut output), ("i", &mut input)] {
        let rest = stream.finish();
        if !rest.is_empty() {
            write_line(out, &(last, code, rest))?;
        }
    }
    Ok(())
}

/// A size players can render: a client without a terminal of its own
/// (`ssh -tt` from a script) asks for 0x0, which no player draws.
fn playable(cols: u32, rows: u32) -> (u32, u32) {
    match (cols, rows) {
        (0, _) | (_, 0) => DEFAULT_SIZE,
        size => size,
    }
}

/// A marker's label: the observed line with control characters dropped
/// (a player shows it as a tooltip) and cut to a readable length.
fn marker_label(line: &str) -> String {
    const MAX_CHARS: usize = 120;
    let label: String = line
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_CHARS)
        .collect();
    match label.is_empty() {
        true => "(empty line)".to_owned(),
        false => label,
    }
}

fn write_line<T: Serialize>(out: &mut dyn Write, value: &T) -> io::Result<()> {
    serde_json::to_writer(&mut *out, value).map_err(io::Error::other)?;
    out.write_all(b"\n")
}

/// Decodes a byte stream as UTF-8 chunk by chunk, holding back a sequence
/// cut at a chunk's end until the next chunk completes it.
#[derive(Default)]
pub struct Utf8Stream {
    held: Vec<u8>,
}

impl Utf8Stream {
    pub fn push(&mut self, bytes: &[u8]) -> String {
        let mut buf = std::mem::take(&mut self.held);
        buf.extend_from_slice(bytes);
        let mut text = String::with_capacity(buf.len());
        let mut rest: &[u8] = &buf;
        loop {
            match std::str::from_utf8(rest) {
                Ok(valid) => {
                    text.push_str(valid);
                    break;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    text.push_str(&String::from_utf8_lossy(valid));
                    match e.error_len() {
                        Some(bad) => {
                            text.push(char::REPLACEMENT_CHARACTER);
                            rest = after.get(bad..).unwrap_or_default();
                        }
                        None => {
                            // Incomplete at the end: wait for the next chunk.
                            self.held = after.to_vec();
                            break;
                        }
                    }
                }
            }
        }
        text
    }

    /// What is still held, lossily: the stream ended inside a sequence.
    pub fn finish(&mut self) -> String {
        String::from_utf8_lossy(&std::mem::take(&mut self.held)).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::Utf8Stream;

    #[test]
    fn utf8_cut_between_chunks_is_joined() {
        let bytes = "é€😀".as_bytes();
        for cut in 0..=bytes.len() {
            let mut s = Utf8Stream::default();
            let mut text = s.push(&bytes[..cut]);
            text += &s.push(&bytes[cut..]);
            text += &s.finish();
            assert_eq!(text, "é€😀", "cut at {cut}");
        }
    }

    #[test]
    fn invalid_bytes_become_replacement_characters() {
        let mut s = Utf8Stream::default();
        assert_eq!(s.push(b"a\xffb"), "a\u{fffd}b");
        assert_eq!(s.push(b"\xe2\x82"), "");
        assert_eq!(s.finish(), "\u{fffd}");
    }
}
