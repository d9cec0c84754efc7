#![forbid(unsafe_code)]
//! portcullis: a just-in-time SSH bastion for AI coding agents.
//! This file is CLI dispatch only: one function per subcommand.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use portcullis::config::Config;
use portcullis::grants::RevokeSelector;
use portcullis::operator::{self, grant};
use portcullis::{demo, gateway, grants, replay, setup};

#[derive(Parser)]
#[command(
    name = "portcullis",
    version,
    about = "Just-in-time SSH bastion for AI coding agents"
)]
struct Cli {
    /// Config file [default: ./portcullis.toml, or $PORTCULLIS_CONFIG]
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a working setup: config, host key, task CA, upstream CA, example policy
    Init {
        /// Directory of the setup [default: the current directory]
        dir: Option<PathBuf>,
    },
    /// Try the whole flow: a setup, a throwaway sshd target, a demo cert, the commands to run
    Demo {
        /// Directory of the demo setup [default: ./portcullis-demo]
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Run the bastion (creates the default setup beside the config when none exists)
    Serve {
        /// Listen here instead of the config's `listen`
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Run the reviewers' web viewer of recorded sessions (HTTPS with `[web] tls_cert`/`tls_key`, else plain HTTP for loopback or behind a TLS proxy)
    Web {
        /// Listen here instead of the config's `[web] listen` [default: 127.0.0.1:2280]
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Operator side: sign a task certificate within a role
    Grant(grant::GrantArgs),
    /// List grant requests and held commands (pending ones unless --all)
    Requests {
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Approve a pending grant request or held command
    Approve { id: i64 },
    /// Deny a pending grant request or held command
    Deny {
        id: i64,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Revoke grants; live sessions using them end within a second
    Revoke(RevokeArgs),
    /// Lift an identity's suspension (set by `revoke --identity`)
    Reinstate { identity: String },
    /// List sessions (or refused authentications)
    Sessions(replay::SessionsArgs),
    /// Print every audit event (not stream bytes), as text or JSON lines; --follow tails new ones
    Events(replay::EventsArgs),
    /// Show a session's transcript: commands, exit codes, output, denials
    Show {
        session: i64,
        #[arg(long)]
        json: bool,
        /// With `[cluster]`: the replica that recorded the session, when it
        /// is not this one (read from the archive)
        #[arg(long)]
        replica: Option<String>,
    },
    /// Play a session back in the terminal with its original timing
    Replay(replay::ReplayArgs),
    /// Export a session: asciicast v2 for any player, or the whole transcript as JSON
    Export(replay::ExportArgs),
    /// Check the tamper-evident chain of the audit log
    Verify {
        session: Option<i64>,
        #[arg(long)]
        json: bool,
        /// With `[cluster]`: check SESSION of this replica in the archive
        /// against its chained seal
        #[arg(long, requires = "session")]
        replica: Option<String>,
    },
    /// Validate the config and the policy, printing every problem with file:line
    Check,
    /// Write an OpenSSH KRL of every revoked cert, for targets' sshd RevokedKeys
    Krl {
        /// The KRL file to write (replaced whole)
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
    },
    /// Write man pages and shell completions into DIR (for packaging)
    #[command(hide = true)]
    GenerateDocs { dir: PathBuf },
    /// Make the running server re-read its config and policy (as SIGHUP does); live sessions the new policy still covers go on
    Reload,
}

#[derive(clap::Args)]
#[command(group = clap::ArgGroup::new("selector").required(true).args(["serial", "fingerprint", "identity", "task"]))]
struct RevokeArgs {
    /// The cert's serial (from any CA; never 0: see --fingerprint)
    #[arg(long)]
    serial: Option<u64>,
    /// The cert's own fingerprint (`portcullis sessions`), or its key's
    /// (`ssh-keygen -l -f`): every cert of that key
    #[arg(long)]
    fingerprint: Option<String>,
    /// Every cert of this identity issued until now; also suspends the
    /// identity until `portcullis reinstate`
    #[arg(long)]
    identity: Option<String>,
    /// Every cert for this task issued until now
    #[arg(long)]
    task: Option<String>,
    #[arg(long)]
    reason: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config_path = Config::locate(cli.config);
    let result = match cli.command {
        Command::Init { dir } => init(dir),
        Command::Serve { listen } => serve(&config_path, listen),
        Command::Demo { dir } => demo(dir),
        Command::Web { listen } => web(&config_path, listen),
        Command::Grant(args) => grant(&config_path, &args),
        Command::Requests { all, json } => requests(&config_path, all, json),
        Command::Approve { id } => decide(&config_path, id, true, None),
        Command::Deny { id, reason } => decide(&config_path, id, false, reason.as_deref()),
        Command::Revoke(args) => revoke(&config_path, &args),
        Command::Reinstate { identity } => reinstate(&config_path, &identity),
        Command::Sessions(args) => sessions(&config_path, &args),
        Command::Events(args) => events(&config_path, &args),
        Command::Show {
            session,
            json,
            replica,
        } => show(&config_path, session, json, replica.as_deref()),
        Command::Replay(args) => replay(&config_path, &args),
        Command::Export(args) => export(&config_path, &args),
        Command::Verify {
            session,
            json,
            replica,
        } => verify(&config_path, session, json, replica.as_deref()),
        Command::Check => check(&config_path),
        Command::Reload => reload(&config_path),
        Command::GenerateDocs { dir } => generate_docs(&dir),
        Command::Krl { output } => krl(&config_path, &output),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("portcullis: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `portcullis init [DIR]`
fn init(dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let dir = dir.unwrap_or_else(|| PathBuf::from("."));
    let created = setup::init(&dir)?;
    report_created(&dir, &created);
    Ok(ExitCode::SUCCESS)
}

fn report_created(dir: &Path, created: &[PathBuf]) {
    if created.is_empty() {
        eprintln!(
            "portcullis: setup in {} is complete; nothing created",
            dir.display()
        );
    }
    for path in created {
        eprintln!("portcullis: created {}", path.display());
    }
}

/// `portcullis serve`
fn serve(config_path: &Path, listen: Option<SocketAddr>) -> anyhow::Result<ExitCode> {
    init_logging();
    if !config_path.exists() {
        let dir = config_path.parent().filter(|d| !d.as_os_str().is_empty());
        let dir = dir.unwrap_or(Path::new("."));
        eprintln!(
            "portcullis: no config at {}; creating the default setup in {}",
            config_path.display(),
            std::path::absolute(dir)
                .unwrap_or_else(|_| dir.to_path_buf())
                .display()
        );
        report_created(dir, &setup::init(dir)?);
    }
    let config = Config::load(config_path)?;
    run_server(&config, listen)
}

fn run_server(config: &Config, listen: Option<SocketAddr>) -> anyhow::Result<ExitCode> {
    if let Some(target) = &config.syslog {
        let after = replay::syslog::start_point(&config.store);
        replay::syslog::spawn(config.store.clone(), target.clone(), after)
            .context("starting the syslog forwarder")?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.worker_threads)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        if config.web_serve {
            start_viewer(config).await?;
        }
        gateway::serve(config, listen).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `[web] serve = true`: the viewer beside the bastion, on its runtime.
/// Bound before the bastion listens, so a taken port or a bad key fails
/// the start; it stops with the process.
async fn start_viewer(config: &Config) -> anyhow::Result<()> {
    let viewer = portcullis::web::Viewer::bind(config, config.web_listen)
        .await
        .context("[web] serve = true: starting the web viewer")?;
    eprintln!("portcullis: web viewer on {}", viewer.url());
    tokio::spawn(async move {
        if let Err(e) = viewer.run().await {
            tracing::error!(error = %e, "web viewer stopped");
        }
    });
    Ok(())
}

/// `portcullis web [--listen ADDR]`
fn web(config_path: &Path, listen: Option<SocketAddr>) -> anyhow::Result<ExitCode> {
    init_logging();
    let config = Config::load(config_path)?;
    let listen = listen.unwrap_or(config.web_listen);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(portcullis::web::run(&config, listen))?;
    Ok(ExitCode::SUCCESS)
}

/// `portcullis demo [--dir DIR]`
fn demo(dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    init_logging();
    let dir = dir.unwrap_or_else(demo::default_dir);
    let demo = demo::Demo::prepare(&dir)?;
    println!("{}", demo.commands());
    let listen = Some(demo.listen);
    // The demo (and its sshd) lives until the server stops.
    run_server(&demo.config, listen)
}

/// `portcullis generate-docs DIR` (hidden: packaging/build-deb runs it)
fn generate_docs(dir: &Path) -> anyhow::Result<ExitCode> {
    use clap::CommandFactory;
    for path in portcullis::packaging::generate(Cli::command(), dir)? {
        eprintln!("portcullis: wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// `portcullis krl -o FILE`
fn krl(config_path: &Path, output: &Path) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    let built = operator::krl::write(&config, output)?;
    eprintln!(
        "portcullis: wrote {} ({} revocation(s))",
        output.display(),
        built.revocations
    );
    operator::krl::warn_unnamed(&built);
    Ok(ExitCode::SUCCESS)
}

/// `portcullis reload`
fn reload(config_path: &Path) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    let applied = operator::reload::run(&config, &mut std::io::stdout().lock())?;
    Ok(if applied {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `portcullis grant`
fn grant(config_path: &Path, args: &grant::GrantArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    grant::run(&config, args)?;
    Ok(ExitCode::SUCCESS)
}

/// `portcullis requests`
fn requests(config_path: &Path, all: bool, json: bool) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    let queue = match &config.cluster {
        Some(cluster) => operator::cluster::requests(cluster, all)?,
        None => operator::requests::local(&config.store, all)?,
    };
    operator::requests::list(queue, all, json, &mut std::io::stdout().lock())?;
    Ok(ExitCode::SUCCESS)
}

/// `portcullis approve ID` / `portcullis deny ID`
fn decide(
    config_path: &Path,
    id: i64,
    approve: bool,
    reason: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    let expiry = config.limits.request_expiry;
    match &config.cluster {
        Some(cluster) => operator::cluster::decide(cluster, id, approve, reason, expiry)?,
        None => grants::admin::decide(&config.store, id, approve, reason, expiry)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `portcullis revoke`
fn revoke(config_path: &Path, args: &RevokeArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    let selector = if let Some(serial) = args.serial {
        RevokeSelector::Serial(serial)
    } else if let Some(fingerprint) = &args.fingerprint {
        RevokeSelector::Fingerprint(fingerprint.clone())
    } else if let Some(identity) = &args.identity {
        RevokeSelector::Identity(identity.clone())
    } else if let Some(task) = &args.task {
        RevokeSelector::Task(task.clone())
    } else {
        anyhow::bail!("name what to revoke: --serial, --fingerprint, --identity or --task")
    };
    match &config.cluster {
        Some(cluster) => operator::cluster::revoke(cluster, selector, args.reason.as_deref())?,
        None => grants::admin::revoke(&config.store, selector, args.reason.as_deref())?,
    }
    operator::krl::refresh_configured(&config)?;
    Ok(ExitCode::SUCCESS)
}

/// `portcullis reinstate ID`
fn reinstate(config_path: &Path, identity: &str) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    match &config.cluster {
        Some(cluster) => operator::cluster::reinstate(cluster, identity)?,
        None => grants::admin::reinstate(&config.store, identity)?,
    }
    operator::krl::refresh_configured(&config)?;
    Ok(ExitCode::SUCCESS)
}

/// `portcullis sessions`
fn sessions(config_path: &Path, args: &replay::SessionsArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    let out = &mut std::io::stdout().lock();
    match &config.cluster {
        Some(cluster) if !args.refused => operator::cluster::sessions(cluster, args, out)?,
        _ => replay::sessions(&config.store, args, out)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `portcullis events [--follow] [--since T] [--after SEQ] [--json]`
fn events(config_path: &Path, args: &replay::EventsArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    let out = &mut std::io::stdout().lock();
    match (&config.cluster, args.cluster) {
        (Some(cluster), true) => operator::control_chain::events(cluster, args, out)?,
        (None, true) => {
            anyhow::bail!("--cluster reads the cluster's control chain: it needs [cluster]")
        }
        (_, false) => replay::events(&config.store, args, out)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `portcullis show SESSION`
fn show(
    config_path: &Path,
    session: i64,
    json: bool,
    replica: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    let out = &mut std::io::stdout().lock();
    match operator::cluster::from_archive(&config, replica, session)? {
        Some(transcript) => replay::show_transcript(&transcript, json, out)?,
        None => replay::show(&config.store, session, json, out)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `portcullis replay SESSION [--speed X] [--max-idle SECONDS]`
fn replay(config_path: &Path, args: &replay::ReplayArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    match operator::cluster::from_archive(&config, args.replica.as_deref(), args.session)? {
        Some(transcript) => replay::replay_transcript(&transcript, args)?,
        None => replay::replay(&config.store, args)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `portcullis export SESSION --format asciicast|json [-o FILE]`
fn export(config_path: &Path, args: &replay::ExportArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    match operator::cluster::from_archive(&config, args.replica.as_deref(), args.session)? {
        Some(transcript) => replay::export_transcript(&transcript, args)?,
        None => replay::export(&config.store, args)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `portcullis verify [SESSION]`
fn verify(
    config_path: &Path,
    session: Option<i64>,
    json: bool,
    replica: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    let own = config.cluster.as_ref().map(|c| c.replica.as_str());
    if let (Some(replica), Some(id)) = (replica.filter(|r| Some(*r) != own), session) {
        return verify_archived(&config, replica, id);
    }
    let mut intact = replay::verify(&config.store, session, json, &mut std::io::stdout().lock())?;
    if let (Some(cluster), None) = (&config.cluster, session) {
        // On stderr, after the store's report: stdout stays its one JSON object.
        intact &= operator::cluster::verify_chain(cluster, &mut std::io::stderr().lock())?;
    }
    Ok(if intact {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `portcullis verify SESSION --replica NAME`: the archived object against
/// its seal, and the cluster's chain that holds the seal.
fn verify_archived(config: &Config, replica: &str, id: i64) -> anyhow::Result<ExitCode> {
    let transcript = match operator::cluster::archived_transcript(config, replica, id) {
        Ok(transcript) => transcript,
        Err(e) => {
            println!("session {replica}/{id}: FAILED: {e:#}");
            return Ok(ExitCode::FAILURE);
        }
    };
    println!(
        "session {replica}/{id}: the archived object matches its seal ({} rows)",
        transcript.events.len()
    );
    let cluster = config.cluster.as_ref().context("[cluster]")?;
    Ok(
        match operator::cluster::verify_chain(cluster, &mut std::io::stdout().lock())? {
            true => ExitCode::SUCCESS,
            false => ExitCode::FAILURE,
        },
    )
}

/// `portcullis check`
fn check(config_path: &Path) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    if operator::check::run(&config, &mut std::io::stdout().lock())? {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::FAILURE)
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,russh=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
