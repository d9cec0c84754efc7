//! The side-by-side benchmark of portcullis against OpenSSH (issue 6).
//!
//! One run starts, on loopback, an OpenSSH `sshd` target, a second `sshd` as
//! a jump host (ProxyJump `-J`, and relay `ssh jump "ssh target ..."`) and
//! `portcullis serve` with full recording, then drives all of them with the
//! real `ssh` client and prints medians, spread and ratios measured in the
//! same run. The cluster phase adds a throwaway PostgreSQL, two `[cluster]`
//! replicas and HAProxy to the lab, against a SQLite-only bastion. Start it
//! with `bench/run` (see bench/README.md); it is a bench target so that
//! `cargo test` never builds or runs it.
//!
//! Invariant: every figure is compared only with figures measured in the same
//! run, repetitions of different paths are interleaved (so background load
//! spreads over all of them), and every portcullis transfer is checked
//! against the store afterwards: a fast run that lost a byte is a failure,
//! not a result.

mod balancer;
mod lab;
mod mux;
mod phases;
mod postgres;
mod procs;
mod report;
mod route;
mod stats;
mod store;
mod workload;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use lab::Lab;
use report::Report;

const USAGE: &str = "\
usage: bench/run [--quick] [--reps N] [--only PHASES] [--idle N] [--busy N]
                 [--keep] [--out FILE]

  --quick       small sizes for a smoke run (a few minutes instead of ~15)
  --reps N      repetitions of each throughput measurement (default 3, quick 2)
  --only LIST   comma-separated phases: connect,audit,throughput,backpressure,
                concurrency,forward,cluster (default: all); commit = only the
                write-ahead commit part of audit
  --idle N      concurrent idle sessions (default 500, quick 50)
  --busy N      concurrent busy sessions of 20 commands (default 200, quick 20)
  --keep        keep the lab directory (keys, configs, logs, the store)
  --lab-only    start the lab, print how to reach it, and wait for Enter
                (for profiling: perf record -p <bastion pid>)
  --out FILE    where to write the Markdown report
                (default target/bench/openssh-<time>.md)";

/// How much each phase does.
#[derive(Debug, Clone)]
pub struct Sizes {
    pub quick: bool,
    pub download_bytes: u64,
    pub upload_bytes: u64,
    pub reps: usize,
    pub connect_reps: usize,
    pub exec_reps: usize,
    pub commit_reps: usize,
    pub idle_sessions: usize,
    pub busy_sessions: usize,
    pub busy_commands: usize,
    /// Connections being set up at once while sessions are opened in bulk.
    pub handshake_parallelism: usize,
    pub pause: Duration,
    pub forward_bytes: u64,
    /// Concurrent clients opening sessions in the cluster phase.
    pub cluster_clients: usize,
    /// How long each of them does so, per bastion and round.
    pub cluster_seconds: Duration,
    pub cluster_rounds: usize,
}

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

impl Sizes {
    fn full() -> Sizes {
        Sizes {
            quick: false,
            download_bytes: 2 * GIB,
            upload_bytes: GIB,
            reps: 3,
            connect_reps: 20,
            exec_reps: 300,
            commit_reps: 2000,
            idle_sessions: 500,
            busy_sessions: 200,
            busy_commands: 20,
            handshake_parallelism: 32,
            pause: Duration::from_secs(10),
            forward_bytes: GIB,
            cluster_clients: 16,
            cluster_seconds: Duration::from_secs(10),
            cluster_rounds: 2,
        }
    }

