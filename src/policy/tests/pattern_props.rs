//! Property tests: the matcher agrees with a plain dynamic-programming
//! oracle, and a star never lets shell syntax through.

use proptest::prelude::*;

use crate::policy::{is_shell_syntax, CommandPattern};

/// Reference matcher: DP over (pattern position, command position), the
/// obviously-correct definition the fast matcher must agree with.
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

/// A small alphabet so that random patterns and commands often match.
fn text(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop::sample::select(vec!['a', 'b', ' ', ';', '|', '$', '\n', '"', 'é']),
        0..max,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

fn pattern_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop::sample::select(vec!['a', 'b', ' ', ';', '|', '*', '*']),
        1..8,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

/// Patterns with at least one star, never the lone `*` (the unrestricted
/// pattern, to which the shell-syntax property does not apply).
fn glob_pattern_text() -> impl Strategy<Value = String> {
    (pattern_text(), pattern_text()).prop_map(|(left, right)| {
        let joined = format!("{left}*{right}");
        if joined == "*" {
            "**".to_owned()
        } else {
            joined
        }
    })
}

/// Fill each star of `pattern` with the corresponding filler.
fn fill(pattern: &str, fillers: &[String]) -> String {
    let mut out = String::new();
    for (index, piece) in pattern.split('*').enumerate() {
        if index > 0 {
            out.push_str(fillers.get(index - 1).map_or("", String::as_str));
        }
        out.push_str(piece);
    }
    out
}

proptest! {
    #[test]
    fn matcher_agrees_with_the_dp_oracle(pattern in pattern_text(), command in text(14)) {
        let parsed = CommandPattern::parse(&pattern).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(parsed.matches(&command), oracle(&pattern, &command));
    }

    #[test]
    fn matcher_agrees_with_the_oracle_on_filled_patterns(
        pattern in pattern_text(),
        fillers in proptest::collection::vec(text(5), 8),
    ) {
        let command = fill(&pattern, &fillers);
        let parsed = CommandPattern::parse(&pattern).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(parsed.matches(&command), oracle(&pattern, &command));
    }

    #[test]
    fn accepted_commands_carry_no_shell_syntax_beyond_the_literals(
        pattern in glob_pattern_text(),
        fillers in proptest::collection::vec(text(5), 8),
    ) {
        let command = fill(&pattern, &fillers);
        let parsed = CommandPattern::parse(&pattern).map_err(|e| TestCaseError::fail(e.to_string()))?;
        if parsed.matches(&command) {
            for c in command.chars().filter(|c| is_shell_syntax(*c)) {
                prop_assert!(pattern.contains(c), "{:?} let {:?} through in {:?}", pattern, c, command);
            }
        }
    }

    #[test]
    fn random_accepted_commands_carry_no_shell_syntax_beyond_the_literals(
        pattern in glob_pattern_text(),
        command in text(14),
    ) {
        let parsed = CommandPattern::parse(&pattern).map_err(|e| TestCaseError::fail(e.to_string()))?;
        if parsed.matches(&command) {
            for c in command.chars().filter(|c| is_shell_syntax(*c)) {
                prop_assert!(pattern.contains(c), "{:?} let {:?} through in {:?}", pattern, c, command);
            }
        }
    }

    #[test]
    fn clean_fillers_always_match(
        pattern in pattern_text(),
        fillers in proptest::collection::vec("[a-z0-9 ./_-]{0,6}", 8),
    ) {
        let command = fill(&pattern, &fillers);
        let parsed = CommandPattern::parse(&pattern).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(parsed.matches(&command), "{:?} should match {:?}", pattern, command);
    }
}
