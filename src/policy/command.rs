//! The command an agent sends, read as plain words the way the target's
//! shell would read them, or refused.
//!
//! Words are separated by runs of spaces. A word is either plain text or
//! wholly inside single quotes (`'two words'`, `''`), which every POSIX
//! shell passes on literally. Everything a shell could interpret is refused
//! instead of interpreted: `; & | $ \` ( ) < > #`, backslash, double quotes,
//! any other use of a single quote, globs `* ? [ ] { }`, a `~` the shell
//! would expand (at the start of a word, or right after `=` or `:`), `=` at
//! the start of a word (zsh's `=cmd`), and control characters anywhere.
//! A first word that is an assignment (`NAME=...`, `NAME+=...`) or a shell
//! reserved word is refused too: it would change what runs.
//!
//! Invariant: for every [`CommandLine`], `words()` is exactly the list of
//! words `/bin/sh -c` (dash, and bash) passes to the command it runs, in
//! order, the first one being the command's name. No expansion, globbing,
//! redirection or second command can happen, so a pattern matched against
//! `words()` judges what will really run.

use std::fmt;

/// A command split into the words the target's shell will pass on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    text: String,
    words: Vec<String>,
}

impl CommandLine {
    /// Split `command` into words, or say why its shell would not read it
    /// as plain words.
    pub fn parse(command: &str) -> Result<CommandLine, CommandRefusal> {
        let words = split_words(command, Stars::Refused)?;
        Ok(CommandLine {
            text: command.to_owned(),
            words: words.into_iter().map(|word| word.text).collect(),
        })
    }

    /// The words, quotes removed; never empty.
    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// The command as sent.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// Why a command is refused before any pattern is tried. Worded for the
/// agent's terminal and the audit row: one line, what was found quoted with
/// `{:?}` escaping (long words are cut).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandRefusal {
    Empty,
    /// A character the shell interprets, outside single quotes.
    ShellSyntax(char),
    /// Refused even inside single quotes: a quote protects it from the
    /// shell, not from the terminal showing the audit line, nor from a C
    /// string that a NUL would cut short.
    ControlCharacter(char),
    /// Tilde expansion (`~user/x`, `x=~`, `PATH=a:~`): the word would change.
    Tilde(String),
    /// zsh replaces `=cmd` with the path of `cmd`.
    LeadingEquals(String),
    UnbalancedQuote,
    /// A single quote that does not enclose a whole word (`'a'b`, `a'b'`).
    PartialQuote(String),
    /// `NAME=value cmd` sets the environment of what runs (`LD_PRELOAD=...`).
    Assignment(String),
    /// `if`, `for`, `!`, ...: the command would be a compound command.
    ReservedWord(String),
}

impl CommandRefusal {
    /// The refusal without its subject, e.g. `has shell syntax ';' outside
    /// single quotes`, so a pattern error can say the same of a pattern.
    pub fn detail(&self) -> impl fmt::Display + '_ {
        Detail(self)
    }
}

impl fmt::Display for CommandRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "command {}", self.detail())
    }
}

struct Detail<'a>(&'a CommandRefusal);

impl fmt::Display for Detail<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            CommandRefusal::Empty => write!(f, "is empty"),
            CommandRefusal::ShellSyntax(c) => {
                write!(f, "has shell syntax {c:?} outside single quotes")
            }
            CommandRefusal::ControlCharacter(c) => write!(f, "has a control character {c:?}"),
            CommandRefusal::Tilde(word) => {
                write!(f, "has a word the shell would tilde-expand {word:?}")
            }
            CommandRefusal::LeadingEquals(word) => {
                write!(f, "has a word starting with '=' {word:?}")
            }
            CommandRefusal::UnbalancedQuote => write!(f, "has an unbalanced single quote"),
            CommandRefusal::PartialQuote(word) => write!(
                f,
                "has a single quote that does not enclose a whole word {word:?}"
            ),
            CommandRefusal::Assignment(word) => write!(f, "starts with an assignment {word:?}"),
            CommandRefusal::ReservedWord(word) => {
                write!(f, "starts with the shell reserved word {word:?}")
            }
        }
    }
}

/// One word as read: its literal text and whether it was single-quoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Word {
    pub(super) text: String,
    pub(super) quoted: bool,
}

/// Whether an unquoted `*` is allowed: in a pattern it is the wildcard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stars {
    Allowed,
    Refused,
}

