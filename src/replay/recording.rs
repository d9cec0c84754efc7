//! A session as a terminal recording: its output, input and resizes in the
//! order and at the times they were recorded, and the terminal they were
//! made on. `replay` and `export --format asciicast` both play from this.
//!
//! Invariant: frames keep the chain order of the transcript, their offsets
//! never decrease (rows are timestamped by concurrent tasks, so a later row
//! can carry an earlier microsecond: it is played at its predecessor's
//! time), and output is stdout and stderr together, as a terminal shows it.

use crate::audit::{Entry, Event, Stream, Transcript};

/// What the terminal showed or was sent at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind<'t> {
    /// Bytes from the target (stdout or stderr).
    Output(&'t [u8]),
    /// Bytes the client typed.
    Input(&'t [u8]),
    /// The terminal changed size.
    Resize { cols: u32, rows: u32 },
    /// A command line was observed on the screen (`command.observed`): a
    /// place to jump to, not something the terminal showed.
    Marker(&'t str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'t> {
    /// Microseconds since the session started.
    pub offset_us: i64,
    pub kind: FrameKind<'t>,
}

/// The terminal a session was recorded on, if it had one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminalInfo {
    pub term: String,
    pub cols: u32,
    pub rows: u32,
}

#[derive(Debug, Clone)]
pub struct Recording<'t> {
    pub start_us: i64,
    /// The terminal at the first frame (later changes are `Resize` frames);
    /// `None` for a session without a PTY (plain exec).
    pub terminal: Option<TerminalInfo>,
    pub frames: Vec<Frame<'t>>,
}

impl<'t> Recording<'t> {
    pub fn of(t: &'t Transcript) -> Recording<'t> {
        let start_us = t.session.started_at_us;
        let mut terminal: Option<TerminalInfo> = None;
        let mut frames: Vec<Frame<'t>> = Vec::new();
        let mut last = 0;
        for e in &t.events {
            let kind = match &e.entry {
                Entry::Data { stream, data } => match stream {
                    Stream::Stdin => FrameKind::Input(data),
                    Stream::Stdout | Stream::Stderr => FrameKind::Output(data),
                },
                Entry::Event(Event::PtyAllowed { term, cols, rows }) if frames.is_empty() => {
                    terminal = Some(TerminalInfo {
                        term: term.clone(),
                        cols: *cols,
                        rows: *rows,
                    });
                    continue;
                }
                Entry::Event(Event::PtyResize { cols, rows }) if frames.is_empty() => {
                    if let Some(t) = &mut terminal {
                        (t.cols, t.rows) = (*cols, *rows);
                    }
                    continue;
                }
                Entry::Event(
                    Event::PtyAllowed { cols, rows, .. } | Event::PtyResize { cols, rows },
                ) => FrameKind::Resize {
                    cols: *cols,
                    rows: *rows,
                },
                Entry::Event(Event::CommandObserved { line }) => FrameKind::Marker(line),
                _ => continue,
            };
            last = e.at_us.saturating_sub(start_us).max(last);
            frames.push(Frame {
                offset_us: last,
                kind,
            });
        }
        Recording {
            start_us,
            terminal,
            frames,
        }
    }

    /// Every output byte, in order.
    pub fn output(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for frame in &self.frames {
            if let FrameKind::Output(data) = frame.kind {
                out.extend_from_slice(data);
            }
        }
        out
    }
}

/// Output recorded without a terminal has bare line feeds; a terminal
/// would have shown each as CR LF (the target's PTY adds the CR).
pub fn crlf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 16);
    let mut prev = 0u8;
    for &b in data {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}
