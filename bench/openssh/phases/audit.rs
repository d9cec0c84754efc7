//! Audit cost: what the write-ahead commit adds to a command.
//!
//! 1. Exec round-trip on an open connection (ControlMaster): `ssh -S sock
//!    HOST true`, direct vs ProxyJump vs portcullis. On portcullis each run
//!    commits `exec.allowed` before the target sees the command and
//!    `exit.status` before the client sees it.
//! 2. The write-ahead commit itself: `Store::record` (the call the proxy
//!    awaits before forwarding) against a store in the lab directory, idle
//!    and while another session streams into the same store.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use portcullis::audit::{Event, NewSession, Store, Stream};

use crate::lab::Lab;
use crate::mux::{exec_samples, Master, EXEC_WARMUP};
use crate::report::Report;
use crate::route::Route;
use crate::stats::Samples;
use crate::store;
use crate::Sizes;

const ROUTES: [Route; 3] = [Route::Direct, Route::ProxyJump, Route::Portcullis];

pub fn run(lab: &Lab, sizes: &Sizes, report: &mut Report) {
    report.section("Audit cost");
    exec_round_trip(lab, sizes, report);
    report.save();
    commit_latency(lab, sizes, report);
}

fn exec_round_trip(lab: &Lab, sizes: &Sizes, report: &mut Report) {
    report.subsection(&format!(
        "Exec round-trip on an open connection (`ssh -S ctl HOST true`, {} runs each)",
        sizes.exec_reps
    ));
    let before = store::last_session(lab).unwrap_or(0);
    let mux = lab.dir().join("mux");
    let _ = std::fs::create_dir_all(&mux);
    let mut masters = Vec::new();
    for (i, route) in ROUTES.iter().enumerate() {
        match Master::open(lab, *route, mux.join(format!("rt{i}"))) {
            Ok(m) => masters.push(m),
            Err(e) => {
                report.check("exec round-trip: ControlMaster", Err(e));
                return;
            }
        }
    }
    let (samples, errors) = exec_samples(&masters, sizes.exec_reps);
    drop(masters);
    let direct = samples[0].median();
    let rows: Vec<Vec<String>> = ROUTES
        .iter()
        .zip(&samples)
        .map(|(route, s)| {
            vec![
                route.name().to_string(),
                format!("{:.1}", s.median()),
                format!("{:.1}", s.percentile(99.0)),
                format!("{:.1}", s.max()),
                format!("{:+.1}", s.median() - direct),
            ]
        })
        .collect();
    report.table(
        &["path", "p50 ms", "p99 ms", "max ms", "p50 vs direct, ms"],
        &rows,
    );
    report.note(
        "Each run includes starting the `ssh` mux client process; the difference \
         to direct is what the hop adds (for portcullis: two write-ahead commits, \
         the policy decision and a channel open on the upstream connection).",
    );
    for e in errors.iter().take(5) {
        report.note(&format!("error: {e}"));
    }
    let runs = (sizes.exec_reps + EXEC_WARMUP) as u64;
    report.check(
        "exec round-trip: every command recorded",
        store::check_sessions(lab, before, 1, |r| {
            if r.exec_allowed == runs && r.exit_status == runs {
                Ok(())
            } else {
                Err(format!("expected {runs} execs and exit statuses"))
            }
        }),
    );
}