/// Words that start a compound command or change how the rest runs when
/// they come first (POSIX, bash and zsh).
const RESERVED_WORDS: &[&str] = &[
    "!", "if", "then", "else", "elif", "fi", "case", "esac", "for", "select", "while", "until",
    "do", "done", "in", "function", "time", "coproc", "{", "}", "[[", "]]",
];

/// Longest word quoted in a refusal; keeps messages to one terminal line.
const SHOWN_MAX: usize = 64;

/// Split `line` into words; shared by commands and patterns, so that a
/// pattern word and a command word are read by the same rules.
pub(super) fn split_words(line: &str, stars: Stars) -> Result<Vec<Word>, CommandRefusal> {
    if let Some(c) = line.chars().find(is_control) {
        return Err(CommandRefusal::ControlCharacter(c));
    }
    let mut words = Vec::new();
    let mut rest = line.trim_start_matches(' ');
    while !rest.is_empty() {
        let (word, after) = match rest.strip_prefix('\'') {
            Some(inner) => quoted_word(inner)?,
            None => {
                let end = rest.find(' ').unwrap_or(rest.len());
                (plain_word(&rest[..end], stars)?, &rest[end..])
            }
        };
        words.push(word);
        rest = after.trim_start_matches(' ');
    }
    check_first_word(words.first())?;
    Ok(words)
}

/// `inner` follows an opening quote: the word runs to the next quote,
/// which must end the word.
fn quoted_word(inner: &str) -> Result<(Word, &str), CommandRefusal> {
    let close = inner.find('\'').ok_or(CommandRefusal::UnbalancedQuote)?;
    let after = &inner[close + 1..];
    if !after.is_empty() && !after.starts_with(' ') {
        // `'a'b`: show the whole run up to the next space.
        let end = after.find(' ').unwrap_or(after.len());
        let run = format!("'{}'{}", &inner[..close], &after[..end]);
        return Err(CommandRefusal::PartialQuote(shown(&run)));
    }
    let word = Word {
        text: inner[..close].to_owned(),
        quoted: true,
    };
    Ok((word, after))
}

/// An unquoted word: every character must mean itself to the shell.
fn plain_word(word: &str, stars: Stars) -> Result<Word, CommandRefusal> {
    let mut previous = None;
    for c in word.chars() {
        match c {
            '\'' => return Err(CommandRefusal::PartialQuote(shown(word))),
            ';' | '&' | '|' | '$' | '`' | '(' | ')' | '<' | '>' | '#' | '\\' | '"' | '?' | '['
            | ']' | '{' | '}' => return Err(CommandRefusal::ShellSyntax(c)),
            '*' if stars == Stars::Refused => return Err(CommandRefusal::ShellSyntax(c)),
            // bash expands `~` after the first `=` and after `:` in words
            // that look like assignments (`x=~`, `PATH=a:~`); refusing it
            // after any `=` or `:` is simpler and stricter.
            '~' if matches!(previous, None | Some('=' | ':')) => {
                return Err(CommandRefusal::Tilde(shown(word)))
            }
            '=' if previous.is_none() => return Err(CommandRefusal::LeadingEquals(shown(word))),
            _ => {}
        }
        previous = Some(c);
    }
    Ok(Word {
        text: word.to_owned(),
        quoted: false,
    })
}

fn check_first_word(first: Option<&Word>) -> Result<(), CommandRefusal> {
    let Some(first) = first else {
        return Err(CommandRefusal::Empty);
    };
    if !first.quoted && is_assignment(&first.text) {
        return Err(CommandRefusal::Assignment(shown(&first.text)));
    }
    // Quoted or not: no one needs a command named `if`, and refusing both
    // spares the reader the difference.
    if RESERVED_WORDS.contains(&first.text.as_str()) {
        return Err(CommandRefusal::ReservedWord(shown(&first.text)));
    }
    Ok(())
}

/// `NAME=...` or bash's `NAME+=...`, NAME being `[A-Za-z_][A-Za-z0-9_]*`.
fn is_assignment(word: &str) -> bool {
    let Some(equals) = word.find('=') else {
        return false;
    };
    let name = word[..equals].strip_suffix('+').unwrap_or(&word[..equals]);
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// U+0000..U+001F and U+007F (tab, newline and CR included).
fn is_control(c: &char) -> bool {
    c.is_ascii_control()
}

/// A word cut to a length a refusal line can hold.
fn shown(word: &str) -> String {
    match word.char_indices().nth(SHOWN_MAX) {
        Some((at, _)) => format!("{}...", &word[..at]),
        None => word.to_owned(),
    }
}
