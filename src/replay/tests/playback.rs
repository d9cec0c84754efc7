//! Playback from a recorded shell: the recording's frames and terminal, the
//! asciicast lines, the replay schedule.

use std::time::Duration;

use serde_json::Value;

use super::{row, session};
use crate::audit::{Entry, Event, Stream, Transcript};
use crate::replay::recording::{FrameKind, Recording};
use crate::replay::{schedule, write_export, ExportFormat};

fn data(stream: Stream, bytes: &[u8]) -> Entry {
    Entry::Data {
        stream,
        data: bytes.to_vec(),
    }
}

/// A shell: terminal 80x24, resized to 100x30 before any byte (so that is
/// the starting size), a prompt, "é" cut across two chunks, a late resize,
/// and a 10 s pause.
fn shell() -> Transcript {
    let pty = Event::PtyAllowed {
        term: "xterm".into(),
        cols: 80,
        rows: 24,
    };
    Transcript {
        session: session(true),
        events: vec![
            row(5, 1_000, Some(0), Entry::Event(pty)),
            row(
                6,
                2_000,
                Some(0),
                Entry::Event(Event::PtyResize {
                    cols: 100,
                    rows: 30,
                }),
            ),
            row(
                7,
                3_000,
                Some(0),
                Entry::Event(Event::ShellAllowed { pty: true }),
            ),
            row(8, 100_000, Some(0), data(Stream::Stdout, b"$ ")),
            row(9, 200_000, Some(0), data(Stream::Stdin, b"x\r")),
            row(10, 300_000, Some(0), data(Stream::Stdout, b"caf\xc3")),
            // Stamped a little earlier than its predecessor by another task.
            row(11, 299_000, Some(0), data(Stream::Stdout, b"\xa9\r\n")),
            row(
                12,
                400_000,
                Some(0),
                Entry::Event(Event::PtyResize {
                    cols: 120,
                    rows: 40,
                }),
            ),
            row(13, 10_400_000, Some(0), data(Stream::Stdout, b"bye\r\n")),
        ],
    }
}

#[test]
fn the_recording_starts_at_the_size_before_the_first_byte_and_never_goes_back() {
    let t = shell();
    let r = Recording::of(&t);
    let terminal = r.terminal.clone().unwrap();
    assert_eq!(
        (terminal.term.as_str(), terminal.cols, terminal.rows),
        ("xterm", 100, 30)
    );
    let offsets: Vec<i64> = r.frames.iter().map(|f| f.offset_us).collect();
    assert_eq!(
        offsets,
        [100_000, 200_000, 300_000, 300_000, 400_000, 10_400_000]
    );
    assert_eq!(
        r.frames[4].kind,
        FrameKind::Resize {
            cols: 120,
            rows: 40
        }
    );
    assert_eq!(r.output(), "$ café\r\nbye\r\n".as_bytes());
}

#[test]
fn asciicast_has_the_header_then_output_input_and_resizes() {
    let mut out = Vec::new();
    write_export(&shell(), ExportFormat::Asciicast, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let header = &lines[0];
    assert_eq!(header["version"], 2);
    assert_eq!(
        (header["width"].as_u64(), header["height"].as_u64()),
        (Some(100), Some(30))
    );
    assert_eq!(header["timestamp"], 1_795_851_600);
    assert_eq!(header["env"]["TERM"], "xterm");
    let events: Vec<(f64, &str, &str)> = lines[1..]
        .iter()
        .map(|e| {
            (
                e[0].as_f64().unwrap(),
                e[1].as_str().unwrap(),
                e[2].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            (0.1, "o", "$ "),
            (0.2, "i", "x\r"),
            (0.3, "o", "caf"),
            (0.3, "o", "é\r\n"),
            (0.4, "r", "120x40"),
            (10.4, "o", "bye\r\n"),
        ]
    );
}

#[test]
fn the_schedule_cuts_pauses_then_applies_the_speed() {
    let t = shell();
    let r = Recording::of(&t);
    let steps = schedule(&r, 2.0, 1.0);
    let at: Vec<Duration> = steps.iter().map(|s| s.at).collect();
    // Input is not played; the 10 s pause is cut to 1 s; all halved.
    assert_eq!(at.len(), 5);
    assert_eq!(at[0], Duration::from_millis(50));
    assert_eq!(at[1], Duration::from_millis(150));
    assert_eq!(at[4], Duration::from_millis(700));
}

#[test]
fn the_json_export_carries_exact_bytes() {
    let mut out = Vec::new();
    write_export(&shell(), ExportFormat::Json, &mut out).unwrap();
    let export: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(export["format"], "portcullis-transcript");
    assert_eq!(export["terminal"]["cols"], 100);
    let cut = export["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["seq"] == 10)
        .unwrap();
    assert_eq!(cut["base64"], "Y2Fmww==", "{cut}");
    assert_eq!(cut["text"], "caf\u{fffd}");
}

/// `ssh -tt` from a script: the client has no terminal and asks for 0x0.
#[test]
fn a_terminal_of_no_size_exports_as_80x24() {
    let pty = Event::PtyAllowed {
        term: "xterm".into(),
        cols: 0,
        rows: 0,
    };
    let t = Transcript {
        session: session(true),
        events: vec![
            row(5, 1_000, Some(0), Entry::Event(pty)),
            row(
                6,
                2_000,
                Some(0),
                Entry::Event(Event::ShellAllowed { pty: true }),
            ),
            row(7, 100_000, Some(0), data(Stream::Stdout, b"$ ")),
            row(
                8,
                200_000,
                Some(0),
                Entry::Event(Event::PtyResize { cols: 0, rows: 0 }),
            ),
        ],
    };
    let mut out = Vec::new();
    if let Err(e) = write_export(&t, ExportFormat::Asciicast, &mut out) {
        panic!("{e}");
    }
    let text = String::from_utf8_lossy(&out);
    let mut lines = text.lines();
    let header: Value = serde_json::from_str(lines.next().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(
        (header["width"].as_u64(), header["height"].as_u64()),
        (Some(80), Some(24))
    );
    assert!(
        !text.contains("\"0x0\""),
        "a resize to no size is not one players can follow: {text}"
    );
}
