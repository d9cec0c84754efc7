//! The words of the `grant` login's command line: split like a shell
//! would, then parsed.
//!
//! Invariant: a command that does not parse as written is refused, with
//! one line that says why; a stray word after an option (what a pattern
//! with spaces quoted only once turns into) is refused with the quoting
//! that would have worked, never guessed back into a request.

use clap::{Parser, Subcommand};

use super::{one_line, GrantCommand, Output, RequestArgs, RequestError, MAX_ECHO};

/// The word that asks for JSON (`request --json`, `status ID --json`).
const JSON_FLAG: &str = "--json";

#[derive(Parser, Debug)]
#[command(name = "grant", no_binary_name = true, disable_help_subcommand = true)]
struct GrantCommandLine {
    #[command(subcommand)]
    command: Words,
}

#[derive(Subcommand, Debug)]
enum Words {
    /// Ask for a task certificate; the task public key comes on stdin
    /// (or, with `request --json` alone, the whole request as JSON)
    Request(RequestArgs),
    /// The state of a request; prints its cert once issued
    Status {
        id: i64,
        /// Answer with one JSON object on stdout
        #[arg(long)]
        json: bool,
    },
    /// Who you are, and the roles you may request
    Whoami,
}

/// Splits and parses what the client sent as its command.
pub fn parse(command: &str) -> Result<GrantCommand, RequestError> {
    let words = shell_words::split(command)
        .map_err(|e| RequestError::Syntax(format!("cannot split the command: {e}")))?;
    if words.first().is_some_and(|w| w == "request") && words.iter().any(|w| w == JSON_FLAG) {
        // A JSON request has one source: a flag beside it would be a
        // second, and which one wins would be a guess.
        if words.len() != 2 {
            return Err(RequestError::Syntax(
                "request --json takes the whole request as JSON on stdin: give it no other words"
                    .to_owned(),
            ));
        }
        return Ok(GrantCommand::RequestJson);
    }
    match GrantCommandLine::try_parse_from(&words) {
        Ok(line) => Ok(match line.command {
            Words::Request(args) => GrantCommand::Request(args),
            Words::Status { id, json } => GrantCommand::Status {
                id,
                output: if json { Output::Json } else { Output::Text },
            },
            Words::Whoami => GrantCommand::Whoami,
        }),
        Err(e) => Err(RequestError::Syntax(
            stray_word(&words).unwrap_or_else(|| first_line(&e.to_string())),
        )),
    }
}

/// How a refusal of `command` should be answered: in JSON when the client
/// asked for JSON, even if nothing else of the command parsed.
pub fn output_of(command: &str) -> Output {
    let asked = shell_words::split(command).is_ok_and(|words| words.iter().any(|w| w == JSON_FLAG));
    if asked {
        Output::Json
    } else {
        Output::Text
    }
}

/// The first line of clap's message, with the list it announces (`the
/// following required arguments were not provided: --ttl <TTL>`).
fn first_line(text: &str) -> String {
    let mut lines = text.lines().map(str::trim).skip_while(|l| l.is_empty());
    let first = lines.next().unwrap_or("invalid request");
    let mut line = first.trim_start_matches("error: ").to_owned();
    if line.ends_with(':') {
        let listed: Vec<&str> = lines.take_while(|l| !l.is_empty()).collect();
        line = format!("{line} {}", listed.join(", "));
    }
    one_line(line.trim_end(), MAX_ECHO)
}

/// The first word of a request that is no option and no option's value,
/// explained: `--exec systemctl status '*'` is what the client's shell
/// makes of `--exec "systemctl status *"`.
fn stray_word(words: &[String]) -> Option<String> {
    if words.first().map(String::as_str) != Some("request") {
        return None;
    }
    let rest = words.get(1..)?;
    let mut last: Option<(&str, &str)> = None;
    let mut i = 0;
    while let Some(word) = rest.get(i) {
        if word == "--" {
            return None;
        }
        if let Some(option) = word.strip_prefix("--") {
            if let Some((name, value)) = option.split_once('=') {
                last = Some((name, value));
                i += 1;
            } else {
                match rest.get(i + 1).filter(|v| !v.starts_with('-')) {
                    Some(value) => {
                        last = Some((option, value));
                        i += 2;
                    }
                    None => {
                        last = None;
                        i += 1;
                    }
                }
            }
            continue;
        }
        if word.starts_with('-') {
            last = None;
            i += 1;
            continue;
        }
        let (option, value) = last?;
        // The words the option's value was split into, up to the next option.
        let split: Vec<&str> = std::iter::once(value)
            .chain(
                rest.iter()
                    .skip(i)
                    .map(String::as_str)
                    .take_while(|w| !w.starts_with('-')),
            )
            .collect();
        return Some(hint(option, value, word, &split.join(" ")));
    }
    None
}

