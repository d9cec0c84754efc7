//! Command patterns are word-aware: a `*` stands for characters within one
//! word, never for shell syntax, a second word, a `..` path component or
//! something the target's shell would expand (globs, braces, `~`). Each
//! abuse is refused before it reaches the target: exit status 126, one
//! `portcullis: refused:` line, an `exec.refused` row, and what it was
//! after (a secret, a second file, a listing) never comes back.
mod common;

use std::fs;
use std::path::PathBuf;

use common::*;

/// Directories on the target (this machine) that the role's patterns name:
/// `logs` (grep's), `files` (cat's, holding `a`, `b`, `a.txt` and `a b`),
/// and a `secret` beside `files`, outside every pattern.
struct Tree {
    root: tempfile::TempDir,
}

const SECRET: &str = "the-secret-value";

impl Tree {
    fn new() -> Tree {
        let root = tempfile::tempdir().unwrap();
        let files = root.path().join("files");
        let logs = root.path().join("logs");
        fs::create_dir(&files).unwrap();
        fs::create_dir(&logs).unwrap();
        fs::write(files.join("a"), "alpha\n").unwrap();
        fs::write(files.join("b"), "beta\n").unwrap();
        fs::write(files.join("a.txt"), "text\n").unwrap();
        fs::write(files.join("a b"), "spaced\n").unwrap();
        // A tilde expansion of `~root` would match this line.
        fs::write(logs.join("app.log"), "home is /root\n").unwrap();
        fs::write(root.path().join("secret"), format!("{SECRET}\n")).unwrap();
        Tree { root }
    }

    /// `files`, as the patterns name it.
    fn files(&self) -> String {
        self.path("files")
    }

    fn logs(&self) -> String {
        self.path("logs")
    }

    fn secret(&self) -> String {
        self.path("secret")
    }

    fn path(&self, name: &str) -> String {
        self.root.path().join(name).display().to_string()
    }

    fn file(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    /// Replaces `FILES`, `LOGS` and `SECRET` in a command or pattern.
    fn fill(&self, text: &str) -> String {
        text.replace("FILES", &self.files())
            .replace("LOGS", &self.logs())
            .replace("SECRET", &self.secret())
    }
}

/// The standard world with a role allowing exactly these patterns.
fn with_patterns(tree: &Tree) -> Bastion {
    let patterns: Vec<String> = [
        "grep -r * LOGS",
        "cat FILES/*",
        "systemctl status *",
        "echo ...",
        "scp -t FILES/*",
    ]
    .iter()
    .map(|p| tree.fill(p))
    .collect();
    let patterns: Vec<&str> = patterns.iter().map(String::as_str).collect();
    Bastion::start(Setup::standard().role(ROLE, Role::on(&[TARGET]).exec(&patterns)))
}

/// `command` (with the tree's paths filled in) is refused and prints nothing.
#[track_caller]
fn assert_abuse_refused(template: &str) {
    let tree = Tree::new();
    let b = with_patterns(&tree);
    let command = tree.fill(template);
    assert_command_refused(&b.granted_agent(), &command);
}

#[test]
fn comment_after_a_star_cannot_drop_the_rest_of_the_pattern() {
    // grep -r * LOGS: the target's shell would ignore `# LOGS` and search SECRET.
    assert_abuse_refused("grep -r the-secret SECRET # LOGS");
}

#[test]
fn dot_dot_cannot_leave_a_path_pattern() {
    assert_abuse_refused("cat FILES/../secret");
}

#[test]
fn star_does_not_match_a_second_word() {
    assert_abuse_refused("cat FILES/a SECRET");
}

#[test]
fn star_does_not_match_two_service_names() {
    assert_abuse_refused("systemctl status nginx sshd");
}

#[test]
fn glob_star_for_the_target_shell_is_refused() {
    assert_abuse_refused("cat FILES/*.txt");
}

#[test]
fn glob_question_mark_is_refused() {
    assert_abuse_refused("cat FILES/?");
}

#[test]
fn glob_bracket_is_refused() {
    assert_abuse_refused("cat FILES/[ab]");
}

#[test]
fn brace_expansion_is_refused() {
    assert_abuse_refused("cat FILES/{a,b}");
}

#[test]
fn tilde_expansion_is_refused() {
    // `grep -r * LOGS` with `~root` as the star word: the shell would
    // search for `/root`, which app.log holds.
    assert_abuse_refused("grep -r ~root LOGS");
}

#[test]
fn tilde_path_outside_the_pattern_is_refused() {
    assert_abuse_refused("cat ~root/x");
}

#[test]
fn equals_expansion_is_refused() {
    // zsh would expand `=root` to a command's path.
    assert_abuse_refused("grep -r =root LOGS");
}

#[test]
fn environment_assignment_before_the_command_is_refused() {
    assert_abuse_refused("LD_PRELOAD=/tmp/x.so cat FILES/a");
}

#[test]
fn command_separator_after_trailing_words_is_refused() {
    assert_abuse_refused("echo a; id");
}

#[test]
fn trailing_words_pattern_allows_any_further_words() {
    let tree = Tree::new();
    let b = with_patterns(&tree);
    assert_output(&b.granted_agent().run("echo a b c"), 0, "a b c\n");
}

#[test]
fn single_quoted_word_is_one_word_for_a_star() {
    let tree = Tree::new();
    let b = with_patterns(&tree);
    let command = tree.fill("cat 'FILES/a b'");
    assert_output(&b.granted_agent().run(&command), 0, "spaced\n");
}

#[test]
fn dot_dot_in_a_legacy_scp_upload_is_refused() {
    let tree = Tree::new();
    let b = with_patterns(&tree);
    let agent = b.granted_agent();
    let local = b.dir().join("upload.txt");
    fs::write(&local, "escaped\n").unwrap();
    let remote = tree.fill("FILES/../outside.txt");

    let out = legacy_scp_upload(&agent, &local, &remote);

    assert!(!out.status.success(), "the upload succeeded: {out:?}");
    assert!(
        !tree.file("outside.txt").exists(),
        "the file was written outside FILES"
    );
    let command = format!("scp -t {remote}");
    let (_, refused) = wait_for_event(&b, "exec.refused", |e| {
        e["command"].as_str().unwrap_or_default().contains(&remote)
    });
    assert!(
        find_event(&b, "exec.allowed", |e| {
            e["command"].as_str().unwrap_or_default().contains(&remote)
        })
        .is_none(),
        "{command:?} was allowed: {refused}"
    );
}