    fn quick() -> Sizes {
        Sizes {
            quick: true,
            download_bytes: 256 * MIB,
            upload_bytes: 128 * MIB,
            reps: 2,
            connect_reps: 6,
            exec_reps: 60,
            commit_reps: 300,
            idle_sessions: 50,
            busy_sessions: 20,
            busy_commands: 20,
            handshake_parallelism: 16,
            pause: Duration::from_secs(3),
            forward_bytes: 128 * MIB,
            cluster_clients: 8,
            cluster_seconds: Duration::from_secs(3),
            cluster_rounds: 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Connect,
    Audit,
    Throughput,
    Backpressure,
    Concurrency,
    Forward,
    /// PostgreSQL cluster vs SQLite (about a minute in the full run).
    Cluster,
    /// Only the write-ahead commit part of `audit` (quick to iterate on).
    Commit,
}

impl Phase {
    const ALL: [Phase; 7] = [
        Phase::Connect,
        Phase::Audit,
        Phase::Throughput,
        Phase::Backpressure,
        Phase::Concurrency,
        Phase::Forward,
        Phase::Cluster,
    ];

    fn parse(name: &str) -> Option<Phase> {
        Phase::ALL
            .into_iter()
            .chain([Phase::Commit])
            .find(|p| p.name() == name)
    }

    fn name(self) -> &'static str {
        match self {
            Phase::Connect => "connect",
            Phase::Audit => "audit",
            Phase::Throughput => "throughput",
            Phase::Backpressure => "backpressure",
            Phase::Concurrency => "concurrency",
            Phase::Forward => "forward",
            Phase::Cluster => "cluster",
            Phase::Commit => "commit",
        }
    }
}

struct Options {
    sizes: Sizes,
    phases: Vec<Phase>,
    keep: bool,
    lab_only: bool,
    out: Option<PathBuf>,
    command_line: String,
}

fn parse_args() -> Result<Options, String> {
    // `cargo bench` adds `--bench`; it means nothing here.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let quick = args.iter().any(|a| a == "--quick");
    let mut sizes = if quick { Sizes::quick() } else { Sizes::full() };
    let mut phases = Phase::ALL.to_vec();
    let mut keep = false;
    let mut lab_only = false;
    let mut out = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match arg.as_str() {
            "--quick" => {}
            "--keep" => keep = true,
            "--lab-only" => lab_only = true,
            "--reps" => sizes.reps = number(&value("--reps")?)?,
            "--idle" => sizes.idle_sessions = number(&value("--idle")?)?,
            "--busy" => sizes.busy_sessions = number(&value("--busy")?)?,
            "--out" => out = Some(PathBuf::from(value("--out")?)),
            "--only" => {
                phases = value("--only")?
                    .split(',')
                    .map(|p| Phase::parse(p.trim()).ok_or_else(|| format!("unknown phase {p:?}")))
                    .collect::<Result<_, _>>()?;
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Options {
        sizes,
        phases,
        keep,
        lab_only,
        out,
        command_line: std::env::var("PORTCULLIS_BENCH_COMMAND")
            .unwrap_or_else(|_| format!("bench/run {}", args.join(" ")))
            .trim_end()
            .to_string(),
    })
}

fn number(text: &str) -> Result<usize, String> {
    text.parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{text:?} is not a positive number"))
}

fn main() -> ExitCode {
    // `cargo test --benches` would run this program too: it only runs when
    // asked for by name (bench/run or `cargo bench --bench openssh`).
    let invoked_as_bench =
        std::env::args().any(|a| a == "--bench") || std::env::var_os("PORTCULLIS_BENCH").is_some();
    if !invoked_as_bench {
        eprintln!("openssh bench: run it with bench/run (see bench/README.md); skipping");
        return ExitCode::SUCCESS;
    }
    let options = match parse_args() {
        Ok(options) => options,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("bench: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(options) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the chosen phases; `Ok(false)` when a check on the store failed
/// (targets that were missed are reported, not failures).
fn run(options: Options) -> Result<bool, String> {
    if options.lab_only {
        let lab = Lab::start(&options.sizes, options.keep)?;
        println!(
            "lab: {}\nportcullis pid {}, jump sshd pid {}\n\
             ssh -F {} bastion|direct|proxyjump|jump COMMAND \
             (aes128-gcm: -F {})\npress Enter to stop",
            lab.dir().display(),
            lab.bastion_pid(),
            lab.jump_pid(),
            lab.config_default.display(),
            lab.config_aes.display()
        );
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        return Ok(true);
    }
    let out = options.out.clone().unwrap_or_else(|| {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("target/bench/openssh-{stamp}.md"))
    });
    let mut report = Report::new(out);
    report.header(&options.command_line, &options.sizes);
    let mut lab = Lab::start(&options.sizes, options.keep)?;
    report.note(&format!(
        "lab: `{}` (store `{}`)",
        lab.dir().display(),
        lab.store_path().display()
    ));
    for phase in &options.phases {
        report.phase_started(phase.name());
        match phase {
            Phase::Connect => phases::connect::run(&lab, &options.sizes, &mut report),
            Phase::Audit => phases::audit::run(&lab, &options.sizes, &mut report),
            Phase::Throughput => phases::throughput::run(&lab, &options.sizes, &mut report),
            Phase::Backpressure => phases::backpressure::run(&lab, &options.sizes, &mut report),
            Phase::Concurrency => phases::concurrency::run(&mut lab, &options.sizes, &mut report),
            Phase::Forward => phases::forward::run(&lab, &options.sizes, &mut report),
            Phase::Cluster => phases::cluster::run(&lab, &options.sizes, &mut report),
            Phase::Commit => phases::audit::commit_latency(&lab, &options.sizes, &mut report),
        }
        report.save();
    }
    store::verify_chain(&lab, &mut report);
    report.footer();
    report.save();
    eprintln!("bench: report written to {}", report.path().display());
    Ok(report.checks_passed())
}
