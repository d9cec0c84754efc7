//! Bench fixture for `bench/web-sessions` (not a test, not shipped): fills
//! an audit store with N sessions through the library's own write path
//! (chained, as the server writes them), a few exec events, refusals and
//! observed command lines each, plus refused authentications and grant
//! requests; then starts a browser session for a reviewer and prints its
//! cookie value, so the bench can call the viewer without `ssh review@`.
//!
//!     cargo run --release --example bench_web_store -- STORE SESSIONS REVIEWER

use std::process::ExitCode;

use portcullis::audit::{Abort, DirectWriter, Event, NewSession, SessionId, Store};
use portcullis::grants::review;

/// Sessions written concurrently (the writer commits them in batches).
const WAVE: usize = 500;

const COMMANDS: [&str; 8] = [
    "git status",
    "systemctl status nginx",
    "journalctl -u app --since today",
    "cat /etc/os-release",
    "df -h",
    "ls -la /srv/app/releases",
    "kubectl get pods -n prod",
    "tail -n 200 /var/log/app/app.log",
];

const END_REASONS: [&str; 4] = [
    "client disconnected",
    "client disconnected",
    "the grant expired",
    "the grant was revoked",
];

fn new_session(i: usize) -> NewSession {
    NewSession {
        identity: format!("agent-{}", i % 40),
        key_id: format!("agent-{}", i % 40),
        task: Some(format!("T-{}", i % 1000)),
        cert_serial: i as u64,
        ca_fingerprint: "SHA256:bench-ca".into(),
        cert_fingerprint: Some(format!("SHA256:bench-cert-{i}")),
        role: Some("ops".into()),
        client_addr: format!("10.0.{}.{}:40000", i % 250, i % 200),
        target: format!("web{}", i % 25),
        login: "deploy".into(),
    }
}

fn exec(command: String) -> Event {
    Event::ExecAllowed {
        command,
        forced_command: None,
        instead_of: None,
        approved_request: None,
        approved_by: None,
    }
}

/// One session's life: three commands, one refused, an observed line on
/// every fourth, an exit status; ended, except every hundredth.
async fn session(store: Store, i: usize) -> Result<(), String> {
    let id: SessionId = store
        .begin_session(new_session(i))
        .await
        .map_err(|e| e.to_string())?;
    let mut events = vec![
        exec(COMMANDS[i % COMMANDS.len()].to_owned()),
        exec(format!("grep -c ERROR /var/log/app/app-{i}.log")),
        exec(COMMANDS[(i / 7) % COMMANDS.len()].to_owned()),
        Event::ExecRefused {
            command: format!("sudo rm -rf /srv/app/cache-{}", i % 97),
            reason: "not in the grant's scope".into(),
        },
        Event::ExitStatus { status: 0 },
    ];
    if i.is_multiple_of(4) {
        events.push(Event::CommandObserved {
            line: format!("vim /srv/app/config-{}.yaml", i % 500),
        });
    }
    for event in events {
        store
            .record(Some(id), Some(0), event)
            .await
            .map_err(|e| e.to_string())?;
    }
    if i % 100 != 99 {
        let reason = END_REASONS[i % END_REASONS.len()].to_owned();
        store
            .end_session(id, reason)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

async fn not_sessions(store: &Store, i: usize) -> Result<(), String> {
    let refused = Event::AuthRefused {
        login: "deploy".into(),
        key_id: None,
        serial: None,
        ca_fingerprint: None,
        cert_fingerprint: None,
        client_addr: format!("192.0.2.{}:5{}", i % 250, i % 1000),
        reason: "no certificate".into(),
    };
    let requested = Event::GrantRequested {
        request_id: i as i64,
        identity: format!("dev-{}", i % 30),
        role: "ops".into(),
        task: Some(format!("T-{i}")),
        reason: Some("incident".into()),
        targets: vec![format!("web{}", i % 25)],
        exec: vec!["systemctl restart *".into()],
        open: vec![],
        ttl_secs: 900,
        client_addr: "10.1.0.1:40000".into(),
    };
    for event in [refused, requested] {
        store
            .record(None, None, event)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

async fn fill(path: &str, sessions: usize) -> Result<(), String> {
    let store = Store::open(path).map_err(|e| e.to_string())?;
    let mut done = 0;
    while done < sessions {
        let wave = WAVE.min(sessions - done);
        let mut tasks = tokio::task::JoinSet::new();
        for i in done..done + wave {
            tasks.spawn(session(store.clone(), i));
        }
        while let Some(joined) = tasks.join_next().await {
            joined.map_err(|e| e.to_string())??;
        }
        // A refused authentication and a grant request every 10 sessions.
        for i in (done..done + wave).filter(|i| i.is_multiple_of(10)) {
            not_sessions(&store, i).await?;
        }
        done += wave;
        if done.is_multiple_of(10_000) {
            eprintln!("bench_web_store: {done} sessions");
        }
    }
    store.flush().await.map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, path, sessions, reviewer] = args.as_slice() else {
        eprintln!("usage: bench_web_store STORE SESSIONS REVIEWER");
        return ExitCode::from(2);
    };
    let Ok(sessions) = sessions.parse::<usize>() else {
        eprintln!("bench_web_store: SESSIONS is a number");
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("bench_web_store: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = runtime.block_on(fill(path, sessions)) {
        eprintln!("bench_web_store: {e}");
        return ExitCode::FAILURE;
    }
    let began = DirectWriter::open(path.as_ref())
        .map_err(|e| e.to_string())
        .and_then(|mut writer| {
            writer
                .transact(|txn| {
                    review::begin_browser_session(txn.conn(), reviewer, txn.at_us())
                        .map_err(|e| Abort::<()>::Failed(e.into()))
                })
                .map_err(|_| "cannot start a browser session".to_owned())
        });
    match began {
        Ok(session) => {
            println!("{}", session.cookie.reveal());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench_web_store: {e}");
            ExitCode::FAILURE
        }
    }
}
