//! Command patterns: which commands a role or a certificate may run.
//!
//! A pattern is a list of words, read by the same rules as a command
//! ([`CommandLine`]): a word matches one command word. A word without `*`
//! (or wholly single-quoted) must equal it; in an unquoted word each `*`
//! matches any run of characters within that one word; a final unquoted
//! `...` matches any number of further words. The lone pattern `*` allows
//! any command at all, shell syntax included.
//!
//! Invariant: apart from the lone `*`, a pattern only ever judges a
//! [`CommandLine`], whose words are exactly what the target's shell passes
//! on, so a star can never stand for a second command, a redirection or an
//! expansion. A star word with a `/` never matches a word with a `..`
//! component, so `/var/log/nginx/*` cannot climb out of its directory.
//! Matching is iterative: for a given pattern its time grows linearly with
//! the command's length.

use std::fmt;

use crate::policy::command::{split_words, CommandLine, CommandRefusal, Stars, Word};
use crate::policy::star::star_matches;

/// The unquoted last word that matches any number of further words.
const ELLIPSIS: &str = "...";

/// Why a pattern string was rejected; one line, the pattern quoted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// It could only match the empty command, never what an operator means.
    #[error("command pattern {0:?} is empty")]
    Empty(String),
    /// Shell syntax that no command this pattern judges can carry.
    #[error("command pattern {pattern:?} {}", .problem.detail())]
    Syntax {
        pattern: String,
        problem: CommandRefusal,
    },
    #[error("command pattern {0:?} has \"...\" before its last word")]
    EllipsisNotLast(String),
}

/// One parsed command pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandPattern {
    source: String,
    shape: Shape,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Shape {
    /// The lone `*`: any command at all.
    Any,
    /// One pattern word per command word; with `more`, any further words.
    Words { words: Vec<PatternWord>, more: bool },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PatternWord {
    /// Must equal the command word.
    Literal(String),
    /// Has an unquoted `*`; `path`: it also has a `/`, so the command word
    /// may not have a `..` component.
    Glob { glob: String, path: bool },
}

impl CommandPattern {
    /// Parse a pattern as written in the policy or in `exec@portcullis`.
    pub fn parse(source: &str) -> Result<CommandPattern, PatternError> {
        if source == "*" {
            return Ok(CommandPattern {
                source: source.to_owned(),
                shape: Shape::Any,
            });
        }
        let words = split_words(source, Stars::Allowed).map_err(|problem| match problem {
            CommandRefusal::Empty => PatternError::Empty(source.to_owned()),
            problem => PatternError::Syntax {
                pattern: source.to_owned(),
                problem,
            },
        })?;
        let mut words = words.as_slice();
        let more = match words.split_last() {
            Some((last, rest)) if is_ellipsis(last) => {
                words = rest;
                true
            }
            _ => false,
        };
        if words.iter().any(is_ellipsis) {
            return Err(PatternError::EllipsisNotLast(source.to_owned()));
        }
        let words = words.iter().map(PatternWord::new).collect();
        Ok(CommandPattern {
            source: source.to_owned(),
            shape: Shape::Words { words, more },
        })
    }

    /// The pattern as the operator wrote it.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// True when this is the lone `*`, which allows any command.
    pub fn is_unrestricted(&self) -> bool {
        self.shape == Shape::Any
    }

    /// True when the pattern matches exactly one list of words: no star
    /// word and no final `...` (the lone `*` is not literal).
    pub fn is_literal(&self) -> bool {
        match &self.shape {
            Shape::Any => false,
            Shape::Words { words, more } => {
                !more && words.iter().all(|w| matches!(w, PatternWord::Literal(_)))
            }
        }
    }

    /// Does the command match? The lone `*` matches every command; callers
    /// that hold an unparseable command ask [`Self::is_unrestricted`].
    pub fn matches(&self, command: &CommandLine) -> bool {
        let (words, more) = match &self.shape {
            Shape::Any => return true,
            Shape::Words { words, more } => (words, *more),
        };
        let command = command.words();
        let counts_fit = if more {
            command.len() >= words.len()
        } else {
            command.len() == words.len()
        };
        // zip stops at the pattern's last word; further command words are
        // the ones `...` took.
        counts_fit && words.iter().zip(command).all(|(p, w)| p.matches(w))
    }
}

impl fmt::Display for CommandPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn is_ellipsis(word: &Word) -> bool {
    !word.quoted && word.text == ELLIPSIS
}

impl PatternWord {
    fn new(word: &Word) -> PatternWord {
        if word.quoted || !word.text.contains('*') {
            return PatternWord::Literal(word.text.clone());
        }
        PatternWord::Glob {
            glob: word.text.clone(),
            path: word.text.contains('/'),
        }
    }

    fn matches(&self, word: &str) -> bool {
        match self {
            PatternWord::Literal(text) => text == word,
            PatternWord::Glob { glob, path } => {
                star_matches(glob.as_bytes(), word.as_bytes(), |a, b| a == b)
                    && !(*path && word.split('/').any(|part| part == ".."))
            }
        }
    }
}

/// The exec patterns of a role, a ceiling or a certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatternSet {
    patterns: Vec<CommandPattern>,
}

impl PatternSet {
    /// A set with no patterns: it matches nothing.
    pub fn new() -> PatternSet {
        PatternSet::default()
    }

    /// Parse every string; the first bad one stops the parse.
    pub fn parse<I, S>(sources: I) -> Result<PatternSet, PatternError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        sources
            .into_iter()
            .map(|source| CommandPattern::parse(source.as_ref()))
            .collect()
    }

    /// Add a pattern unless the same text is already present.
    pub fn push(&mut self, pattern: CommandPattern) {
        if !self.patterns.iter().any(|p| p.source == pattern.source) {
            self.patterns.push(pattern);
        }
    }

    /// Add every pattern of `other` (a union; duplicates are dropped).
    pub fn extend(&mut self, other: &PatternSet) {
        for pattern in &other.patterns {
            self.push(pattern.clone());
        }
    }

    /// Does any pattern match the command?
    pub fn matches_any(&self, command: &CommandLine) -> bool {
        self.patterns.iter().any(|p| p.matches(command))
    }

    /// True when the set contains the lone `*`.
    pub fn is_unrestricted(&self) -> bool {
        self.patterns.iter().any(CommandPattern::is_unrestricted)
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, CommandPattern> {
        self.patterns.iter()
    }

    /// The patterns as written, e.g. for an `exec@portcullis` JSON array.
    pub fn to_strings(&self) -> Vec<String> {
        self.patterns.iter().map(|p| p.source.clone()).collect()
    }
}

impl<'a> IntoIterator for &'a PatternSet {
    type Item = &'a CommandPattern;
    type IntoIter = std::slice::Iter<'a, CommandPattern>;

    fn into_iter(self) -> Self::IntoIter {
        self.patterns.iter()
    }
}

impl FromIterator<CommandPattern> for PatternSet {
    fn from_iter<I: IntoIterator<Item = CommandPattern>>(iter: I) -> PatternSet {
        let mut set = PatternSet::new();
        for pattern in iter {
            set.push(pattern);
        }
        set
    }
}
