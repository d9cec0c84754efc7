//! Observed command lines: what an interactive shell's screen showed on the
//! line where Enter was typed, reconstructed with a terminal emulator.
//!
//! Invariant: observation is best effort and never affects the proxy: it
//! holds a bounded screen (at most [`MAX_COLS`] x [`MAX_ROWS`]), returns
//! lines of at most [`MAX_LINE_CHARS`] characters, and a panic inside the
//! emulator switches observation off instead of ending the session. The
//! authoritative record is the stream bytes; these lines are marked
//! `command.observed`.
//!
//! Why the screen and not the typed bytes: line editing, history recall and
//! tab completion happen on the target, so only the echoed line shows what
//! the shell received. The line is read when the echo of Enter (the first
//! line feed in the output after Enter) arrives, not when Enter is typed,
//! because keys typed in one burst arrive before their echo.

use std::panic::{catch_unwind, AssertUnwindSafe};

use vt100::{Callbacks, Parser};

/// Bounds of the emulated screen, whatever size the client claims.
pub const MAX_COLS: u16 = 500;
pub const MAX_ROWS: u16 = 200;
/// Longest observed line kept.
pub const MAX_LINE_CHARS: usize = 4096;
/// Enters typed ahead of their echo that are still matched to lines.
const MAX_PENDING: usize = 16;

/// Counts rows scrolled off the top, so a line start stays on its text.
#[derive(Default)]
struct Scrolls(u32);

impl Callbacks for Scrolls {
    fn on_scroll(&mut self, _row: vt100::capture::RowContents<'_>, _alternate: bool) {
        self.0 = self.0.saturating_add(1);
    }
}

/// The terminal emulator fed with a shell's output and the input's Enters.
pub struct Observer {
    /// `None` once the emulator panicked: observation is off.
    parser: Option<Parser<Scrolls>>,
    /// Where the cursor was when the current line's first key arrived, and
    /// the scroll count then.
    start: Option<(u16, u16, u32)>,
    /// Enters typed whose echo has not arrived yet.
    pending: usize,
}

fn clamp(value: u32, max: u16) -> std::num::NonZeroU16 {
    let clamped = u16::try_from(value).unwrap_or(max).clamp(1, max);
    std::num::NonZeroU16::new(clamped).unwrap_or(std::num::NonZeroU16::MIN)
}

impl Observer {
    pub fn new(cols: u32, rows: u32) -> Observer {
        let parser = Parser::new_with_callbacks(
            clamp(rows, MAX_ROWS),
            clamp(cols, MAX_COLS),
            0,
            Scrolls::default(),
        );
        Observer {
            parser: Some(parser),
            start: None,
            pending: 0,
        }
    }

    /// The terminal changed size: positions taken before no longer hold.
    pub fn resize(&mut self, cols: u32, rows: u32) {
        self.guarded(|parser| parser.set_size(clamp(rows, MAX_ROWS), clamp(cols, MAX_COLS)));
        self.start = None;
    }

    /// Bytes the client typed.
    pub fn input(&mut self, data: &[u8]) {
        for &byte in data {
            match byte {
                b'\r' | b'\n' => {
                    // Enter on an empty prompt is not a command.
                    if self.start.is_some() || self.pending > 0 {
                        self.pending = (self.pending + 1).min(MAX_PENDING);
                    }
                }
                // ^C / ^D abandon the line being edited (not one already sent).
                0x03 | 0x04 if self.pending == 0 => self.start = None,
                _ if self.start.is_none() && self.pending == 0 => self.start = self.cursor(),
                _ => {}
            }
        }
    }

    /// Bytes the target wrote; returns the command lines they completed.
    pub fn output(&mut self, data: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        let mut rest = data;
        while self.pending > 0 {
            let Some(lf) = rest.iter().position(|&b| b == b'\n') else {
                break;
            };
            self.process(&rest[..lf]);
            self.pending -= 1;
            if let Some(line) = self.take_line() {
                lines.push(line);
            }
            self.process(&rest[lf..=lf]);
            rest = &rest[lf + 1..];
        }
        self.process(rest);
        lines
    }

    fn process(&mut self, bytes: &[u8]) {
        if !bytes.is_empty() {
            self.guarded(|parser| parser.process(bytes));
        }
    }

    /// The cursor position and scroll count, for a line that starts now.
    fn cursor(&mut self) -> Option<(u16, u16, u32)> {
        let parser = self.parser.as_ref()?;
        let (row, col) = parser.screen().cursor_position();
        Some((row, col, parser.callbacks().0))
    }

