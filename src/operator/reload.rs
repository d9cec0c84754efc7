//! `portcullis reload`: asks the server writing the config's store to
//! re-read its config and policy (SIGHUP), and reports what it did from
//! the event the server records.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rustix::process::{kill_process, Pid, Signal};

use crate::audit::{Entry, Event, Reader};
use crate::config::Config;
use crate::gateway::pidfile;

/// How long the server gets to answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// True when the server applied the new policy.
pub fn run(config: &Config, out: &mut dyn Write) -> anyhow::Result<bool> {
    let pid = pidfile::running_server(&config.store).map_err(anyhow::Error::msg)?;
    let reader = Reader::open(&config.store)
        .with_context(|| format!("reading the store {}", config.store.display()))?;
    let before = reader.last_seq()?;
    let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        bail!("process id {pid} is out of range");
    };
    kill_process(pid, Signal::HUP).with_context(|| format!("signalling process {pid:?}"))?;
    let deadline = Instant::now() + ANSWER_WITHIN;
    let mut after = before;
    while Instant::now() < deadline {
        for record in reader.events_after(after, None, 1000)? {
            after = record.seq;
            match record.entry {
                Entry::Event(Event::PolicyReloaded {
                    sessions_ended,
                    restart_needed,
                }) => {
                    writeln!(out, "reloaded: the new policy is in force")?;
                    if !sessions_ended.is_empty() {
                        writeln!(
                            out,
                            "sessions ended (not covered any more): {sessions_ended:?}"
                        )?;
                    }
                    if !restart_needed.is_empty() {
                        writeln!(
                            out,
                            "changed settings that apply from the next start: {}",
                            restart_needed.join(", ")
                        )?;
                    }
                    return Ok(true);
                }
                Entry::Event(Event::PolicyReloadRefused { error }) => {
                    writeln!(out, "not reloaded: the policy in force stays\n{error}")?;
                    return Ok(false);
                }
                _ => {}
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!(
        "the server (pid {pid:?}) recorded no reload within {}s",
        ANSWER_WITHIN.as_secs()
    )
}
