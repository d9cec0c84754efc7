//! The cluster's cost: what sharing control state in PostgreSQL adds to
//! admission, against the SQLite-only bastion of today.
//!
//! 1. Connect latency (`ssh HOST true`, whole connection) and exec
//!    round-trip on an open ControlMaster connection: SQLite bastion vs
//!    replica `a`, both through the same HAProxy, interleaved; p50/p99 and
//!    the PostgreSQL/SQLite ratio.
//! 2. Sessions per second admitted: N clients opening sessions in a loop
//!    for T seconds, against the SQLite bastion, against replica `a` alone
//!    and against both replicas (HAProxy round-robin), interleaved rounds.
//!
//! Afterwards every session is checked: in the bastions' own stores, and
//! for the replicas in the cluster's session index in PostgreSQL.

mod latency;
mod rate;
mod setup;

use std::path::Path;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use crate::lab::Lab;
use crate::report::Report;
use crate::stats::ratio;
use crate::Sizes;

use rate::{burst, Burst};
use setup::{ClusterLab, REPLICA_A, SPREAD, SQLITE};

/// The sessions/s targets, with their labels.
const RATE_HOSTS: [(&str, &str); 3] = [
    (SQLITE, "SQLite bastion"),
    (REPLICA_A, "PostgreSQL, replica a alone"),
    (SPREAD, "PostgreSQL, replicas a+b (round-robin)"),
];

pub fn run(lab: &Lab, sizes: &Sizes, report: &mut Report) {
    report.section("Cluster: PostgreSQL vs SQLite");
    let cluster = match ClusterLab::start(lab) {
        Ok(cluster) => cluster,
        Err(e) => {
            report.check("cluster: PostgreSQL, replicas and HAProxy started", Err(e));
            return;
        }
    };
    report.note(&format!(
        "{} in the lab directory, durability left at the server's defaults; replicas `a` and `b` \
         with `[cluster]` on it, sharing the lab's host keys, CAs and policy; a second \
         SQLite-only bastion with the same config; HAProxy (PROXY v2) in front of all \
         three, `trusted_proxies = [\"127.0.0.1/32\"]` on each. Everything on one machine.",
        cluster.pg.describe()
    ));
    let (connect_sqlite, connect_a) = latency::connect(&cluster, sizes.connect_reps, report);
    report.save();
    latency::exec_round_trip(&cluster, sizes.exec_reps, &lab.dir().join("mux"), report);
    report.save();
    let rated = sessions_per_second(&cluster, sizes, report);
    // Each ControlMaster above was one session more on each side.
    let sqlite_expected = connect_sqlite + 1 + rated[0].sessions;
    let pg_expected = connect_a + 1 + rated[1].sessions + rated[2].sessions;
    check_recorded(
        &cluster,
        sqlite_expected,
        pg_expected,
        rated[2].sessions,
        report,
    );
}

fn sessions_per_second(cluster: &ClusterLab, sizes: &Sizes, report: &mut Report) -> Vec<Burst> {
    let (clients, length, rounds) = (
        sizes.cluster_clients,
        sizes.cluster_seconds,
        sizes.cluster_rounds,
    );
    report.subsection(&format!(
        "Sessions per second admitted ({clients} clients, each `ssh HOST true` back to \
         back, {} s x {rounds} rounds per bastion, interleaved)",
        length.as_secs()
    ));
    let errors = Mutex::new(Vec::new());
    let mut totals = vec![Burst::default(); RATE_HOSTS.len()];
    for _ in 0..rounds {
        for (i, (host, _)) in RATE_HOSTS.iter().enumerate() {
            totals[i].add(burst(cluster, host, clients, length, &errors));
            // Let the last sessions' end records and heartbeats settle.
            thread::sleep(Duration::from_millis(500));
        }
    }
    let sqlite = totals[0].per_second();
    let rows: Vec<Vec<String>> = RATE_HOSTS
        .iter()
        .zip(&totals)
        .map(|((_, label), t)| {
            vec![
                label.to_string(),
                t.sessions.to_string(),
                format!("{:.1}", t.seconds),
                format!("{:.1}", t.per_second()),
                ratio(t.per_second(), sqlite),
                t.errors.to_string(),
            ]
        })
        .collect();
    report.table(
        &[
            "bastion",
            "sessions",
            "seconds",
            "sessions/s",
            "vs SQLite",
            "errors",
        ],
        &rows,
    );
    report.note(
        "The clients run on the same 2 cores as the bastions and the database: \
         each session is a whole `ssh` process (key exchange, certificate \
         authentication, one exec) on the client side too, so this is the rate \
         the machine admits, not a bastion alone.",
    );
    let errors = errors.into_inner().unwrap_or_default();
    for e in &errors {
        report.note(&format!("error: {e}"));
    }
    if totals.iter().any(|t| t.errors > 0) {
        report.check(
            "cluster sessions/s: every session succeeded",
            Err(errors.join("; ")),
        );
    }
    totals
}

