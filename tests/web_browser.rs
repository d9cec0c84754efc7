//! The web viewer in a real headless Chromium: a reviewer signs in through
//! the `review@` link, lists and filters sessions, plays a shell session
//! in asciinema-player and jumps to an observed command, follows a live
//! session while its command runs, and approves a held command. Recorded
//! markup stays text, and the page's content security policy lets the
//! player run (no violation in the console). Screenshots of each page are
//! saved under the test's directory (`screenshots/`).
mod common;

use common::*;
use serde_json::{json, Value};

const REVIEWER: &str = "alice";

fn signed_in_browser(b: &Bastion, id: &IdentityKey, port: u16) -> Browser {
    let browser = Browser::start(b.dir());
    browser.goto(&format!("http://127.0.0.1:{port}/sessions"));
    browser.wait_for_text("body", "ssh review@");
    browser.screenshot("signin");
    let link = review_link(b, id, port);
    browser.goto(&format!("http://127.0.0.1:{port}{link}"));
    assert!(
        browser.url().ends_with("/sessions"),
        "signed in lands on the list: {}",
        browser.url()
    );
    browser
}

fn session_links(browser: &Browser) -> usize {
    browser
        .run(
            "return document.querySelectorAll('a[href^=\"/sessions/\"]').length;",
            json!([]),
        )
        .as_u64()
        .unwrap_or(0) as usize
}

#[track_caller]
fn assert_no_policy_violation(browser: &Browser) {
    let console = browser.console();
    assert!(
        !console
            .iter()
            .any(|line| line.contains("Content Security Policy") || line.contains("Uncaught")),
        "{console:#?}"
    );
}

#[test]
fn a_reviewer_lists_filters_plays_a_shell_and_jumps_to_a_command() {
    let id = IdentityKey::generate();
    let setup = shell_setup()
        .identity(REVIEWER, &[ROLE])
        .identity_key(REVIEWER, &id.line)
        .reviewer(REVIEWER);
    let (setup, port) = web_setup(setup);
    let b = Bastion::start(setup);
    let _web = b.start_web(port);

    let agent = b.granted_agent();
    let out = agent.run("echo '<script>window.pwned=1</script><b>bold</b>'");
    assert_eq!(out.code, 0, "{out:?}");
    let exec_id = *session_ids(&b).last().expect("the exec session");

    let term = agent.interactive(None);
    wait_ready(&term);
    term.type_line("echo shell-$((6*7))");
    term.wait_for_prompt_after("shell-42");
    term.type_line("echo second-$((1+1))");
    term.wait_for_prompt_after("second-2");
    term.type_line("echo after-$((2+3))");
    term.wait_for_prompt_after("after-5");
    term.type_line("exit");
    term.wait_exit();
    let shell_id = *session_ids(&b).last().expect("the shell session");
    wait_for_event(&b, "command.observed", |e| {
        e["line"] == "echo after-$((2+3))"
    });

    let browser = signed_in_browser(&b, &id, port);
    browser.wait_for_text("table", AGENT);
    assert!(session_links(&browser) >= 2);
    browser.screenshot("sessions");

    // Filtering by an identity nobody has empties the list; by the agent's
    // brings its sessions back.
    browser.fill("input[name=identity]", "nobody");
    browser.click("form[action=\"/sessions\"] button");
    browser.wait_until(
        "an empty list",
        "return location.search.includes('identity=nobody') && \
         document.querySelectorAll('a[href^=\"/sessions/\"]').length === 0;",
        json!([]),
    );
    browser.fill("input[name=identity]", AGENT);
    browser.click("form[action=\"/sessions\"] button");
    browser.wait_for_text("table", AGENT);
    assert!(session_links(&browser) >= 2);
    // The search finds the shell by a command line observed on its screen.
    browser.fill("input[name=q]", "echo second-");
    browser.click("form[action=\"/sessions\"] button");
    browser.wait_until(
        "only the shell session",
        "const links = [...document.querySelectorAll('a[href^=\"/sessions/\"]')];
         return location.search.includes('q=') && links.length === 1
             && links[0].getAttribute('href') === '/sessions/' + arguments[0];",
        json!([shell_id]),
    );
    browser.screenshot("sessions-search");

    // The shell session plays in the player, from the project's asciicast.
    browser.goto(&format!("http://127.0.0.1:{port}/sessions/{shell_id}"));
    browser.wait_until(
        "the player",
        "return !!window.portcullisPlayer && !!document.querySelector('.ap-term');",
        json!([]),
    );
    browser.run("return window.portcullisPlayer.play();", json!([]));
    browser.wait_for_text(".ap-term", "after-5");
    browser.wait_for_text("#chain", "chain: intact");
    browser.screenshot("session-player");

    // Jump to the observed `echo second-...`: the screen is as it was then,
    // before the command typed after it.
    let markers = browser.text("#markers");
    assert!(markers.contains("echo second-$((1+1))"), "{markers}");
    browser.run(
        "const item = [...document.querySelectorAll('#markers li')]
             .find(li => li.innerText.includes('echo second-'));
         item.querySelector('button').click();",
        json!([]),
    );
    browser.wait_until(
        "the screen at the observed command",
        "const screen = document.querySelector('.ap-term').innerText;
         return screen.includes('echo second-$((1+1))') && !screen.includes('after-5');",
        json!([]),
    );
    browser.screenshot("session-marker");
    assert!(browser.text("#viewers").contains("viewed by alice"));
    assert_no_policy_violation(&browser);

    // Recorded markup is text: the script does not run, the tag is shown.
    browser.goto(&format!("http://127.0.0.1:{port}/sessions/{exec_id}"));
    browser.wait_for_text("#transcript", "<script>window.pwned=1</script><b>bold</b>");
    assert_eq!(
        browser.run("return typeof window.pwned;", json!([])),
        "undefined"
    );
    assert_eq!(
        browser.run(
            "return document.querySelectorAll('#transcript b, #transcript script').length;",
            json!([])
        ),
        0
    );
    browser.screenshot("session-exec");

    // Every read above is on record, with how it was read.
    let forms: Vec<String> = all_events(&b)
        .iter()
        .filter(|e| e["kind"] == "review.viewed" && e["session_viewed"] == shell_id)
        .filter_map(|e| e["form"].as_str().map(str::to_owned))
        .collect();
    assert!(forms.contains(&"page".to_owned()), "{forms:?}");
    assert!(forms.contains(&"asciicast".to_owned()), "{forms:?}");
}

