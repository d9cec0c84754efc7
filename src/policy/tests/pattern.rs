//! Command patterns: words against words.

use std::time::{Duration, Instant};

use crate::policy::{CommandLine, CommandPattern, CommandRefusal, PatternError, PatternSet};

fn pattern(text: &str) -> CommandPattern {
    match CommandPattern::parse(text) {
        Ok(pattern) => pattern,
        Err(error) => panic!("{text:?} should parse: {error}"),
    }
}

/// Whether `command` parses and `pattern` matches it.
fn allows(pattern_text: &str, command: &str) -> bool {
    let parsed = pattern(pattern_text);
    CommandLine::parse(command).is_ok_and(|line| parsed.matches(&line))
}

fn error(text: &str) -> PatternError {
    match CommandPattern::parse(text) {
        Ok(pattern) => panic!("{text:?} should be refused, got {pattern:?}"),
        Err(error) => error,
    }
}

#[test]
fn literal_words_must_equal_the_command_words() {
    assert!(allows(
        "sudo systemctl restart nginx",
        "sudo systemctl restart nginx"
    ));
    assert!(allows(
        "sudo systemctl restart nginx",
        "  sudo systemctl  restart nginx "
    ));
    assert!(!allows(
        "sudo systemctl restart nginx",
        "sudo systemctl restart"
    ));
    assert!(!allows(
        "sudo systemctl restart nginx",
        "sudo systemctl restart nginx x"
    ));
    assert!(!allows("uptime", "uptime; id"));
    assert!(!allows("uptime", "xuptime"));
}

#[test]
fn star_matches_one_word() {
    let status = "systemctl status *";
    assert!(allows(status, "systemctl status nginx"));
    assert!(allows(status, "systemctl status nginx.service"));
    assert!(
        allows(status, "systemctl status ''"),
        "a star may match nothing"
    );
    assert!(
        !allows(status, "systemctl status"),
        "the word must be there"
    );
}

#[test]
fn star_does_not_span_words() {
    let status = "systemctl status *";
    assert!(!allows(status, "systemctl status nginx sshd"));
    assert!(!allows("cp * *", "cp a b c"));
    assert!(allows("cp * *", "cp a b"));
    assert!(!allows("* /tmp", "ls /tmp/x"));
}

#[test]
fn shell_syntax_never_reaches_a_star() {
    let status = "systemctl status *";
    for command in [
        "systemctl status nginx; rm -rf /",
        "systemctl status nginx && rm -rf /",
        "systemctl status nginx | sh",
        "systemctl status $(rm -rf /)",
        "systemctl status `rm -rf /`",
        "systemctl status nginx\nrm -rf /",
        "systemctl status nginx > /etc/passwd",
        "systemctl status \"nginx\"",
        "systemctl status nginx\\",
        "systemctl status {a,b}",
        "systemctl status ~root",
    ] {
        assert!(!allows(status, command), "{command:?} must be refused");
    }
}

#[test]
fn star_matches_a_quoted_command_word_as_the_literal_it_is() {
    // The shell passes `a; b` on as one argument; no second command runs.
    assert!(allows("echo *", "echo 'a; b'"));
    assert!(allows("grep -e * f", "grep -e '$(id)' f"));
}

#[test]
fn several_stars_within_one_word() {
    assert!(allows("rm *.log", "rm app.log"));
    assert!(allows("rm *.log", "rm .log"));
    assert!(!allows("rm *.log", "rm app.log.gz"));
    let abc = "x a*b*c";
    assert!(allows(abc, "x abc"));
    assert!(allows(abc, "x aXXbYYc"));
    assert!(allows(abc, "x abbcbc"));
    assert!(!allows(abc, "x acb"));
    assert!(allows("x **", "x anything"));
    assert!(!pattern("**").is_unrestricted());
    assert!(allows(
        "tail -n * /var/log/*.log",
        "tail -n 20 /var/log/syslog.log"
    ));
}

#[test]
fn star_in_first_word() {
    assert!(allows("*ctl status", "systemctl status"));
    assert!(!allows("*ctl status", "systemctl status x"));
}

#[test]
fn quoted_pattern_word_is_literal() {
    let two = "grep 'a b' *";
    assert!(allows(two, "grep 'a b' f"));
    assert!(!allows(two, "grep a b f"));
    let star = "echo '*'";
    assert!(allows(star, "echo '*'"));
    assert!(!allows(star, "echo x"));
    assert!(pattern("echo '*'").is_literal());
    assert!(allows("echo ''", "echo ''"));
    assert!(!allows("echo ''", "echo"));
    // A literal pattern may carry shell syntax inside quotes.
    assert!(allows("sh -c 'ls | wc -l'", "sh -c 'ls | wc -l'"));
}

