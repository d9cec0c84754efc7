//! Concurrency and memory: many idle sessions held at once, and many busy
//! sessions each running short commands, through portcullis and through an
//! OpenSSH jump host (ProxyJump). Memory per session is the bastion's RSS
//! growth over its idle baseline, against the RSS (and PSS) of all of the
//! jump sshd's per-session processes.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use crate::lab::Lab;
use crate::mux::Master;
use crate::procs::{descendants, memory_of, rss_kib, Memory, Sampler};
use crate::report::Report;
use crate::route::{ssh, Cipher, Route};
use crate::store;
use crate::Sizes;

const ROUTES: [Route; 2] = [Route::Portcullis, Route::ProxyJump];

pub fn run(lab: &mut Lab, sizes: &Sizes, report: &mut Report) {
    report.section("Concurrency and memory");
    // Earlier phases leave freed memory in the bastion's allocator that new
    // sessions would reuse unseen: start from a fresh process (same store).
    match lab.restart_bastion() {
        Ok(()) => report.note(
            "The bastion was restarted (same store) before this phase, so that its \
             RSS growth is the sessions' own and not hidden in memory freed by earlier phases.",
        ),
        Err(e) => report.note(&format!("could not restart the bastion: {e}")),
    }
    let lab: &Lab = lab;
    idle(lab, sizes, report);
    report.save();
    busy(lab, sizes, report);
}

/// Memory attributable to sessions along `route`: the bastion process, or
/// every process the jump sshd forked.
fn session_memory(lab: &Lab, route: Route) -> Memory {
    match route {
        Route::Portcullis => memory_of(&[lab.bastion_pid()]),
        _ => memory_of(&descendants(lab.jump_pid())),
    }
}

/// One held session: `echo ready; exec cat`, waiting on its stdin.
struct Idle {
    child: Child,
    stdin: Option<ChildStdin>,
    _stdout: BufReader<ChildStdout>,
}

fn open_idle(lab: &Lab, route: Route) -> Result<Idle, String> {
    let mut child = ssh(lab, route, Cipher::Default, "echo ready; exec cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn ssh: {e}"))?;
    let stdin = child.stdin.take();
    let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
    let mut line = String::new();
    let _ = stdout.read_line(&mut line);
    if line == "ready\n" {
        return Ok(Idle {
            child,
            stdin,
            _stdout: stdout,
        });
    }
    let _ = child.kill();
    let _ = child.wait();
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    Err(format!("no ready line ({line:?}): {}", err.trim()))
}

/// Runs `job(i)` for i in 0..n on `parallel` threads; the `Ok`s and `Err`s.
fn in_parallel<T: Send>(
    n: usize,
    parallel: usize,
    job: impl Fn(usize) -> Result<T, String> + Sync,
) -> (Vec<T>, Vec<String>) {
    let next = AtomicUsize::new(0);
    let done = Mutex::new(Vec::new());
    let failed = Mutex::new(Vec::new());
    thread::scope(|s| {
        for _ in 0..parallel.min(n).max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= n {
                    return;
                }
                match job(i) {
                    Ok(v) => done.lock().expect("lock").push(v),
                    Err(e) => failed.lock().expect("lock").push(e),
                }
            });
        }
    });
    (
        done.into_inner().expect("lock"),
        failed.into_inner().expect("lock"),
    )
}