#[test]
fn a_reviewer_follows_a_live_session_and_approves_a_held_command() {
    let id = IdentityKey::generate();
    let setup = Setup::standard()
        .role(
            ROLE,
            Role::on(&[TARGET]).exec(&["echo *"]).ask(&["printf ..."]),
        )
        .identity(REVIEWER, &[ROLE])
        .identity_key(REVIEWER, &id.line)
        .approver(REVIEWER);
    let (setup, port) = web_setup(setup);
    let b = Bastion::start(setup);
    let _web = b.start_web(port);
    let agent = b.granted_agent();
    let browser = signed_in_browser(&b, &id, port);

    std::thread::scope(|s| {
        // Live: the page of a session waiting on a held command follows it
        // as the command is approved (from the CLI), runs and ends.
        let waiting = run_in_background(s, &agent, "printf 'live-%s\\n' 42");
        let request = eventually("a held command", || {
            let list = json_of(&b, "requests", &["--json"]);
            list[0]["id"].as_i64().ok_or_else(|| list.to_string())
        });
        let session = *session_ids(&b).last().expect("the waiting session");
        browser.goto(&format!("http://127.0.0.1:{port}/sessions/{session}"));
        browser.wait_for_text("#state", "open");
        browser.wait_until(
            "the live view",
            "return !!document.querySelector('#live');",
            json!([]),
        );
        b.cli_ok("approve", &[&request.to_string()]);
        browser.wait_for_text("#live", "live-42");
        browser.wait_for_text("#live", "session.end");
        browser.wait_for_text("#state", "ended");
        browser.screenshot("session-live");
        let (out, _) = waiting.join().expect("the ssh thread");
        assert_output(&out, 0, "live-42\n");

        // Approve in the browser: the button on /requests.
        let waiting = run_in_background(s, &agent, "printf 'web-%s' approved");
        let request = eventually("a second held command", || {
            let list = json_of(&b, "requests", &["--json"]);
            list.as_array()
                .and_then(|all| all.iter().find(|r| r["status"] == "pending"))
                .and_then(|r| r["id"].as_i64())
                .ok_or_else(|| list.to_string())
        });
        browser.goto(&format!("http://127.0.0.1:{port}/requests"));
        browser.wait_for_text("body", "printf 'web-%s' approved");
        browser.screenshot("requests");
        browser.click(&format!(
            "form[action=\"/requests/{request}/approve\"] button"
        ));
        let (out, _) = waiting.join().expect("the ssh thread");
        assert_output(&out, 0, "web-approved");
    });
    let approved: Vec<Value> = all_events(&b)
        .into_iter()
        .filter(|e| e["kind"] == "command.approved")
        .collect();
    assert_eq!(approved.len(), 2, "{approved:?}");
    assert_eq!(approved[1]["by"], format!("{REVIEWER} (web)"));
    assert_no_policy_violation(&browser);
}
