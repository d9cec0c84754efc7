use crate::policy::{CommandPattern, PatternError, PatternSet};

fn pattern(text: &str) -> CommandPattern {
    match CommandPattern::parse(text) {
        Ok(pattern) => pattern,
        Err(error) => panic!("{text:?} should parse: {error}"),
    }
}

#[test]
fn wildcard_matches_plain_arguments() {
    let status = pattern("systemctl status *");
    assert!(status.matches("systemctl status nginx"));
    assert!(status.matches("systemctl status nginx.service --no-pager -n 50"));
    assert!(
        status.matches("systemctl status "),
        "a star may match nothing"
    );
    assert!(
        !status.matches("systemctl status"),
        "the literal space is required"
    );
}

#[test]
fn wildcard_does_not_match_shell_syntax() {
    let status = pattern("systemctl status *");
    for command in [
        "systemctl status nginx; rm -rf /",
        "systemctl status nginx && rm -rf /",
        "systemctl status nginx & rm -rf /",
        "systemctl status nginx | sh",
        "systemctl status nginx || true",
        "systemctl status $(rm -rf /)",
        "systemctl status ${HOME}",
        "systemctl status `rm -rf /`",
        "systemctl status nginx\nrm -rf /",
        "systemctl status nginx\rrm -rf /",
        "systemctl status 'nginx'",
        "systemctl status \"nginx\"",
        "systemctl status nginx\\",
        "systemctl status (nginx)",
        "systemctl status nginx > /etc/passwd",
        "systemctl status nginx < /etc/shadow",
    ] {
        assert!(!status.matches(command), "{command:?} must be refused");
    }
}

#[test]
fn wildcard_does_not_match_control_characters() {
    let status = pattern("systemctl status *");
    for command in [
        "systemctl status \0nginx",
        "systemctl status \tnginx",
        "systemctl status \x1b[2J",
        "systemctl status \x7f",
    ] {
        assert!(!status.matches(command), "{command:?} must be refused");
    }
}

#[test]
fn exact_pattern_matches_only_itself() {
    let restart = pattern("sudo systemctl restart nginx");
    assert!(restart.matches("sudo systemctl restart nginx"));
    assert!(!restart.matches("sudo systemctl restart nginx "));
    assert!(!restart.matches(" sudo systemctl restart nginx"));
    assert!(!restart.matches("sudo systemctl restart nginx; id"));
    assert!(!restart.matches("sudo systemctl restart"));
}

#[test]
fn exact_pattern_may_contain_shell_syntax_written_by_the_operator() {
    let count = pattern("ls | wc -l");
    assert!(count.matches("ls | wc -l"));
    assert!(!count.matches("ls | wc -l; id"));
}

#[test]
fn literal_shell_syntax_in_a_wildcard_pattern_is_allowed_only_where_written() {
    let tail = pattern("journalctl -u * | tail -n 50");
    assert!(tail.matches("journalctl -u nginx | tail -n 50"));
    assert!(!tail.matches("journalctl -u nginx; id | tail -n 50"));
    assert!(!tail.matches("journalctl -u nginx | id | tail -n 50"));
}

#[test]
fn pattern_is_anchored_at_both_ends() {
    let ls = pattern("ls *");
    assert!(!ls.matches("xls /tmp"));
    assert!(!pattern("* /tmp").matches("ls /tmp/x"));
    assert!(!pattern("uptime").matches("uptime; id"));
}

#[test]
fn lone_star_allows_any_command() {
    let any = pattern("*");
    assert!(any.is_unrestricted());
    for command in ["", "uptime", "rm -rf / ; echo $(id) | sh", "a\nb"] {
        assert!(any.matches(command), "{command:?}");
    }
}

#[test]
fn several_stars_keep_the_restriction() {
    let copy = pattern("cp * *");
    assert!(copy.matches("cp a b"));
    assert!(copy.matches("cp a b c"), "a star may span spaces");
    assert!(!copy.matches("cp a; b"));
    let double = pattern("**");
    assert!(!double.is_unrestricted());
    assert!(double.matches("anything plain"));
    assert!(!double.matches("a;b"));
    let logs = pattern("tail -n * /var/log/*.log");
    assert!(logs.matches("tail -n 20 /var/log/syslog.log"));
    assert!(!logs.matches("tail -n 20 /var/log/$(id).log"));
}

#[test]
fn prefix_and_suffix_may_not_overlap() {
    let p = pattern("ab*ba");
    assert!(!p.matches("aba"));
    assert!(p.matches("abba"));
    assert!(p.matches("ab-ba"));
}

#[test]
fn repeated_middle_pieces_are_found() {
    assert!(pattern("x*aa*y").matches("xaaay"));
    assert!(pattern("*;a;*").matches("x;a;y"));
    assert!(!pattern("x*;a;*y").matches("x;a;a;y"));
}

#[test]
fn empty_pattern_is_rejected() {
    assert_eq!(CommandPattern::parse(""), Err(PatternError::Empty));
    assert_eq!(PatternSet::parse(["ls", ""]), Err(PatternError::Empty));
}

#[test]
fn long_commands_are_matched_quickly() {
    // Many stars against 64 KiB: a backtracking matcher would not finish.
    let command = "a".repeat(64 * 1024);
    let many = pattern(&format!("{}b", "*a".repeat(200)));
    assert!(!many.matches(&command));
    let fits = pattern(&format!("{}*", "*a".repeat(200)));
    assert!(fits.matches(&command));
}

#[test]
fn pattern_set_matches_any_of_its_patterns() {
    let set = match PatternSet::parse(["uptime", "systemctl status *", "uptime"]) {
        Ok(set) => set,
        Err(error) => panic!("{error}"),
    };
    assert_eq!(set.len(), 2, "duplicates are dropped");
    assert!(set.matches_any("uptime"));
    assert!(set.matches_any("systemctl status nginx"));
    assert!(!set.matches_any("systemctl restart nginx"));
    assert!(!set.is_unrestricted());
    assert!(!set.is_empty());
    assert_eq!(set.to_strings(), ["uptime", "systemctl status *"]);

    let empty = PatternSet::new();
    assert!(empty.is_empty());
    assert!(!empty.matches_any(""), "an empty set allows nothing");

    let mut union = set.clone();
    union.extend(&PatternSet::parse(["*"]).unwrap_or_default());
    assert!(union.is_unrestricted());
    assert!(union.matches_any("id; id"));
}
