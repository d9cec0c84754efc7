//! The report: printed as it is measured, and saved as Markdown.
//!
//! Invariant: every line printed to the terminal is also in the saved file,
//! so what a reader sees in RESULTS.md is what the run printed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Sizes;

/// One issue-6 target and how this run measured against it.
struct Target {
    name: String,
    measured: String,
    goal: String,
    met: bool,
}

pub struct Report {
    path: PathBuf,
    text: String,
    targets: Vec<Target>,
    failed_checks: Vec<String>,
}

impl Report {
    pub fn new(path: PathBuf) -> Report {
        Report {
            path,
            text: String::new(),
            targets: Vec::new(),
            failed_checks: Vec::new(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn line(&mut self, line: &str) {
        println!("{line}");
        self.text.push_str(line);
        self.text.push('\n');
    }

    pub fn header(&mut self, command: &str, sizes: &Sizes) {
        self.line("# portcullis vs OpenSSH: benchmark report");
        self.line("");
        self.line(&format!("Command: `{command}`"));
        self.line("");
        self.line("## Machine");
        self.line("");
        self.line("```");
        for (label, cmd) in [
            ("date", "date -u +%Y-%m-%dT%H:%M:%SZ"),
            ("git", "git rev-parse --short HEAD 2>/dev/null; git status --porcelain 2>/dev/null | wc -l | sed 's/^/dirty files: /'"),
            ("cpu", "lscpu | grep -E '^(Model name|CPU\\(s\\)|Thread|Core|Hypervisor)' | tr -s ' '"),
            ("aes", "grep -o -w -E 'aes|vaes|sha_ni' /proc/cpuinfo | sort -u | tr '\\n' ' '"),
            ("memory", "free -m | sed -n 2p | awk '{print $2 \" MiB total\"}'"),
            ("kernel", "uname -sr"),
            ("openssh", "ssh -V 2>&1"),
            ("rustc", "rustc -V"),
            ("store fs", "df -T . | tail -1 | awk '{print $2 \" on \" $1}'"),
            ("load avg", "cat /proc/loadavg"),
        ] {
            let value = shell(cmd);
            self.line(&format!("{label:9} {}", value.replace('\n', "\n          ")));
        }
        self.line("```");
        self.line("");
        self.line(&format!(
            "Sizes: download {} MiB, upload {} MiB, {} reps (throughput), {} (connect), \
             {} (exec round-trip); {} idle sessions; {} busy sessions x {} commands; \
             reader pause {} s.",
            sizes.download_bytes >> 20,
            sizes.upload_bytes >> 20,
            sizes.reps,
            sizes.connect_reps,
            sizes.exec_reps,
            sizes.idle_sessions,
            sizes.busy_sessions,
            sizes.busy_commands,
            sizes.pause.as_secs()
        ));
        self.line("");
    }

    pub fn phase_started(&mut self, name: &str) {
        eprintln!("bench: phase {name} (load avg {})", load_average());
    }

    pub fn section(&mut self, title: &str) {
        self.line(&format!("## {title}"));
        self.line("");
        self.line(&format!("_load average at start: {}_", load_average()));
        self.line("");
    }

    pub fn subsection(&mut self, title: &str) {
        self.line(&format!("### {title}"));
        self.line("");
    }

    pub fn note(&mut self, text: &str) {
        self.line(text);
        self.line("");
    }

    pub fn table(&mut self, headers: &[&str], rows: &[Vec<String>]) {
        self.line(&format!("| {} |", headers.join(" | ")));
        self.line(&format!(
            "|{}|",
            headers
                .iter()
                .map(|_| " --- ")
                .collect::<Vec<_>>()
                .join("|")
        ));
        for row in rows {
            self.line(&format!("| {} |", row.join(" | ")));
        }
        self.line("");
    }

    /// Records how a measured figure compares with its issue-6 target.
    pub fn target(&mut self, name: &str, measured: String, goal: &str, met: bool) {
        self.targets.push(Target {
            name: name.to_string(),
            measured,
            goal: goal.to_string(),
            met,
        });
    }

    /// A correctness check (sessions, records, bytes): a failure fails the run.
    pub fn check(&mut self, what: &str, result: Result<String, String>) {
        match result {
            Ok(detail) => self.line(&format!("- check ok: {what}: {detail}")),
            Err(problem) => {
                self.line(&format!("- **CHECK FAILED**: {what}: {problem}"));
                self.failed_checks.push(format!("{what}: {problem}"));
            }
        }
    }

    pub fn checks_passed(&self) -> bool {
        self.failed_checks.is_empty()
    }

    pub fn footer(&mut self) {
        self.line("");
        self.line("## Targets");
        self.line("");
        let rows: Vec<Vec<String>> = self
            .targets
            .iter()
            .map(|t| {
                vec![
                    t.name.clone(),
                    t.measured.clone(),
                    t.goal.clone(),
                    if t.met { "met" } else { "**missed**" }.to_string(),
                ]
            })
            .collect();
        self.table(&["target", "measured", "goal", ""], &rows);
        let checks = if self.failed_checks.is_empty() {
            "all store checks passed".to_string()
        } else {
            format!("{} store checks FAILED", self.failed_checks.len())
        };
        self.line(&format!(
            "_load average at the end: {}; {checks}_",
            load_average()
        ));
    }

    pub fn save(&self) {
        if let Some(dir) = self.path.parent() {
            let _ = fs::create_dir_all(dir);
        }
        if let Err(e) = fs::write(&self.path, &self.text) {
            eprintln!("bench: cannot write {}: {e}", self.path.display());
        }
    }
}

fn shell(cmd: &str) -> String {
    Command::new("sh")
        .args(["-c", cmd])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|e| format!("<{e}>"))
}

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
