//! A real headless Chromium (Debian's `chromium`), driven over WebDriver
//! through Debian's `chromedriver`: the browser tests of the web viewer
//! click, type and read pages as a reviewer does.
//!
//! Chromium runs with its own empty profile in the test's directory, no
//! sandbox (tests run as root), and without its background networking
//! (this machine has no network beyond loopback).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use super::{free_port, Daemon};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long a page has to reach a state a test waits for.
const WAIT: Duration = Duration::from_secs(15);

pub struct Browser {
    driver: ureq::Agent,
    base: String,
    screenshots: PathBuf,
    _chromedriver: Daemon,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session; screenshots
    /// go to `dir/screenshots`.
    pub fn start(dir: &Path) -> Browser {
        let port = free_port();
        let mut chromedriver = Daemon::spawn(
            Command::new(CHROMEDRIVER).arg(format!("--port={port}")),
            &dir.join("chromedriver.log"),
        );
        if let Err(failure) = chromedriver.wait_listening(port) {
            panic!(
                "chromedriver did not start ({failure:?}); is Debian's chromium-driver installed?"
            );
        }
        let profile = dir.join("chromium-profile");
        fs::create_dir_all(&profile).expect("profile directory");
        let screenshots = dir.join("screenshots");
        fs::create_dir_all(&screenshots).expect("screenshot directory");
        let driver: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let mut browser = Browser {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            screenshots,
            _chromedriver: chromedriver,
        };
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,1000",
        ];
        let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let session = browser.call(
            "POST",
            "/session",
            json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
                "goog:loggingPrefs": {"browser": "ALL"},
            }}}),
        );
        let id = session["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {session}"))
            .to_owned();
        browser.base = format!("{}/session/{id}", browser.base);
        browser
    }

    /// One WebDriver command; its `value`.
    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.base);
        let answer = match method {
            "GET" => self.driver.get(&url).call(),
            "DELETE" => self.driver.delete(&url).call(),
            _ => self
                .driver
                .post(&url)
                .header("Content-Type", "application/json")
                .send(body.to_string()),
        };
        let mut answer = answer.unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let text = answer
            .body_mut()
            .read_to_string()
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let value: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}: {text}"));
        if let Some(error) = value["value"]["error"].as_str() {
            panic!(
                "WebDriver {method} {path}: {error}: {}",
                value["value"]["message"]
            );
        }
        value["value"].clone()
    }

    pub fn goto(&self, url: &str) {
        self.call("POST", "/url", json!({ "url": url }));
    }

    pub fn url(&self) -> String {
        self.call("GET", "/url", Value::Null)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the
    /// page; a returned promise is awaited.
    pub fn run(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            json!({ "script": script, "args": args }),
        )
    }

    /// The visible text of the first element matching `css` ("" if none).
    pub fn text(&self, css: &str) -> String {
        self.run(
            "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';",
            json!([css]),
        )
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// Waits until `script` returns true; panics with `what` and the page's
    /// text after the wait.
    pub fn wait_until(&self, what: &str, script: &str, args: Value) {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if self.run(script, args.clone()) == Value::Bool(true) {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "the page never showed {what}\nurl {}\n{}\nbrowser log: {:?}",
            self.url(),
            self.text("body"),
            self.console()
        );
    }

    /// Waits until the element `css` shows text containing `needle`.
    pub fn wait_for_text(&self, css: &str, needle: &str) {
        self.wait_until(
            &format!("{needle:?} in {css}"),
            "const e = document.querySelector(arguments[0]); \
             return !!e && e.innerText.includes(arguments[1]);",
            json!([css, needle]),
        );
    }

    fn element(&self, css: &str) -> String {
        let found = self.call(
            "POST",
            "/element",
            json!({"using": "css selector", "value": css}),
        );
        found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_owned()
    }

    pub fn click(&self, css: &str) {
        let id = self.element(css);
        self.call("POST", &format!("/element/{id}/click"), json!({}));
    }

    /// Types `text` into the input `css` (after clearing it).
    pub fn fill(&self, css: &str, text: &str) {
        let id = self.element(css);
        self.call("POST", &format!("/element/{id}/clear"), json!({}));
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            json!({ "text": text }),
        );
    }

    /// Saves the window as `NAME.png` in the screenshot directory (and in
    /// `PORTCULLIS_SCREENSHOT_DIR` when set, for the README's pictures).
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let data = self.call("GET", "/screenshot", Value::Null);
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().unwrap_or_default())
            .expect("a base64 PNG");
        let path = self.screenshots.join(format!("{name}.png"));
        fs::write(&path, &png).expect("write the screenshot");
        if let Some(dir) = std::env::var_os("PORTCULLIS_SCREENSHOT_DIR") {
            let _ = fs::write(Path::new(&dir).join(format!("{name}.png")), &png);
        }
        path
    }

    /// What the page wrote to its console (errors, CSP reports) so far.
    pub fn console(&self) -> Vec<String> {
        let logs = self.call("POST", "/se/log", json!({"type": "browser"}));
        logs.as_array()
            .map(|entries| {
                entries
                    .iter()
                    .filter_map(|e| e["message"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let url = self.base.clone();
        let _ = self.driver.delete(&url).call();
    }
}