    /// The text from the line's start to the end of the cursor's row. A
    /// line typed ahead has no known start: its whole row is taken.
    fn take_line(&mut self) -> Option<String> {
        let start = self.start.take();
        let parser = self.parser.as_ref()?;
        let screen = parser.screen();
        if screen.alternate_screen() {
            // A full-screen program (an editor, a pager): Enter is not a command.
            return None;
        }
        let (rows, cols) = screen.size();
        let (row, _) = screen.cursor_position();
        let scrolled_now = parser.callbacks().0;
        let (start_row, start_col) = match start {
            Some((r, c, scrolled)) => {
                let moved = scrolled_now.saturating_sub(scrolled);
                match u32::from(r).checked_sub(moved) {
                    Some(r) => (u16::try_from(r).unwrap_or(0), c),
                    // The start scrolled off the screen: keep what is left.
                    None => (0, 0),
                }
            }
            None => (row, 0),
        };
        if start_row >= rows.get() || start_col >= cols.get() || start_row > row {
            return None;
        }
        let text = catch_unwind(AssertUnwindSafe(|| {
            screen.contents_between(start_row, start_col, row, cols.get())
        }))
        .ok()?;
        let line: String = text
            .split('\n')
            .map(str::trim_end)
            .collect::<Vec<_>>()
            .join(" ")
            .trim()
            .chars()
            .take(MAX_LINE_CHARS)
            .collect();
        (!line.is_empty()).then_some(line)
    }

    /// Runs `f` on the emulator; a panic turns observation off for good.
    fn guarded(&mut self, f: impl FnOnce(&mut Parser<Scrolls>)) {
        if let Some(parser) = self.parser.as_mut() {
            if catch_unwind(AssertUnwindSafe(|| f(parser))).is_err() {
                tracing::warn!(
                    "terminal emulator failed; observed commands are off for this channel"
                );
                self.parser = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shell that echoes keys as typed, then runs the line on Enter.
    fn session(steps: &[(&str, &str)]) -> Vec<String> {
        let mut o = Observer::new(80, 24);
        let mut lines = Vec::new();
        for (input, output) in steps {
            o.input(input.as_bytes());
            lines.extend(o.output(output.as_bytes()));
        }
        lines
    }

    #[test]
    fn a_typed_line_is_observed_without_its_prompt() {
        let lines = session(&[
            ("", "user@web1:~$ "),
            ("l", "l"),
            ("s", "s"),
            ("\r", "\r\nfile\r\nuser@web1:~$ "),
        ]);
        assert_eq!(lines, ["ls"]);
    }

    #[test]
    fn a_line_sent_in_one_burst_is_read_when_its_echo_arrives() {
        let lines = session(&[("", "$ "), ("echo hi\r", ""), ("", "echo hi\r\nhi\r\n$ ")]);
        assert_eq!(lines, ["echo hi"]);
    }

    #[test]
    fn editing_shows_the_final_line() {
        // "echo tyop", two backspaces (the shell echoes "\b \b"), then "po".
        let lines = session(&[
            ("", "$ "),
            ("echo tyop", "echo tyop"),
            ("\x7f\x7f", "\x08 \x08\x08 \x08"),
            ("po", "po"),
            ("\r", "\r\n$ "),
        ]);
        assert_eq!(lines, ["echo typo"]);
    }

    #[test]
    fn empty_lines_interrupted_lines_and_unechoed_input_are_not_commands() {
        let lines = session(&[
            ("", "$ "),
            ("\r", "\r\n$ "),
            ("abc", "abc"),
            ("\x03", "^C\r\n$ "),
            ("secret\r", "\r\n$ "),
        ]);
        // The password-like line was not echoed: the screen shows nothing.
        assert_eq!(lines, Vec::<String>::new());
    }

    #[test]
    fn full_screen_programs_are_not_observed() {
        let lines = session(&[("", "$ "), ("x", "\x1b[?1049hx"), ("\r", "\r\n")]);
        assert!(lines.is_empty(), "{lines:?}");
    }

    #[test]
    fn a_long_line_wrapping_at_the_bottom_is_whole() {
        let mut o = Observer::new(10, 3);
        o.output(b"a\r\nb\r\n$ ");
        let typed = "echo 0123456789abc";
        o.input(typed.as_bytes());
        o.output(typed.as_bytes());
        o.input(b"\r");
        assert_eq!(o.output(b"\r\n"), [typed]);
    }

    #[test]
    fn absurd_sizes_and_bytes_do_not_panic() {
        let mut o = Observer::new(u32::MAX, 0);
        o.input(b"x\r");
        let noise: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        let _ = o.output(&noise);
        o.resize(0, u32::MAX);
        o.input(b"y\r\r\r");
        let _ = o.output(b"\x1b[999;999H\n\n\n");
    }
}