pub fn commit_latency(lab: &Lab, sizes: &Sizes, report: &mut Report) {
    report.subsection(&format!(
        "Write-ahead commit (`Store::record`, {} commits each, store in the lab directory)",
        sizes.commit_reps
    ));
    let dir = lab.dir().join("commit-bench");
    let _ = std::fs::create_dir_all(&dir);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            report.note(&format!("cannot start a runtime: {e}"));
            return;
        }
    };
    let result = runtime.block_on(measure_commits(&dir, sizes.commit_reps));
    match result {
        Ok(m) => {
            let rows = vec![
                vec![
                    "idle store".to_string(),
                    format!("{:.2}", m.idle.median()),
                    format!("{:.2}", m.idle.percentile(99.0)),
                    format!("{:.2}", m.idle.max()),
                    "-".to_string(),
                ],
                vec![
                    "another session streaming 32 KiB chunks".to_string(),
                    format!("{:.2}", m.loaded.median()),
                    format!("{:.2}", m.loaded.percentile(99.0)),
                    format!("{:.2}", m.loaded.max()),
                    format!("{:.0}", m.stream_mb_s),
                ],
            ];
            report.table(
                &[
                    "condition",
                    "p50 ms",
                    "p99 ms",
                    "max ms",
                    "stream MB/s meanwhile",
                ],
                &rows,
            );
            report.note(&format!(
                "Stream chunks alone (32 KiB each, queued then flushed): {:.0} MB/s into the store.",
                m.chunk_mb_s
            ));
            if let Ok(floor) = sync_floor(&dir, 200) {
                report.note(&format!(
                    "The disk's floor on the same filesystem (write 16 KiB, fdatasync): \
                     p50 {:.2} ms, p99 {:.2} ms: no commit can be faster.",
                    floor.median(),
                    floor.percentile(99.0)
                ));
            }
            let p99 = m.idle.percentile(99.0);
            report.target(
                "write-ahead exec commit p99 <= 5 ms (idle store)",
                format!("{p99:.2} ms"),
                "<= 5 ms",
                p99 <= 5.0,
            );
            let p99 = m.loaded.percentile(99.0);
            report.target(
                "write-ahead exec commit p99 <= 5 ms (store busy with a stream)",
                format!("{p99:.2} ms"),
                "<= 5 ms",
                p99 <= 5.0,
            );
            for (condition, samples) in [
                ("idle store", &m.idle),
                ("store busy with a stream", &m.loaded),
            ] {
                let p50 = samples.median();
                report.target(
                    &format!("write-ahead exec commit p50 <= 1 ms ({condition})"),
                    format!("{p50:.2} ms"),
                    "<= 1 ms",
                    p50 <= 1.0,
                );
            }
        }
        Err(e) => report.check("write-ahead commit bench", Err(e)),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// What `fdatasync` after a small write costs on this filesystem.
fn sync_floor(dir: &Path, n: usize) -> std::io::Result<Samples> {
    use std::os::unix::fs::FileExt;
    let path = dir.join("sync-floor");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)?;
    let block = vec![0x5a; 16 * 1024];
    for i in 0..64u64 {
        file.write_all_at(&block, i * block.len() as u64)?;
    }
    file.sync_all()?;
    let mut samples = Samples::default();
    for i in 0..n as u64 {
        let start = Instant::now();
        file.write_all_at(&block, (i % 64) * block.len() as u64)?;
        file.sync_data()?;
        samples.push(start.elapsed().as_secs_f64() * 1e3);
    }
    let _ = std::fs::remove_file(&path);
    Ok(samples)
}

struct CommitFigures {
    idle: Samples,
    loaded: Samples,
    stream_mb_s: f64,
    chunk_mb_s: f64,
}

async fn measure_commits(dir: &Path, reps: usize) -> Result<CommitFigures, String> {
    let db = dir.join("commit.db");
    let store = Store::open(&db).map_err(|e| e.to_string())?;
    let session = store
        .begin_session(NewSession {
            identity: "bench".into(),
            key_id: "bench".into(),
            task: None,
            cert_serial: 1,
            ca_fingerprint: "SHA256:bench".into(),
            cert_fingerprint: None,
            role: None,
            client_addr: "127.0.0.1:1".into(),
            target: "bench".into(),
            login: "bench".into(),
        })
        .await
        .map_err(|e| e.to_string())?;
    let exec = || Event::ExecAllowed {
        command: "systemctl status nginx".into(),
        forced_command: None,
        instead_of: None,
        approved_request: None,
        approved_by: None,
    };

    let mut idle = Samples::default();
    for _ in 0..reps {
        let start = Instant::now();
        store
            .record(Some(session), Some(0), exec())
            .await
            .map_err(|e| e.to_string())?;
        idle.push(start.elapsed().as_secs_f64() * 1e3);
    }

    // Raw chunk throughput: 256 MiB in 32 KiB chunks, then a flush.
    let chunk = Bytes::from(vec![0x5a; 32 * 1024]);
    let total = 256u64 << 20;
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < total {
        store
            .chunk(session, 1, Stream::Stdout, chunk.clone())
            .await
            .map_err(|e| e.to_string())?;
        sent += chunk.len() as u64;
    }
    store.flush().await.map_err(|e| e.to_string())?;
    let chunk_mb_s = total as f64 / start.elapsed().as_secs_f64() / 1e6;

    // Commits while another session streams as fast as the store takes it.
    let stop = Arc::new(AtomicBool::new(false));
    let streamed = Arc::new(AtomicU64::new(0));
    let streamer = {
        let (store, stop, streamed, chunk) =
            (store.clone(), stop.clone(), streamed.clone(), chunk.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                if store
                    .chunk(session, 2, Stream::Stdout, chunk.clone())
                    .await
                    .is_err()
                {
                    break;
                }
                streamed.fetch_add(chunk.len() as u64, Ordering::SeqCst);
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut loaded = Samples::default();
    let start = Instant::now();
    let streamed_before = streamed.load(Ordering::SeqCst);
    for _ in 0..reps / 2 {
        let t = Instant::now();
        store
            .record(Some(session), Some(0), exec())
            .await
            .map_err(|e| e.to_string())?;
        loaded.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let stream_mb_s = (streamed.load(Ordering::SeqCst) - streamed_before) as f64
        / start.elapsed().as_secs_f64()
        / 1e6;
    stop.store(true, Ordering::SeqCst);
    let _ = streamer.await;
    store
        .end_session(session, "bench done".into())
        .await
        .map_err(|e| e.to_string())?;
    Ok(CommitFigures {
        idle,
        loaded,
        stream_mb_s,
        chunk_mb_s,
    })
}
