//! The keyboard side of observation: which typed bytes open a line, end it
//! (Enter) or abandon it (^C, ^D), and the last character typed on it.
//!
//! Invariant: escape sequences (arrow keys, function keys, Alt-x) are
//! recognised as keys, never read as the characters they are made of, so
//! recalling a line with Up leaves no typed character to expect.

/// What one typed byte means for the line being typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Typed {
    /// A key that edits the line (a character, Tab, Backspace, an arrow).
    Activity,
    /// Enter: the line is sent; `last` is its last typed character.
    Enter { last: Option<char> },
    /// ^C or ^D: the line is abandoned.
    Cancel,
    /// The middle of an escape sequence.
    Nothing,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Escape {
    #[default]
    None,
    /// After ESC.
    Started,
    /// After `ESC [`: parameters until a final byte.
    Csi,
    /// After `ESC O`: one more byte.
    Ss3,
}

#[derive(Debug, Default)]
pub struct Typing {
    escape: Escape,
    /// The last plain character typed on the current line.
    last: Option<char>,
}

impl Typing {
    pub fn key(&mut self, byte: u8) -> Typed {
        match self.escape {
            Escape::Started => {
                self.escape = match byte {
                    b'[' => Escape::Csi,
                    b'O' => Escape::Ss3,
                    _ => Escape::None,
                };
                return Typed::Nothing;
            }
            Escape::Csi => {
                if (0x40..=0x7e).contains(&byte) {
                    self.escape = Escape::None;
                }
                return Typed::Nothing;
            }
            Escape::Ss3 => {
                self.escape = Escape::None;
                return Typed::Nothing;
            }
            Escape::None => {}
        }
        match byte {
            b'\r' | b'\n' => Typed::Enter {
                last: self.last.take(),
            },
            0x03 | 0x04 => {
                self.last = None;
                Typed::Cancel
            }
            0x1b => {
                self.escape = Escape::Started;
                Typed::Activity
            }
            0x21..=0x7e => {
                self.last = Some(char::from(byte));
                Typed::Activity
            }
            _ => Typed::Activity,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(bytes: &[u8]) -> Vec<Typed> {
        let mut t = Typing::default();
        bytes.iter().map(|&b| t.key(b)).collect()
    }

    #[test]
    fn enter_reports_the_last_character_typed() {
        let typed = keys(b"ls -l\r");
        assert_eq!(typed.last(), Some(&Typed::Enter { last: Some('l') }));
    }

    #[test]
    fn arrow_keys_are_not_characters() {
        let typed = keys(b"\x1b[A\x1bOB\r");
        assert_eq!(typed.last(), Some(&Typed::Enter { last: None }));
        assert_eq!(typed[0], Typed::Activity);
    }

    #[test]
    fn cancel_forgets_the_line() {
        let typed = keys(b"abc\x03\r");
        assert_eq!(typed[3], Typed::Cancel);
        assert_eq!(typed[4], Typed::Enter { last: None });
    }
}
