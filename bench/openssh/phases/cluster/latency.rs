//! Connect latency and exec round-trip, SQLite bastion vs cluster replica,
//! interleaved run by run.

use std::path::Path;
use std::process::Command;

use crate::mux::{exec_samples, Master};
use crate::procs::timed;
use crate::report::Report;
use crate::stats::{ratio, Samples};

use super::setup::{ClusterLab, REPLICA_A, SQLITE, SQLITE_DIRECT};

/// The hosts compared, with their labels; the ratio column divides by the
/// second (SQLite through the same balancer as the replica).
const HOSTS: [(&str, &str); 3] = [
    (SQLITE_DIRECT, "SQLite, direct (no balancer)"),
    (SQLITE, "SQLite, via HAProxy"),
    (REPLICA_A, "PostgreSQL replica a, via HAProxy"),
];
const BASELINE: usize = 1;

/// `ssh -F CONFIG HOST COMMAND`.
pub fn ssh(config: &Path, host: &str, command: &str) -> Command {
    let mut cmd = Command::new("ssh");
    cmd.arg("-F").arg(config).arg(host).arg(command);
    cmd
}

/// Returns the runs that opened a session on (sqlite, replica a).
pub fn connect(cluster: &ClusterLab, reps: usize, report: &mut Report) -> (usize, usize) {
    report.subsection(&format!(
        "Connect latency (`ssh HOST true`, whole connection, {reps} runs each)"
    ));
    let mut samples = vec![Samples::default(); HOSTS.len()];
    let mut opened = [0usize; HOSTS.len()];
    let mut errors = Vec::new();
    // One warm-up each, then interleaved.
    for rep in 0..=reps {
        for (i, (host, _)) in HOSTS.iter().enumerate() {
            match timed(&mut ssh(&cluster.ssh_config, host, "true")) {
                Ok(t) => {
                    opened[i] += 1;
                    if rep > 0 {
                        samples[i].push(t.as_secs_f64() * 1e3);
                    }
                }
                Err(e) => errors.push(format!("{host}: {e}")),
            }
        }
    }
    table(report, &samples, "connect");
    for e in errors.iter().take(5) {
        report.note(&format!("error: {e}"));
    }
    if !errors.is_empty() {
        report.check(
            "cluster connect: every run succeeded",
            Err(errors.join("; ")),
        );
    }
    (opened[1], opened[2])
}

/// One ControlMaster per host, then `ssh -S ctl HOST true` interleaved.
pub fn exec_round_trip(cluster: &ClusterLab, reps: usize, dir: &Path, report: &mut Report) {
    report.subsection(&format!(
        "Exec round-trip on an open connection (`ssh -S ctl HOST true`, {reps} runs each)"
    ));
    let _ = std::fs::create_dir_all(dir);
    let mut masters = Vec::new();
    for (i, (host, _)) in HOSTS.iter().enumerate() {
        match Master::open_at(&cluster.ssh_config, host, dir.join(format!("c{i}"))) {
            Ok(m) => masters.push(m),
            Err(e) => {
                report.check("cluster exec round-trip: ControlMaster", Err(e));
                return;
            }
        }
    }
    let (samples, errors) = exec_samples(&masters, reps);
    drop(masters);
    table(report, &samples, "exec");
    report.note(
        "Each run includes starting the `ssh` mux client process. Admission (the \
         PostgreSQL transaction) happens once per connection, so an exec on an \
         open connection is not expected to touch the database.",
    );
    for e in errors.iter().take(5) {
        report.note(&format!("error: {e}"));
    }
    if !errors.is_empty() {
        report.check(
            "cluster exec round-trip: every run succeeded",
            Err(errors.join("; ")),
        );
    }
}

/// p50/p99/max in ms and both ratios to the SQLite bastion behind HAProxy.
fn table(report: &mut Report, samples: &[Samples], what: &str) {
    let base = &samples[BASELINE];
    let rows: Vec<Vec<String>> = HOSTS
        .iter()
        .zip(samples)
        .map(|((_, label), s)| {
            vec![
                label.to_string(),
                format!("{:.1}", s.median()),
                format!("{:.1}", s.percentile(99.0)),
                format!("{:.1}", s.max()),
                ratio(s.median(), base.median()),
                ratio(s.percentile(99.0), base.percentile(99.0)),
            ]
        })
        .collect();
    report.table(
        &[
            "bastion",
            "p50 ms",
            "p99 ms",
            "max ms",
            "p50 vs SQLite (HAProxy)",
            "p99 vs SQLite (HAProxy)",
        ],
        &rows,
    );
    let pg = &samples[HOSTS.len() - 1];
    report.note(&format!(
        "{what}: PostgreSQL/SQLite (both via HAProxy): p50 {}, p99 {} \
         ({:+.1} ms at p50)",
        ratio(pg.median(), base.median()),
        ratio(pg.percentile(99.0), base.percentile(99.0)),
        pg.median() - base.median()
    ));
}
