//! Reference readers of the pattern language, written the obvious way for
//! tests and fuzz targets to hold the real parser and matcher against.
//!
//! Invariant: these are independent of `command.rs` and `pattern.rs` (no
//! code shared), slow and plain on purpose; they exist only under `test`
//! and `fuzzing`.

/// Characters refused outside single quotes wherever they stand.
pub const REFUSED: &[char] = &[
    ';', '&', '|', '$', '`', '(', ')', '<', '>', '#', '\\', '"', '*', '?', '[', ']', '{', '}',
];

/// Reads `command` as the shell does (a `'` toggles quoting) and says what,
/// outside single quotes, the command parse should have refused; `None`
/// when nothing.
pub fn unquoted_shell_syntax(command: &str) -> Option<String> {
    let mut quoted = false;
    let mut previous: Option<char> = None;
    for c in command.chars() {
        let word_start = matches!(previous, None | Some(' ')) && !quoted;
        if c.is_ascii_control() {
            return Some(format!("control character {c:?}"));
        }
        if c == '\'' {
            // Opening only at a word start, closing only before a space or
            // the end (checked at the next character).
            if !quoted && !word_start {
                return Some("quote inside a word".into());
            }
            quoted = !quoted;
        } else if !quoted {
            if previous == Some('\'') && c != ' ' {
                return Some("text after a closing quote".into());
            }
            if REFUSED.contains(&c) {
                return Some(format!("{c:?}"));
            }
            if c == '~' && (word_start || matches!(previous, Some('=' | ':'))) {
                return Some("tilde expansion".into());
            }
            if c == '=' && word_start {
                return Some("leading '='".into());
            }
        }
        previous = Some(c);
    }
    quoted.then(|| "unbalanced quote".into())
}

/// One star word by dynamic programming over (pattern position, word
/// position): `star` takes any run, every other character must be equal.
pub fn star_word_matches(glob: &str, word: &str, star: char) -> bool {
    let word: Vec<char> = word.chars().collect();
    let mut row = vec![false; word.len() + 1];
    row[0] = true;
    for p in glob.chars() {
        let mut next = vec![false; word.len() + 1];
        for j in 0..=word.len() {
            next[j] = if p == star {
                row[j] || (j > 0 && next[j - 1])
            } else {
                j > 0 && row[j - 1] && word[j - 1] == p
            };
        }
        row = next;
    }
    row[word.len()]
}