/// Every session recorded and ended: in the SQLite bastion's store, in
/// the replicas' stores, and in the cluster's session index.
fn check_recorded(
    cluster: &ClusterLab,
    sqlite_expected: usize,
    pg_expected: usize,
    spread: usize,
    report: &mut Report,
) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let counts = loop {
        let counts = (
            ended_sessions(&cluster.sqlite.store()),
            ended_sessions(&cluster.a.store()),
            ended_sessions(&cluster.b.store()),
        );
        let settled = match &counts {
            (Ok(s), Ok(a), Ok(b)) => {
                s.0 == s.1 && a.0 == a.1 && b.0 == b.1 && s.0 >= sqlite_expected
            }
            _ => false,
        };
        if settled || Instant::now() > deadline {
            break counts;
        }
        thread::sleep(Duration::from_millis(200));
    };
    let (Ok(sqlite), Ok(a), Ok(b)) = counts else {
        let problem = format!("{counts:?}");
        report.check("cluster: reading the bastions' stores", Err(problem));
        return;
    };
    report.check(
        "cluster: every SQLite bastion session recorded and ended",
        expect_sessions(sqlite, sqlite_expected),
    );
    report.check(
        "cluster: every replica session recorded and ended (stores of a and b)",
        expect_sessions((a.0 + b.0, a.1 + b.1), pg_expected),
    );
    let index = cluster
        .pg
        .psql("SELECT count(*), count(ended_at_us) FROM sessions")
        .and_then(|line| {
            let mut parts = line.split('|').map(|n| n.trim().parse::<usize>());
            match (parts.next(), parts.next()) {
                (Some(Ok(all)), Some(Ok(ended))) => Ok((all, ended)),
                _ => Err(format!("unexpected psql output {line:?}")),
            }
        });
    report.check(
        "cluster: every replica session in PostgreSQL's session index, ended",
        index.and_then(|found| expect_sessions(found, pg_expected)),
    );
    report.note(&format!(
        "Round-robin: replica b admitted {} of the {spread} spread sessions.",
        b.0
    ));
}

/// `(sessions, ended)` against the number of sessions opened.
fn expect_sessions(found: (usize, usize), expected: usize) -> Result<String, String> {
    match found {
        (all, ended) if all == expected && ended == expected => {
            Ok(format!("{all} sessions, all ended"))
        }
        (all, ended) => Err(format!(
            "expected {expected} ended sessions, found {all} ({ended} ended)"
        )),
    }
}

/// How many sessions a store holds, and how many of them have ended.
fn ended_sessions(store: &Path) -> Result<(usize, usize), String> {
    let conn = Connection::open_with_flags(
        store,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("open {}: {e}", store.display()))?;
    conn.busy_timeout(Duration::from_secs(10))
        .map_err(|e| e.to_string())?;
    conn.query_row(
        "SELECT COUNT(*), COUNT(ended_at_us) FROM sessions",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .map_err(|e| format!("{}: {e}", store.display()))
}