#[test]
fn grep_example_star_stays_in_its_word() {
    let grep = "grep -r * /var/log/app";
    assert!(allows(grep, "grep -r secret /var/log/app"));
    assert!(!allows(grep, "grep -r secret /etc/x # /var/log/app"));
    assert!(!allows(grep, "grep -r secret /etc/x /var/log/app"));
}

#[test]
fn path_prefix_word_cannot_climb_out_with_dotdot() {
    let cat = "cat /var/log/nginx/*";
    assert!(allows(cat, "cat /var/log/nginx/error.log"));
    assert!(allows(cat, "cat /var/log/nginx/a/b.log"));
    assert!(allows(cat, "cat /var/log/nginx/..x/a..b/.../."));
    assert!(!allows(cat, "cat /var/log/nginx/../../etc/shadow"));
    assert!(!allows(cat, "cat /var/log/nginx/.."));
    assert!(!allows(cat, "cat /var/log/nginx/a/../b"));
    assert!(!allows(cat, "cat '/var/log/nginx/../../etc/shadow'"));
    let scp = "scp -t /srv/upload/*";
    assert!(allows(scp, "scp -t /srv/upload/report.csv"));
    assert!(!allows(scp, "scp -t /srv/upload/../../etc/cron.d/x"));
    assert!(!allows("cp --to=/srv/* x", "cp --to=/srv/../etc x"));
}

#[test]
fn star_word_without_slash_may_match_dotdot() {
    // The rule guards path prefixes; a bare `*` already allows any path.
    assert!(allows("cd *", "cd .."));
    assert!(allows("ls -l *", "ls -l ../x"));
}

#[test]
fn literal_word_with_dotdot_is_the_operators_choice() {
    assert!(allows("cat /srv/../etc/motd", "cat /srv/../etc/motd"));
}

#[test]
fn ellipsis_matches_any_further_words() {
    let log = "git log ...";
    assert!(allows(log, "git log"));
    assert!(allows(log, "git log --oneline -n 5"));
    assert!(allows(log, "git log 'a b' ''"));
    assert!(!allows(log, "git status"));
    assert!(!allows(log, "git log; id"));
    assert!(!allows(log, "git log $(id)"));
    assert!(allows("journalctl -u * ...", "journalctl -u nginx -n 50"));
    assert!(!allows("journalctl -u * ...", "journalctl -u"));
}

#[test]
fn lone_ellipsis_matches_any_plain_command() {
    assert!(allows("...", "anything at all"));
    assert!(!allows("...", "anything; id"));
    assert!(!pattern("...").is_unrestricted());
}

#[test]
fn quoted_ellipsis_is_a_literal_word() {
    let dots = "echo '...'";
    assert!(allows(dots, "echo ..."));
    assert!(allows(dots, "echo '...'"));
    assert!(!allows(dots, "echo a"));
    assert!(!allows(dots, "echo"));
    assert!(allows("echo '...' x", "echo ... x"));
}

#[test]
fn ellipsis_before_the_last_word_is_a_pattern_error() {
    assert_eq!(
        error("git ... log"),
        PatternError::EllipsisNotLast("git ... log".into())
    );
    assert!(matches!(error("... ..."), PatternError::EllipsisNotLast(_)));
}

#[test]
fn lone_star_allows_any_command() {
    let any = pattern("*");
    assert!(any.is_unrestricted());
    assert!(!any.is_literal());
    for command in ["uptime", "a b c", "x 'y z'"] {
        let line = CommandLine::parse(command);
        assert!(line.is_ok_and(|l| any.matches(&l)), "{command:?}");
    }
}

#[test]
fn star_with_spaces_is_one_star_word_not_unrestricted() {
    let padded = pattern(" * ");
    assert!(!padded.is_unrestricted());
    assert!(allows(" * ", "uptime"));
    assert!(!allows(" * ", "ls /"));
}

#[test]
fn empty_pattern_is_an_error() {
    assert_eq!(error(""), PatternError::Empty(String::new()));
    assert_eq!(error("   "), PatternError::Empty("   ".into()));
    assert_eq!(
        PatternSet::parse(["ls", ""]),
        Err(PatternError::Empty(String::new()))
    );
}

