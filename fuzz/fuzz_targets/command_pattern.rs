//! Any (pattern, command) pair: parsing and matching never panic, and a `*`
//! never lets through shell syntax that the pattern's own text lacks.
//!
//! Input: `pattern 0xFF command`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::policy::{is_shell_syntax, CommandPattern};
use portcullis_fuzz::{fields, text};

/// Longest inputs checked against the quadratic oracle.
const ORACLE_MAX: usize = 256;

fuzz_target!(|data: &[u8]| {
    let [pattern, command] = fields::<2>(data).map(text);
    let Ok(parsed) = CommandPattern::parse(&pattern) else {
        assert!(pattern.is_empty(), "only the empty pattern is refused");
        return;
    };
    let accepted = parsed.matches(&command);
    if pattern.contains('*') && pattern != "*" {
        if accepted {
            for c in command.chars().filter(|c| is_shell_syntax(*c)) {
                assert!(
                    pattern.contains(c),
                    "{pattern:?} let {c:?} through in {command:?}"
                );
            }
        }
        // Every star may match the empty string.
        assert!(parsed.matches(&pattern.replace('*', "")), "{pattern:?}");
    }
    if pattern.len() <= ORACLE_MAX && command.len() <= ORACLE_MAX {
        assert_eq!(
            accepted,
            oracle(&pattern, &command),
            "{pattern:?} on {command:?}"
        );
    }
});

/// The obviously correct definition: dynamic programming over (pattern
/// position, command position), a star consuming only non-shell characters.
fn oracle(pattern: &str, command: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let command: Vec<char> = command.chars().collect();
    let mut row = vec![false; command.len() + 1];
    row[0] = true;
    for p in pattern.chars() {
        let mut next = vec![false; command.len() + 1];
        for j in 0..=command.len() {
            next[j] = if p == '*' {
                row[j] || (j > 0 && next[j - 1] && !is_shell_syntax(command[j - 1]))
            } else {
                j > 0 && row[j - 1] && command[j - 1] == p
            };
        }
        row = next;
    }
    row[command.len()]
}
