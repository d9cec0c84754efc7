//! Command patterns: which command strings a role or a certificate may run.
//!
//! Invariant: a `*` never stands for shell syntax. Whatever a `*` matched
//! contains none of `; & | $ \` ( ) < >`, newline, carriage return,
//! backslash, quotes or any other control character, so a pattern like
//! `systemctl status *` cannot be stretched into a second command. Only the
//! lone pattern `*` (unrestricted) and the operator's own literal text may
//! carry those characters.

use std::fmt;

/// Why a pattern string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// An empty pattern could only ever match the empty command, which is
    /// never what an operator means.
    #[error("command pattern is empty")]
    Empty,
}

/// True for every character a `*` refuses to match: shell syntax and
/// control characters (U+0000..U+001F, U+007F).
pub fn is_shell_syntax(c: char) -> bool {
    matches!(
        c,
        ';' | '&' | '|' | '$' | '`' | '(' | ')' | '<' | '>' | '\\' | '\'' | '"'
    ) || c.is_ascii_control()
}

/// One parsed command pattern; matched against the whole command string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandPattern {
    source: String,
    shape: Shape,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Shape {
    /// The lone `*`: any command at all.
    Any,
    /// No `*`: the command must equal this text.
    Exact(String),
    /// `prefix*middle[0]*...*middle[n-1]*suffix`. Runs of stars are
    /// collapsed, so no middle piece is empty.
    Glob {
        prefix: String,
        middle: Vec<String>,
        suffix: String,
    },
}

impl CommandPattern {
    /// Parse a pattern as written in the policy or in `exec@portcullis`.
    pub fn parse(source: &str) -> Result<CommandPattern, PatternError> {
        if source.is_empty() {
            return Err(PatternError::Empty);
        }
        let shape = if source == "*" {
            Shape::Any
        } else if !source.contains('*') {
            Shape::Exact(source.to_owned())
        } else {
            let mut pieces: Vec<&str> = source.split('*').collect();
            // split on a string containing '*' yields at least two pieces.
            let suffix = pieces.pop().unwrap_or_default().to_owned();
            let prefix = if pieces.is_empty() {
                String::new()
            } else {
                pieces.remove(0).to_owned()
            };
            let middle = pieces
                .into_iter()
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect();
            Shape::Glob {
                prefix,
                middle,
                suffix,
            }
        };
        Ok(CommandPattern {
            source: source.to_owned(),
            shape,
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

    /// Does `command`, as a whole, match this pattern?
    pub fn matches(&self, command: &str) -> bool {
        match &self.shape {
            Shape::Any => true,
            Shape::Exact(text) => command == text,
            Shape::Glob {
                prefix,
                middle,
                suffix,
            } => glob_matches(prefix, middle, suffix, command),
        }
    }
}

impl fmt::Display for CommandPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Linear-time matching of `prefix*m0*m1*...*suffix` where every star
/// matches a run free of shell syntax.
///
/// The prefix and suffix are anchored. Each middle piece is then taken at
/// its leftmost occurrence; this is safe (never misses a match) because:
/// suppose some valid placement puts piece `L` at `q` while the leftmost
/// occurrence after the current position is `p < q`. Moving `L` to `p`
/// shortens the gap before it (a prefix of a clean gap is clean) and
/// lengthens the gap after it by the text between `p+|L|` and `q+|L|`.
/// If the two occurrences do not overlap, that text is part of the old gap
/// before `q` plus a copy of `L`; the old gap contained the occurrence at
/// `p`, so `L` itself is clean. If they overlap by shift `d`, `L` has period
/// `d`, so its last `d` characters are a rotation of its first `d`, which lay
/// in the old (clean) gap. Either way the new placement is valid, and by
/// induction the greedy placement is valid whenever any placement is. It
/// also means a dirty gap before the leftmost occurrence is a dirty gap for
/// every occurrence, so failing there is final. `str::find` is linear, and
/// successive searches scan disjoint stretches, so a 64 KiB command costs
/// time linear in its length.
fn glob_matches(prefix: &str, middle: &[String], suffix: &str, command: &str) -> bool {
    let Some(rest) = command.strip_prefix(prefix) else {
        return false;
    };
    // Stripping the suffix from what is left keeps prefix and suffix from
    // overlapping.
    let Some(mut rest) = rest.strip_suffix(suffix) else {
        return false;
    };
    for piece in middle {
        let Some(at) = rest.find(piece.as_str()) else {
            return false;
        };
        if !is_clean(&rest[..at]) {
            return false;
        }
        rest = &rest[at + piece.len()..];
    }
    is_clean(rest)
}

fn is_clean(gap: &str) -> bool {
    !gap.chars().any(is_shell_syntax)
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

    /// Does any pattern match the whole command?
    pub fn matches_any(&self, command: &str) -> bool {
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