#[test]
fn shell_syntax_in_a_pattern_is_an_error() {
    for (text, problem) in [
        ("ls; id", CommandRefusal::ShellSyntax(';')),
        ("ls | wc -l", CommandRefusal::ShellSyntax('|')),
        ("echo $HOME", CommandRefusal::ShellSyntax('$')),
        ("ls ?", CommandRefusal::ShellSyntax('?')),
        ("ls [ab]*", CommandRefusal::ShellSyntax('[')),
        ("echo {a,b}", CommandRefusal::ShellSyntax('{')),
        ("echo \"*\"", CommandRefusal::ShellSyntax('"')),
        ("echo 'a", CommandRefusal::UnbalancedQuote),
        ("echo 'a'*", CommandRefusal::PartialQuote("'a'*".into())),
        ("cat ~/x", CommandRefusal::Tilde("~/x".into())),
        ("echo =*", CommandRefusal::LeadingEquals("=*".into())),
        ("x=* cmd", CommandRefusal::Assignment("x=*".into())),
        ("if *", CommandRefusal::ReservedWord("if".into())),
        ("ls\t*", CommandRefusal::ControlCharacter('\t')),
    ] {
        assert_eq!(
            error(text),
            PatternError::Syntax {
                pattern: text.into(),
                problem
            },
            "{text:?}"
        );
    }
}

#[test]
fn pattern_errors_are_one_line_and_quote_the_pattern() {
    assert_eq!(
        error("ls; id").to_string(),
        "command pattern \"ls; id\" has shell syntax ';' outside single quotes"
    );
    assert_eq!(error("").to_string(), "command pattern \"\" is empty");
    assert_eq!(
        error("a ... b").to_string(),
        "command pattern \"a ... b\" has \"...\" before its last word"
    );
    assert_eq!(
        error("ls\n*").to_string(),
        "command pattern \"ls\\n*\" has a control character '\\n'"
    );
}

#[test]
fn literal_patterns_are_those_without_star_words_or_ellipsis() {
    assert!(pattern("sudo systemctl restart nginx").is_literal());
    assert!(pattern("echo 'a*' '...'").is_literal());
    assert!(!pattern("systemctl status *").is_literal());
    assert!(!pattern("git log ...").is_literal());
    assert!(!pattern("*").is_literal());
}

#[test]
fn long_commands_are_matched_quickly() {
    let started = Instant::now();
    // One 32 KiB word against many stars.
    let word = format!("echo {}", "a".repeat(32 * 1024));
    let line = CommandLine::parse(&word);
    let many_b = pattern(&format!("echo {}b", "*a".repeat(200)));
    let many = pattern(&format!("echo {}*", "*a".repeat(200)));
    assert!(line
        .as_ref()
        .is_ok_and(|l| !many_b.matches(l) && many.matches(l)));
    // A 32 KiB path.
    let path = format!("cat /var/log/nginx/{}x", "a/".repeat(16 * 1024));
    assert!(allows("cat /var/log/nginx/*", &path));
    // Many words.
    let words = format!("git log {}", "-n ".repeat(32 * 1024 / 3));
    assert!(allows("git log ...", &words));
    assert!(!allows("git log -x ...", &words));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn pattern_set_matches_any_of_its_patterns() {
    let set = match PatternSet::parse(["uptime", "systemctl status *", "uptime"]) {
        Ok(set) => set,
        Err(error) => panic!("{error}"),
    };
    let line = |command: &str| match CommandLine::parse(command) {
        Ok(line) => line,
        Err(refusal) => panic!("{refusal}"),
    };
    assert_eq!(set.len(), 2, "duplicates are dropped");
    assert!(set.matches_any(&line("uptime")));
    assert!(set.matches_any(&line("systemctl status nginx")));
    assert!(!set.matches_any(&line("systemctl restart nginx")));
    assert!(!set.is_unrestricted());
    assert!(!set.is_empty());
    assert_eq!(set.to_strings(), ["uptime", "systemctl status *"]);
    assert_eq!(set.iter().count(), 2);
    assert_eq!((&set).into_iter().map(CommandPattern::as_str).count(), 2);

    let empty = PatternSet::new();
    assert!(empty.is_empty());
    assert!(
        !empty.matches_any(&line("uptime")),
        "an empty set allows nothing"
    );

    let mut union = set.clone();
    union.extend(&PatternSet::parse(["*"]).unwrap_or_default());
    assert!(union.is_unrestricted());
    assert!(union.matches_any(&line("id")));

    let collected: PatternSet = [pattern("id"), pattern("id")].into_iter().collect();
    assert_eq!(collected.len(), 1);
}

#[test]
fn assignment_after_the_first_word_can_match() {
    assert!(allows("make *", "make x=1"));
    assert!(!allows("* make", "x=1 make"));
}

#[test]
fn tilde_inside_a_word_can_match() {
    assert!(allows("cp * *", "cp a~b backup~"));
    assert!(!allows("cp * *", "cp ~root/x b"));
}