fn idle(lab: &Lab, sizes: &Sizes, report: &mut Report) {
    let n = sizes.idle_sessions;
    report.subsection(&format!(
        "{n} concurrent idle sessions (`ssh HOST 'echo ready; exec cat'`, opened {} at a time)",
        sizes.handshake_parallelism
    ));
    let mut rows = Vec::new();
    let mut per_session = [f64::NAN; 2];
    for (r, route) in ROUTES.iter().enumerate() {
        let before_id = store::last_session(lab).unwrap_or(0);
        thread::sleep(Duration::from_secs(2));
        let baseline = session_memory(lab, *route);
        let start = Instant::now();
        let (mut held, failed) =
            in_parallel(n, sizes.handshake_parallelism, |_| open_idle(lab, *route));
        let opened_in = start.elapsed();
        thread::sleep(Duration::from_secs(2));
        let loaded = session_memory(lab, *route);
        let count = held.len().max(1) as f64;
        let rss_per = (loaded.rss_kib.saturating_sub(baseline.rss_kib)) as f64 / count;
        let pss_per = (loaded.pss_kib.saturating_sub(baseline.pss_kib)) as f64 / count;
        per_session[r] = rss_per;
        rows.push(vec![
            route.name().to_string(),
            format!("{} / {n}", held.len()),
            format!("{:.1}", opened_in.as_secs_f64()),
            format!("{}", loaded.processes),
            format!("{:.1}", loaded.rss_kib as f64 / 1024.0),
            format!("{rss_per:.0}"),
            format!("{pss_per:.0}"),
        ]);
        // Let every session go: cat sees EOF, the command exits 0.
        for s in &mut held {
            s.stdin.take();
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        for s in &mut held {
            while Instant::now() < deadline {
                if let Ok(Some(_)) = s.child.try_wait() {
                    break;
                }
                thread::sleep(Duration::from_millis(5));
            }
            let _ = s.child.kill();
            let _ = s.child.wait();
        }
        if !failed.is_empty() {
            report.check(
                &format!("idle: {} sessions opened", route.name()),
                Err(format!(
                    "{} of {n} failed, e.g. {}",
                    failed.len(),
                    failed[0]
                )),
            );
        }
        if *route == Route::Portcullis {
            report.check(
                "idle: every portcullis session recorded",
                store::check_sessions(lab, before_id, n, |rec| {
                    if rec.exec_allowed == 1
                        && rec.exit_status == 1
                        && rec.exit_nonzero == 0
                        && rec.stdout == 6
                    {
                        Ok(())
                    } else {
                        Err("expected one exec, its output and exit status 0".into())
                    }
                }),
            );
        }
    }
    report.table(
        &[
            "path",
            "open",
            "opened in s",
            "processes",
            "RSS MiB total",
            "RSS KiB / session",
            "PSS KiB / session",
        ],
        &rows,
    );
    report.note(
        "portcullis: growth of the bastion's RSS (one process) over its idle baseline. \
         OpenSSH: every process the jump sshd forked for the sessions \
         (its per-connection monitor and session processes).",
    );
    report.target(
        "<= 256 KiB RSS per idle session",
        format!(
            "{:.0} KiB (OpenSSH jump: {:.0} KiB)",
            per_session[0], per_session[1]
        ),
        "<= 256 KiB",
        per_session[0] <= 256.0,
    );
}

fn busy(lab: &Lab, sizes: &Sizes, report: &mut Report) {
    let (m, k) = (sizes.busy_sessions, sizes.busy_commands);
    report.subsection(&format!(
        "{m} concurrent sessions, each running {k} short commands (ControlMaster: \
         one connection per session, one channel per command)"
    ));
    let mux = lab.dir().join("mux");
    let _ = std::fs::create_dir_all(&mux);
    let mut rows = Vec::new();
    for route in ROUTES {
        let before_id = store::last_session(lab).unwrap_or(0);
        thread::sleep(Duration::from_secs(2));
        let baseline = session_memory(lab, route);
        let start = Instant::now();
        let (masters, failed_masters) = in_parallel(m, sizes.handshake_parallelism, |i| {
            Master::open(lab, route, mux.join(format!("b{i}")))
        });
        let opened_in = start.elapsed();
        let probe_route = route;
        let jump = lab.jump_pid();
        let bastion = lab.bastion_pid();
        let sampler = Sampler::start(Duration::from_millis(200), move || match probe_route {
            Route::Portcullis => rss_kib(bastion).unwrap_or(0),
            _ => memory_of(&descendants(jump)).rss_kib,
        });
        let start = Instant::now();
        let failures = Mutex::new(Vec::new());
        thread::scope(|s| {
            for (i, master) in masters.iter().enumerate() {
                let failures = &failures;
                s.spawn(move || {
                    for j in 0..k {
                        let expected = format!("s{i}c{j}\n");
                        let out = master
                            .client(&format!("echo s{i}c{j}"))
                            .stdin(Stdio::null())
                            .output();
                        match out {
                            Ok(o) if o.status.success() && o.stdout == expected.as_bytes() => {}
                            Ok(o) => failures.lock().expect("lock").push(format!(
                                "{} ({}): {}",
                                expected.trim(),
                                o.status,
                                String::from_utf8_lossy(&o.stderr).trim()
                            )),
                            Err(e) => failures.lock().expect("lock").push(e.to_string()),
                        }
                    }
                });
            }
        });
        let ran_in = start.elapsed();
        let samples = sampler.finish();
        let peak = samples.iter().map(|s| s.1).max().unwrap_or(0);
        let opened = masters.len();
        drop(masters);
        let failures = failures.into_inner().expect("lock");
        let per_session = match route {
            Route::Portcullis => peak.saturating_sub(baseline.rss_kib),
            _ => peak,
        } as f64
            / opened.max(1) as f64;
        rows.push(vec![
            route.name().to_string(),
            format!("{opened} / {m}"),
            format!("{:.1}", opened_in.as_secs_f64()),
            format!("{:.1}", ran_in.as_secs_f64()),
            format!("{:.0}", (opened * k) as f64 / ran_in.as_secs_f64()),
            format!("{}", failures.len()),
            format!("{per_session:.0}"),
        ]);
        if !failed_masters.is_empty() || !failures.is_empty() {
            let first = failed_masters.first().or(failures.first()).cloned();
            report.check(
                &format!("busy: {} sessions and commands", route.name()),
                Err(format!(
                    "{} sessions and {} commands failed, e.g. {}",
                    failed_masters.len(),
                    failures.len(),
                    first.unwrap_or_default()
                )),
            );
        }
        if route == Route::Portcullis {
            report.check(
                "busy: every portcullis session and command recorded",
                store::check_sessions(lab, before_id, m, |rec| {
                    if rec.exec_allowed == k as u64
                        && rec.exit_status == k as u64
                        && rec.exit_nonzero == 0
                    {
                        Ok(())
                    } else {
                        Err(format!("expected {k} execs with exit status 0"))
                    }
                }),
            );
        }
    }
    report.table(
        &[
            "path",
            "sessions",
            "opened in s",
            "commands ran in s",
            "commands/s",
            "failed commands",
            "peak RSS KiB / session",
        ],
        &rows,
    );
}
