//! Reading a command as plain words, or refusing it before any pattern.

use std::time::{Duration, Instant};

use crate::policy::{CommandLine, CommandRefusal};

fn words(command: &str) -> Vec<String> {
    match CommandLine::parse(command) {
        Ok(line) => line.words().to_vec(),
        Err(refusal) => panic!("{command:?} should parse: {refusal}"),
    }
}

fn refusal(command: &str) -> CommandRefusal {
    match CommandLine::parse(command) {
        Ok(line) => panic!("{command:?} should be refused, got {:?}", line.words()),
        Err(refusal) => refusal,
    }
}

#[test]
fn words_are_split_at_runs_of_spaces() {
    assert_eq!(words("  ls   -l  /tmp "), ["ls", "-l", "/tmp"]);
    assert_eq!(words("uptime"), ["uptime"]);
}

#[test]
fn as_str_keeps_the_command_as_sent() {
    let line = CommandLine::parse(" ls  'a b' ");
    assert_eq!(
        line.map(|l| l.as_str().to_owned()),
        Ok(" ls  'a b' ".into())
    );
}

#[test]
fn quoted_word_is_one_literal_word() {
    assert_eq!(words("grep 'two words' f"), ["grep", "two words", "f"]);
    assert_eq!(
        words("echo '; & | $(id) `id` <x> # \\ \" * ? [a] {a,b} ~ =x'"),
        ["echo", "; & | $(id) `id` <x> # \\ \" * ? [a] {a,b} ~ =x"]
    );
    assert_eq!(words("'/usr/bin/my tool' x"), ["/usr/bin/my tool", "x"]);
}

#[test]
fn empty_quotes_are_one_empty_word() {
    assert_eq!(words("echo '' x"), ["echo", "", "x"]);
    assert_eq!(words("echo ''"), ["echo", ""]);
}

#[test]
fn quote_that_is_not_the_whole_word_is_refused() {
    for command in [
        "echo 'a'b",
        "echo a'b'",
        "echo 'a''b'",
        "echo a'",
        "echo ''x",
    ] {
        assert!(
            matches!(refusal(command), CommandRefusal::PartialQuote(_)),
            "{command:?}"
        );
    }
}

#[test]
fn unbalanced_quote_is_refused() {
    for command in ["echo 'a", "echo 'a b", "'", "echo 'a' 'b"] {
        assert_eq!(
            refusal(command),
            CommandRefusal::UnbalancedQuote,
            "{command:?}"
        );
    }
}

#[test]
fn double_quotes_are_refused() {
    assert_eq!(refusal("echo \"a\""), CommandRefusal::ShellSyntax('"'));
    assert_eq!(refusal("echo a\"b"), CommandRefusal::ShellSyntax('"'));
}

#[test]
fn every_shell_character_outside_quotes_is_refused() {
    let specials = [
        ';', '&', '|', '$', '`', '(', ')', '<', '>', '#', '\\', '"', '*', '?', '[', ']', '{', '}',
    ];
    for c in specials {
        for command in [
            format!("echo {c}"),
            format!("echo a{c}"),
            format!("echo {c}a"),
            format!("echo a{c}b c"),
            format!("echo 'x' {c}"),
        ] {
            assert_eq!(
                CommandLine::parse(&command),
                Err(CommandRefusal::ShellSyntax(c)),
                "{command:?}"
            );
        }
    }
}

#[test]
fn shell_characters_inside_quotes_are_literal() {
    for c in "; & | $ ` ( ) < > # \\ \" * ? [ ] { } ~ = !".split(' ') {
        assert_eq!(words(&format!("echo 'a{c}b'")), ["echo", &format!("a{c}b")]);
    }
}

#[test]
fn control_characters_are_refused_even_inside_quotes() {
    for c in (0u8..0x20).chain([0x7f]).map(char::from) {
        for command in [format!("echo a{c}b"), format!("echo 'a{c}b'")] {
            assert_eq!(
                refusal(&command),
                CommandRefusal::ControlCharacter(c),
                "{command:?}"
            );
        }
    }
}