fn hint(option: &str, value: &str, word: &str, joined: &str) -> String {
    let head = format!(
        "unexpected word {:?} after --{option} {}",
        one_line(word, MAX_ECHO),
        one_line(&shell_words::quote(value), MAX_ECHO)
    );
    let what = match option {
        "exec" => "a pattern",
        "reason" | "task" => "a value",
        _ => return format!("{head}: --{option} takes one word"),
    };
    format!(
        "{head}: quote {what} with spaces twice (--{option} {}) or use request --json",
        one_line(&twice_quoted(joined), MAX_ECHO)
    )
}

/// `text` as the client's shell must see it for the bastion's split to give
/// it back as one word: single-quoted for the bastion, inside double quotes
/// for the client's shell.
fn twice_quoted(text: &str) -> String {
    let inner = shell_words::quote(text);
    let mut out = String::from('"');
    for c in inner.chars() {
        if matches!(c, '"' | '\\' | '$' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(command: &str) -> String {
        match parse(command) {
            Err(RequestError::Syntax(line)) => line,
            other => panic!("{command}: expected a syntax refusal, got {other:?}"),
        }
    }

    #[test]
    fn request_json_is_the_two_words_alone() {
        assert!(matches!(
            parse("request --json"),
            Ok(GrantCommand::RequestJson)
        ));
        assert!(matches!(
            parse(" request   --json "),
            Ok(GrantCommand::RequestJson)
        ));
        let line = refusal("request --json --role ops");
        assert!(line.contains("no other words"), "{line}");
        assert_eq!(output_of("request --json --role ops"), Output::Json);
        assert_eq!(output_of("request --role ops"), Output::Text);
    }

    #[test]
    fn status_takes_json() {
        assert!(matches!(
            parse("status 7 --json"),
            Ok(GrantCommand::Status {
                id: 7,
                output: Output::Json
            })
        ));
        assert!(matches!(
            parse("status 7"),
            Ok(GrantCommand::Status {
                id: 7,
                output: Output::Text
            })
        ));
    }

    #[test]
    fn a_pattern_quoted_once_is_refused_with_the_quoting_that_works() {
        // What `ssh grant@b request ... --exec "systemctl status *"` sends.
        let line = refusal("request --role r --ttl 10m --exec systemctl status '*' --task T");
        assert_eq!(
            line,
            r#"unexpected word "status" after --exec systemctl: quote a pattern with spaces twice (--exec "'systemctl status *'") or use request --json"#
        );
        let line = refusal("request --role r --ttl 10m --reason=nginx returns 502");
        assert!(
            line.contains(r#"after --reason nginx"#)
                && line.contains(r#"(--reason "'nginx returns 502'")"#),
            "{line}"
        );
        let line = refusal("request --role r --ttl 10m --wait 5 more");
        assert_eq!(
            line,
            r#"unexpected word "more" after --wait 5: --wait takes one word"#
        );
    }

    #[test]
    fn the_hint_quotes_what_the_shells_would_take_apart() {
        assert_eq!(
            twice_quoted("echo it's $HOME"),
            r#""'echo it'\\''s \$HOME'""#
        );
        let line = refusal("request --role r --ttl 5m --exec \"a\nb\" c");
        assert!(!line.contains('\n'), "{line}");
        assert!(line.contains(r#""c""#), "{line}");
    }

    #[test]
    fn other_mistakes_keep_clap_s_one_line() {
        let line = refusal("request stray --role r --ttl 5m");
        assert!(line.contains("stray") && !line.contains('\n'), "{line}");
        let line = refusal("request --role r");
        assert!(line.contains("--ttl") && !line.contains('\n'), "{line}");
    }
}
