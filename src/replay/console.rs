//! The reviewer's terminal during `replay`: raw mode for single keys, a
//! progress line on the bottom row (on stderr), and restoring everything
//! when playback ends.
//!
//! Invariant: a [`Console`] leaves the terminal as it found it when it is
//! dropped, whether playback finished, was stopped with `q`/Ctrl-C, or
//! failed: raw mode off, scroll region reset, and every mode the recording
//! switched on (alternate screen, hidden cursor, mouse reporting, bracketed
//! paste, application keys, colours) switched off again. It knows which by
//! running the played bytes through a terminal emulator of its own.

use std::io::{self, IsTerminal, Stderr, Stdout, Write};
use std::num::NonZeroU16;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use crossterm::terminal;

use super::recording::{crlf, TerminalInfo};

/// The terminal, raw, with the bottom row kept for the progress line.
pub struct Console {
    out: Stdout,
    err: Stderr,
    /// The row of the progress line (1-based), when stderr is the terminal.
    status_row: Option<u16>,
    cols: u16,
    last_status: String,
    /// What the played bytes did to the terminal.
    screen: vt100::Parser,
    /// The session had no PTY: its line feeds need their CR here.
    plain: bool,
    /// The recording's size, if it differs from this terminal's.
    mismatch: Option<(u32, u32)>,
}

fn non_zero(n: u16) -> NonZeroU16 {
    NonZeroU16::new(n).unwrap_or(NonZeroU16::MIN)
}

impl Console {
    pub fn open(recorded: Option<&TerminalInfo>) -> io::Result<Console> {
        let (cols, rows) = terminal::size().unwrap_or((80, 24));
        terminal::enable_raw_mode()?;
        let status_row = (io::stderr().is_terminal() && rows >= 3).then_some(rows);
        let screen_rows = if status_row.is_some() { rows - 1 } else { rows };
        let mut console = Console {
            out: io::stdout(),
            err: io::stderr(),
            status_row,
            cols,
            last_status: String::new(),
            screen: vt100::Parser::new(non_zero(screen_rows), non_zero(cols), 0),
            plain: recorded.is_none(),
            mismatch: None,
        };
        if let Some(t) = recorded {
            console.note_resize(t.cols, t.rows);
        }
        // Start from a clear screen, as the recording did, with the bottom
        // row outside the scroll region so output never scrolls over it.
        write!(console.out, "\x1b[H\x1b[2J")?;
        console.out.flush()?;
        if status_row.is_some() {
            write!(console.err, "\x1b[1;{screen_rows}r\x1b[H")?;
        }
        Ok(console)
    }

    /// Plays output bytes.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        let data = if self.plain {
            crlf(data)
        } else {
            data.to_vec()
        };
        self.screen.process(&data);
        self.out.write_all(&data)?;
        self.out.flush()
    }

    /// The recording's terminal changed size; this one cannot follow, so
    /// the progress line says so when they differ.
    pub fn note_resize(&mut self, cols: u32, rows: u32) {
        let (here_rows, here_cols) = self.screen.screen().size();
        let same = cols == u32::from(here_cols.get()) && rows == u32::from(here_rows.get());
        self.mismatch = (!same).then_some((cols, rows));
    }

    /// Redraws the progress line when its text changed, then puts the
    /// cursor and colours back where the recording had them.
    pub fn status(&mut self, text: &str) {
        let Some(row) = self.status_row else {
            return;
        };
        let mut text = text.to_string();
        if let Some((cols, rows)) = self.mismatch {
            text.push_str(&format!(" (recorded at {cols}x{rows}) "));
        }
        let text: String = text.chars().take(usize::from(self.cols)).collect();
        if text == self.last_status {
            return;
        }
        let screen = self.screen.screen();
        let (cursor_row, cursor_col) = screen.cursor_position();
        let attributes = screen.attributes_formatted();
        let _ = write!(
            self.err,
            "\x1b[{row};1H\x1b[0m\x1b[2K\x1b[7m{text}\x1b[0m\x1b[{};{}H",
            u32::from(cursor_row) + 1,
            u32::from(cursor_col) + 1
        );
        let _ = self.err.write_all(attributes.as_bytes());
        self.last_status = text;
    }

    /// Escape sequences undoing what the recording left switched on.
    fn undo_modes(&self) -> String {
        let screen = self.screen.screen();
        let mut undo = String::from("\x1b[0m");
        if screen.alternate_screen() {
            undo.push_str("\x1b[?1049l");
        }
        if screen.hide_cursor() {
            undo.push_str("\x1b[?25h");
        }
        if screen.bracketed_paste() {
            undo.push_str("\x1b[?2004l");
        }
        if screen.mouse_protocol_mode() != vt100::MouseProtocolMode::None {
            undo.push_str("\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1006l");
        }
        if screen.application_cursor() {
            undo.push_str("\x1b[?1l");
        }
        if screen.application_keypad() {
            undo.push_str("\x1b>");
        }
        undo
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let undo = self.undo_modes();
        let _ = self.out.write_all(undo.as_bytes());
        let _ = self.out.flush();
        match self.status_row {
            // Resetting the scroll region homes the cursor: finish on the
            // emptied bottom row instead.
            Some(row) => {
                let _ = write!(self.err, "\x1b[r\x1b[{row};1H\x1b[2K");
            }
            None => {
                let _ = self.out.write_all(b"\r\n");
            }
        }
        let _ = terminal::disable_raw_mode();
    }
}

/// A thread reading keys while playback runs; `q` or Ctrl-C ask to stop.
pub struct Keys {
    quit: Arc<AtomicBool>,
    done: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Keys {
    pub fn watch() -> Keys {
        let quit = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicBool::new(false));
        let (q, d) = (quit.clone(), done.clone());
        let thread = thread::Builder::new()
            .name("replay-keys".into())
            .spawn(move || {
                while !d.load(Ordering::SeqCst) {
                    match event::poll(Duration::from_millis(50)) {
                        Ok(false) => {}
                        Ok(true) => {
                            if matches!(event::read(), Ok(Event::Key(key)) if is_quit(&key)) {
                                q.store(true, Ordering::SeqCst);
                            }
                        }
                        // No way to read keys: playback runs to its end.
                        Err(_) => return,
                    }
                }
            })
            .ok();
        Keys { quit, done, thread }
    }

    pub fn quit_requested(&self) -> bool {
        self.quit.load(Ordering::SeqCst)
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn is_quit(key: &KeyEvent) -> bool {
    let ctrl_c = key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL);
    key.kind == KeyEventKind::Press
        && (ctrl_c
            || matches!(
                key.code,
                KeyCode::Char('q') | KeyCode::Char('Q') | KeyCode::Esc
            ))
}
