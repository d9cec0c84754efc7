//! Any (pattern, command) pair: parsing and matching never panic, an
//! accepted command has no shell syntax outside single quotes, refusals are
//! one line, and matching agrees with a word-by-word oracle.
//!
//! Input: `pattern 0xFF command`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::policy::reference::{star_word_matches, unquoted_shell_syntax};
use portcullis::policy::{CommandLine, CommandPattern};
use portcullis_fuzz::{fields, text};

/// Longest inputs checked against the quadratic oracle.
const ORACLE_MAX: usize = 256;

/// Stands for an unquoted `*` of the pattern in the oracle's words.
const STAR: char = '\u{E000}';

fuzz_target!(|data: &[u8]| {
    let [pattern, command] = fields::<2>(data).map(text);
    let line = match CommandLine::parse(&command) {
        Ok(line) => {
            assert!(!line.words().is_empty(), "{command:?}");
            assert_eq!(unquoted_shell_syntax(&command), None, "{command:?}");
            Some(line)
        }
        Err(refusal) => {
            assert!(!refusal.to_string().contains('\n'), "{refusal:?}");
            None
        }
    };
    let parsed = match CommandPattern::parse(&pattern) {
        Ok(parsed) => parsed,
        Err(error) => {
            assert!(!error.to_string().contains('\n'), "{error:?}");
            return;
        }
    };
    assert_eq!(parsed.is_unrestricted(), pattern == "*");
    let Some(line) = line else {
        return;
    };
    let accepted = parsed.matches(&line);
    if parsed.is_unrestricted() {
        assert!(accepted);
        return;
    }
    if pattern.len() <= ORACLE_MAX && command.len() <= ORACLE_MAX && !pattern.contains(STAR) {
        assert_eq!(
            accepted,
            oracle(&pattern, line.words()),
            "{pattern:?} on {command:?}"
        );
    }
});

/// The pattern's words with every unquoted `*` as STAR, read by the
/// command parse (a parsed pattern quotes only whole words, so a `'`
/// toggles quoting), then matched word by word with a DP per word.
fn oracle(pattern: &str, command: &[String]) -> bool {
    let mut quoted = false;
    let marked: String = pattern
        .chars()
        .map(|c| match c {
            '\'' => {
                quoted = !quoted;
                c
            }
            '*' if !quoted => STAR,
            _ => c,
        })
        .collect();
    let ellipsis =
        pattern.trim_end_matches(' ').ends_with(" ...") || pattern.trim_matches(' ') == "...";
    let words = match CommandLine::parse(&marked) {
        Ok(line) => line.words().to_vec(),
        Err(refusal) => panic!("{pattern:?} parsed as a pattern, not as words: {refusal}"),
    };
    let words = if ellipsis {
        &words[..words.len() - 1]
    } else {
        &words[..]
    };
    let count_fits = if ellipsis {
        command.len() >= words.len()
    } else {
        command.len() == words.len()
    };
    count_fits
        && words.iter().zip(command).all(|(glob, word)| {
            let path = glob.contains('/') && glob.contains(STAR);
            star_word_matches(glob, word, STAR)
                && !(path && word.split('/').any(|part| part == ".."))
        })
}