#[test]
fn newline_tab_and_carriage_return_do_not_separate_words() {
    for command in ["uptime\nid", "uptime\tid", "uptime\rid", "uptime\n"] {
        assert!(
            matches!(refusal(command), CommandRefusal::ControlCharacter(_)),
            "{command:?}"
        );
    }
}

#[test]
fn hash_outside_quotes_is_refused() {
    assert_eq!(
        refusal("grep -r secret /etc/x # /var/log/app"),
        CommandRefusal::ShellSyntax('#')
    );
    assert_eq!(refusal("echo a#b"), CommandRefusal::ShellSyntax('#'));
    assert_eq!(words("echo '#'"), ["echo", "#"]);
}

#[test]
fn command_substitution_is_refused() {
    for command in ["echo $(id)", "echo ${HOME}", "echo $HOME", "echo `id`"] {
        let first = if command.contains('`') { '`' } else { '$' };
        assert_eq!(
            refusal(command),
            CommandRefusal::ShellSyntax(first),
            "{command:?}"
        );
    }
}

#[test]
fn brace_expansion_is_refused() {
    assert_eq!(refusal("echo {a,b}"), CommandRefusal::ShellSyntax('{'));
    assert_eq!(refusal("echo a{b,c}"), CommandRefusal::ShellSyntax('{'));
}

#[test]
fn globs_are_refused() {
    assert_eq!(refusal("ls *.log"), CommandRefusal::ShellSyntax('*'));
    assert_eq!(refusal("ls a?"), CommandRefusal::ShellSyntax('?'));
    assert_eq!(refusal("ls [ab]"), CommandRefusal::ShellSyntax('['));
    assert_eq!(refusal("ls a]"), CommandRefusal::ShellSyntax(']'));
}

#[test]
fn tilde_at_word_start_is_refused() {
    for command in ["cat ~root/x", "cat ~", "~/bin/tool", "ls ~+"] {
        assert!(
            matches!(refusal(command), CommandRefusal::Tilde(_)),
            "{command:?}"
        );
    }
}

#[test]
fn tilde_inside_a_word_is_plain() {
    assert_eq!(words("echo a~b backup~"), ["echo", "a~b", "backup~"]);
    assert_eq!(words("echo '~root'"), ["echo", "~root"]);
}

#[test]
fn tilde_after_equals_or_colon_is_refused() {
    // bash expands these in assignment-like words: `x=~` becomes `x=/root`.
    for command in ["make prefix=~/x", "env PATH=/bin:~/bin", "cmd x=a:~"] {
        assert!(
            matches!(refusal(command), CommandRefusal::Tilde(_)),
            "{command:?}"
        );
    }
}

#[test]
fn leading_equals_is_refused() {
    // zsh replaces `=ls` with the path of ls.
    assert_eq!(
        refusal("echo =ls"),
        CommandRefusal::LeadingEquals("=ls".into())
    );
    assert_eq!(refusal("=ls"), CommandRefusal::LeadingEquals("=ls".into()));
    assert_eq!(words("echo '=ls' a=b"), ["echo", "=ls", "a=b"]);
}

#[test]
fn assignment_first_word_is_refused() {
    for (command, word) in [
        ("x=1 cmd", "x=1"),
        ("LD_PRELOAD=/x ls", "LD_PRELOAD=/x"),
        ("_a9= ls", "_a9="),
        ("PATH+=:/tmp ls", "PATH+=:/tmp"),
        ("x=1", "x=1"),
    ] {
        assert_eq!(
            refusal(command),
            CommandRefusal::Assignment(word.into()),
            "{command:?}"
        );
    }
}

