//! Observed lines from scripted screens: what a shell echoes, edits, or hides.

use super::Observer;

/// A shell that echoes keys as typed, then runs the line on Enter.
fn session(steps: &[(&str, &str)]) -> Vec<String> {
    let mut o = Observer::new(80, 24);
    let mut lines = Vec::new();
    for (input, output) in steps {
        o.input(input.as_bytes());
        lines.extend(o.output(output.as_bytes()));
    }
    lines
}

#[test]
fn a_typed_line_is_observed_without_its_prompt() {
    let lines = session(&[
        ("", "user@web1:~$ "),
        ("l", "l"),
        ("s", "s"),
        ("\r", "\r\nfile\r\nuser@web1:~$ "),
    ]);
    assert_eq!(lines, ["ls"]);
}

#[test]
fn a_line_sent_in_one_burst_is_read_when_its_echo_arrives() {
    let lines = session(&[("", "$ "), ("echo hi\r", ""), ("", "echo hi\r\nhi\r\n$ ")]);
    assert_eq!(lines, ["echo hi"]);
}

#[test]
fn editing_shows_the_final_line() {
    // "echo tyop", two backspaces (the shell echoes "\b \b"), then "po".
    let lines = session(&[
        ("", "$ "),
        ("echo tyop", "echo tyop"),
        ("\x7f\x7f", "\x08 \x08\x08 \x08"),
        ("po", "po"),
        ("\r", "\r\n$ "),
    ]);
    assert_eq!(lines, ["echo typo"]);
}

#[test]
fn empty_lines_interrupted_lines_and_unechoed_input_are_not_commands() {
    let lines = session(&[
        ("", "$ "),
        ("\r", "\r\n$ "),
        ("abc", "abc"),
        ("\x03", "^C\r\n$ "),
        ("secret\r", "\r\n$ "),
    ]);
    // The password-like line was not echoed: the screen shows nothing.
    assert_eq!(lines, Vec::<String>::new());
}

#[test]
fn full_screen_programs_are_not_observed() {
    let lines = session(&[("", "$ "), ("x", "\x1b[?1049hx"), ("\r", "\r\n")]);
    assert!(lines.is_empty(), "{lines:?}");
}

#[test]
fn a_long_line_wrapping_at_the_bottom_is_whole() {
    let mut o = Observer::new(10, 3);
    o.output(b"a\r\nb\r\n$ ");
    let typed = "echo 0123456789abc";
    o.input(typed.as_bytes());
    o.output(typed.as_bytes());
    o.input(b"\r");
    assert_eq!(o.output(b"\r\n"), [typed]);
}

#[test]
fn absurd_sizes_and_bytes_do_not_panic() {
    let mut o = Observer::new(u32::MAX, 0);
    o.input(b"x\r");
    let noise: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    let _ = o.output(&noise);
    o.resize(0, u32::MAX);
    o.input(b"y\r\r\r");
    let _ = o.output(b"\x1b[999;999H\n\n\n");
}

#[test]
fn a_line_typed_before_the_prompt_is_found_after_the_login_banner() {
    let lines = session(&[
        ("echo ready-$((20+22))\r", ""),
        (
            "",
            "Last login: Sat Nov 28 08:22:30 2026 from 127.0.0.1\r\r\n",
        ),
        ("", "echo ready-$((20+22))\r\n"),
        ("", "$ echo ready-$((20+22))\r\nready-42\r\n$ "),
    ]);
    assert_eq!(lines, ["echo ready-$((20+22))"]);
}

#[test]
fn lines_typed_ahead_are_each_observed() {
    let lines = session(&[
        ("ls\rpwd\r", ""),
        ("", "ls\r\npwd\r\n"),
        ("", "$ ls\r\nfile\r\n"),
    ]);
    assert_eq!(lines, ["ls", "pwd"]);
}

#[test]
fn a_line_recalled_from_history_is_observed() {
    let lines = session(&[("", "$ "), ("\x1b[A", "ls -l"), ("\r", "\r\n")]);
    assert_eq!(lines, ["ls -l"]);
}

#[test]
fn a_prompt_drawn_before_a_typed_ahead_line_is_left_out() {
    use super::strip_prompt;
    assert_eq!(strip_prompt("root@vm:~# echo hi"), "echo hi");
    assert_eq!(strip_prompt("user@web1:~/src$ ls -l"), "ls -l");
    assert_eq!(strip_prompt("$ ls"), "ls");
    assert_eq!(strip_prompt("echo a # b"), "echo a # b");
    assert_eq!(strip_prompt("echo $HOME"), "echo $HOME");
    assert_eq!(strip_prompt("ls>out"), "ls>out");
    let lines = session(&[("ls\r", ""), ("", "$ ls\r\nfile\r\n$ ")]);
    assert_eq!(lines, ["ls"]);
}
