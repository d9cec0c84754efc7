//! Property tests: the words of every accepted command are exactly what the
//! real shell passes on; an accepted command carries no shell syntax outside
//! single quotes; a path star word never matches a `..` component; a star
//! word agrees with a plain dynamic-programming oracle.

use std::path::Path;
use std::process::Command;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::policy::reference::{star_word_matches, unquoted_shell_syntax};
use crate::policy::{CommandLine, CommandPattern};

/// Characters that mean themselves to the shell (most of the time: `~` and
/// `=` depend on where they stand).
const PLAIN: &[char] = &[
    'a', 'b', '.', '/', '-', '=', ':', '~', '!', '%', '^', ',', '@', '+', 'é', '\u{a0}',
];

/// Characters the shell may interpret, and word separators.
const SPECIAL: &[char] = &[
    ';', '&', '|', '$', '`', '(', ')', '<', '>', '#', '\\', '"', '\'', '*', '?', '[', ']', '{',
    '}', ' ', '\n', '\t', '\r',
];

fn chars(alphabet: &'static [char], max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(prop::sample::select(alphabet), 0..max)
        .prop_map(|chars| chars.into_iter().collect())
}

fn mixed(max: usize) -> impl Strategy<Value = String> {
    let one = prop_oneof![3 => prop::sample::select(PLAIN), 1 => prop::sample::select(SPECIAL)];
    proptest::collection::vec(one, 0..max).prop_map(|chars| chars.into_iter().collect())
}

/// Whole globs and braces (the test directory has files they would match),
/// and plain text around them.
const GLOB: &[&str] = &[
    "a", "b", ".", "*", "?", "[ab]", "[", "]", "{a,b}", "{,}", "}",
];

/// A word as typed: plain characters, anything single-quoted, a mix, plain
/// text around one special character (what a parse that forgot that one
/// would accept), a glob, or one that looks like an assignment (bash
/// expands `~` in `a=~` and `a=b:~`).
fn typed_word() -> impl Strategy<Value = String> {
    let one_special = (
        chars(PLAIN, 3),
        prop::sample::select(SPECIAL),
        chars(PLAIN, 3),
    );
    prop_oneof![
        2 => chars(PLAIN, 6),
        2 => mixed(6).prop_map(|text| format!("'{text}'")),
        1 => mixed(6),
        3 => one_special.prop_map(|(before, c, after)| format!("{before}{c}{after}")),
        1 => proptest::collection::vec(prop::sample::select(GLOB), 1..4)
            .prop_map(|parts| parts.concat()),
        1 => ("[ab_]{1,2}[=:]", chars(PLAIN, 4))
            .prop_map(|(name, value)| format!("{name}{value}")),
    ]
}

/// Words joined by runs of spaces, with optional spaces around.
fn typed_words() -> impl Strategy<Value = String> {
    proptest::collection::vec((typed_word(), 1..3usize), 1..5).prop_map(|words| {
        words
            .into_iter()
            .map(|(word, spaces)| format!("{}{word}", " ".repeat(spaces)))
            .collect()
    })
}

/// The NUL-terminated arguments `shell -c script` prints, run in `dir`.
fn shell_prints(shell: &str, script: &str, dir: &Path) -> Result<Vec<u8>, TestCaseError> {
    let output = Command::new(shell)
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .map_err(|e| TestCaseError::fail(format!("{shell}: {e}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        return Err(TestCaseError::fail(format!(
            "{shell} -c {script:?} failed: {stderr}"
        )));
    }
    Ok(output.stdout)
}

#[test]
fn accepted_commands_are_the_words_the_shell_passes_on() {
    let shells: Vec<&str> = ["/bin/sh", "/bin/bash"]
        .into_iter()
        .filter(|shell| Path::new(shell).exists())
        .collect();
    if shells.is_empty() {
        return;
    }
    let (empty, with_files) = match (tempfile::tempdir(), tempfile::tempdir()) {
        (Ok(empty), Ok(with_files)) => (empty, with_files),
        other => panic!("temporary directories: {other:?}"),
    };
    // Files a glob or brace that slipped through would find.
    for name in ["a", "b", "ab", "ba", "a.b", "x"] {
        if let Err(error) = std::fs::write(with_files.path().join(name), "") {
            panic!("{name}: {error}");
        }
    }
    let mut runner = TestRunner::new(Config::with_cases(256));
    let result = runner.run(&typed_words(), |typed| {
        let script = format!("printf '%s\\0'{typed}");
        let Ok(line) = CommandLine::parse(&script) else {
            return Ok(());
        };
        let words = line.words();
        prop_assert_eq!(&words[..2], ["printf", "%s\\0"]);
        // printf prints its format once even with no argument.
        let expected: Vec<u8> = if words.len() == 2 {
            vec![0]
        } else {
            words[2..]
                .iter()
                .flat_map(|word| word.bytes().chain([0]))
                .collect()
        };
        for shell in &shells {
            for dir in [empty.path(), with_files.path()] {
                let printed = shell_prints(shell, &script, dir)?;
                prop_assert_eq!(
                    String::from_utf8_lossy(&printed),
                    String::from_utf8_lossy(&expected),
                    "{} -c {:?}",
                    shell,
                    script
                );
            }
        }
        Ok(())
    });
    if let Err(error) = result {
        panic!("{error}");
    }
}

/// One star word, the obvious way.
fn oracle(glob: &str, word: &str) -> bool {
    star_word_matches(glob, word, '*')
}

fn path_word() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(&["a", "b", "/", ".", "..", "/../"][..]);
    proptest::collection::vec(piece, 0..8).prop_map(|pieces| pieces.concat())
}

fn glob_word() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(&["a", "/", ".", "..", "*", "*"][..]);
    proptest::collection::vec(piece, 1..6)
        .prop_map(|pieces| pieces.concat())
        .prop_filter("the ellipsis is not a word pattern", |glob| glob != "...")
}

proptest! {
    #![proptest_config(Config::with_cases(512))]

    #[test]
    fn accepted_commands_carry_no_shell_syntax_outside_quotes(typed in typed_words()) {
        if let Ok(line) = CommandLine::parse(&typed) {
            prop_assert_eq!(unquoted_shell_syntax(&typed), None, "{:?} -> {:?}", typed, line.words());
        }
    }

    #[test]
    fn path_star_word_never_matches_a_dotdot_component(glob in glob_word(), word in path_word()) {
        let pattern = CommandPattern::parse(&format!("cat {glob}"))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let Ok(line) = CommandLine::parse(&format!("cat {word}")) else {
            return Ok(());
        };
        let matched = pattern.matches(&line);
        let dotdot = word.split('/').any(|part| part == "..");
        let path_star = glob.contains('/') && glob.contains('*');
        if matched && path_star {
            prop_assert!(!dotdot, "{:?} matched {:?}", glob, word);
        }
        if line.words().len() == 2 {
            let expected = oracle(&glob, &word) && !(path_star && dotdot);
            prop_assert_eq!(matched, expected, "{:?} on {:?}", glob, word);
        }
    }

    #[test]
    fn star_word_agrees_with_the_dp_oracle(
        glob in chars(&['a', 'b', '*', '*'], 8),
        word in chars(&['a', 'b'], 12),
    ) {
        // Patterns and commands of two words, the second one tested.
        let pattern = CommandPattern::parse(&format!("x '' {glob}"))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let line = CommandLine::parse(&format!("x '' '{word}'"))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let expected = if glob.is_empty() { false } else { oracle(&glob, &word) };
        prop_assert_eq!(pattern.matches(&line), expected, "{:?} on {:?}", glob, word);
    }
}
