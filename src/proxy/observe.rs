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
//! because keys typed in one burst arrive before their echo. Keys typed
//! before the prompt (an agent often sends its first line at once) are
//! echoed after unrelated output such as `Last login: ...`: a line is only
//! taken if it shows the last character typed on it, else the next line
//! of output is tried, a few times at most.

mod typing;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};

use typing::{Typed, Typing};
use vt100::{Callbacks, Parser};

/// Bounds of the emulated screen, whatever size the client claims.
pub const MAX_COLS: u16 = 500;
pub const MAX_ROWS: u16 = 200;
/// Longest observed line kept.
pub const MAX_LINE_CHARS: usize = 4096;
/// Enters typed ahead of their echo that are still matched to lines.
const MAX_PENDING: usize = 16;
/// Lines of output tried for one Enter before it is given up.
const MAX_MISSES: u8 = 3;

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
    /// Enters typed whose echo has not arrived yet, oldest first.
    pending: VecDeque<Pending>,
    typing: Typing,
}

/// An Enter waiting for its echo.
struct Pending {
    /// The last character typed on its line: the echoed line must show it.
    last: Option<char>,
    misses: u8,
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
            pending: VecDeque::new(),
            typing: Typing::default(),
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
            match self.typing.key(byte) {
                Typed::Activity if self.start.is_none() && self.pending.is_empty() => {
                    self.start = self.cursor();
                }
                // Enter on an empty prompt is not a command.
                Typed::Enter { last }
                    if (self.start.is_some() || !self.pending.is_empty())
                        && self.pending.len() < MAX_PENDING =>
                {
                    self.pending.push_back(Pending { last, misses: 0 });
                }
                // ^C / ^D abandon the line being edited (not one already sent).
                Typed::Cancel if self.pending.is_empty() => self.start = None,
                _ => {}
            }
        }
    }

    /// Bytes the target wrote; returns the command lines they completed.
    pub fn output(&mut self, data: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        let mut rest = data;
        while !self.pending.is_empty() {
            let Some(lf) = rest.iter().position(|&b| b == b'\n') else {
                break;
            };
            self.process(&rest[..lf]);
            if let Some(line) = self.match_line() {
                lines.push(line);
            }
            self.process(&rest[lf..=lf]);
            rest = &rest[lf + 1..];
            // A line typed ahead starts where the next row does.
            self.start = match self.pending.is_empty() {
                true => None,
                false => self.cursor().map(|(row, _, scrolls)| (row, 0, scrolls)),
            };
        }
        self.process(rest);
        lines
    }

    /// Decides whether the row being ended is the oldest pending Enter's
    /// echo: yes if it shows that line's last character; an empty row is
    /// input the terminal did not echo (a password) and ends it unseen.
    fn match_line(&mut self) -> Option<String> {
        let text = self.read_line();
        let pending = self.pending.front_mut()?;
        match text {
            None => {
                self.pending.pop_front();
                None
            }
            Some(text) if pending.last.is_none_or(|c| text.contains(c)) => {
                self.pending.pop_front();
                Some(text)
            }
            Some(_) => {
                pending.misses += 1;
                if pending.misses >= MAX_MISSES {
                    self.pending.pop_front();
                }
                None
            }
        }
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

    /// The text from the line's start to the end of the cursor's row.
    fn read_line(&self) -> Option<String> {
        let start = self.start;
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
        let joined = text
            .split('\n')
            .map(str::trim_end)
            .collect::<Vec<_>>()
            .join(" ");
        let mut line = joined.trim();
        if start_col == 0 {
            line = strip_prompt(line);
        }
        let line: String = line.chars().take(MAX_LINE_CHARS).collect();
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

/// A line read from the start of its row (typed before the prompt was
/// drawn) may begin with the prompt the shell then drew: `root@web1:~# `,
/// `user@host:~$ `, `$ `. A first `$`, `#`, `%` or `>` followed by a space,
/// with no blank before it, ends such a prompt; `echo a # b` keeps its `#`.
pub(crate) fn strip_prompt(line: &str) -> &str {
    let Some(end) = line.find(['$', '#', '%', '>']) else {
        return line;
    };
    let (prompt, rest) = line.split_at(end + 1);
    match rest.strip_prefix(' ') {
        Some(command) if !prompt.contains(char::is_whitespace) => command.trim_start(),
        _ => line,
    }
}