#[test]
fn assignment_after_the_first_word_is_an_argument() {
    assert_eq!(words("cmd x=1"), ["cmd", "x=1"]);
    assert_eq!(words("make CC=clang all"), ["make", "CC=clang", "all"]);
    // Not a shell name, or quoted: a command name, not an assignment.
    assert_eq!(words("9x=1 cmd"), ["9x=1", "cmd"]);
    assert_eq!(words("a-b=1"), ["a-b=1"]);
    assert_eq!(words("'x=1' cmd"), ["x=1", "cmd"]);
}

#[test]
fn reserved_first_word_is_refused() {
    for word in [
        "!", "if", "then", "else", "elif", "fi", "case", "esac", "for", "select", "while", "until",
        "do", "done", "in", "function", "time", "coproc", "{", "}", "[[", "]]",
    ] {
        // Unquoted, `{ } [[ ]]` already fall to the character rule.
        assert!(
            CommandLine::parse(&format!("{word} true")).is_err(),
            "{word}"
        );
        assert_eq!(
            refusal(&format!("'{word}' true")),
            CommandRefusal::ReservedWord(word.into()),
            "{word}"
        );
    }
    assert_eq!(
        refusal("time rm -rf /"),
        CommandRefusal::ReservedWord("time".into())
    );
}

#[test]
fn reserved_word_after_the_first_is_an_argument() {
    assert_eq!(
        words("echo if then ! fi"),
        ["echo", "if", "then", "!", "fi"]
    );
    assert_eq!(words("ifconfig -a"), ["ifconfig", "-a"]);
}

#[test]
fn empty_command_is_refused() {
    for command in ["", " ", "    "] {
        assert_eq!(refusal(command), CommandRefusal::Empty, "{command:?}");
    }
}

#[test]
fn other_characters_are_plain() {
    assert_eq!(
        words("echo héllo a!b %1 ^x @y +z -- a,b a:b a=b ./x"),
        ["echo", "héllo", "a!b", "%1", "^x", "@y", "+z", "--", "a,b", "a:b", "a=b", "./x"]
    );
    // Only U+0020 separates words; a no-break space is part of one.
    assert_eq!(words("echo a\u{a0}b"), ["echo", "a\u{a0}b"]);
}

#[test]
fn refusals_are_one_line_and_quote_what_they_found() {
    let shown = |command: &str| refusal(command).to_string();
    assert_eq!(
        shown("ls; id"),
        "command has shell syntax ';' outside single quotes"
    );
    assert_eq!(
        shown("LD_PRELOAD=/x ls"),
        "command starts with an assignment \"LD_PRELOAD=/x\""
    );
    assert_eq!(shown(""), "command is empty");
    assert_eq!(shown("ls\n"), "command has a control character '\\n'");
    assert_eq!(shown("echo 'a"), "command has an unbalanced single quote");
    assert_eq!(
        shown("echo 'a'b"),
        "command has a single quote that does not enclose a whole word \"'a'b\""
    );
    assert_eq!(
        shown("cat ~root/x"),
        "command has a word the shell would tilde-expand \"~root/x\""
    );
    assert_eq!(
        shown("echo =ls"),
        "command has a word starting with '=' \"=ls\""
    );
    assert_eq!(
        shown("'if' x"),
        "command starts with the shell reserved word \"if\""
    );
    let long = shown(&format!("X={} ls", "y".repeat(10_000)));
    assert!(long.len() < 120 && long.ends_with("...\""), "{long}");
}

#[test]
fn long_command_parses_quickly() {
    let started = Instant::now();
    let many = format!("echo {}", "ab ".repeat(32 * 1024 / 3));
    assert_eq!(
        CommandLine::parse(&many).map(|l| l.words().len()),
        Ok(10_923)
    );
    let one = format!("cat /{}", "a/".repeat(16 * 1024));
    assert!(CommandLine::parse(&one).is_ok());
    let quoted = format!("echo '{}'", "; ".repeat(16 * 1024));
    assert!(CommandLine::parse(&quoted).is_ok());
    assert!(started.elapsed() < Duration::from_secs(5));
}
