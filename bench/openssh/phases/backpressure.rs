//! Backpressure: a download through portcullis to a reader that stops
//! reading for a while. The bastion's memory must stay flat: a stalled
//! reader stalls the target, it does not fill the bastion.

use std::io::Read;
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use crate::lab::Lab;
use crate::procs::{drain, rss_kib, Sampler};
use crate::report::Report;
use crate::route::{ssh, Cipher, Route};
use crate::store;
use crate::Sizes;

pub fn run(lab: &Lab, sizes: &Sizes, report: &mut Report) {
    let bytes = sizes.download_bytes;
    let first = bytes / 8;
    report.section(&format!(
        "Backpressure: {} MiB download, reader pauses {} s after {} MiB",
        bytes >> 20,
        sizes.pause.as_secs(),
        first >> 20
    ));
    let pid = lab.bastion_pid();
    // A first download fills what the bastion keeps for the whole run (the
    // store's page cache, buffers of its allocator); the baseline is taken
    // after it, so that growth is what the stalled reader costs.
    let cold = rss_kib(pid).unwrap_or(0);
    let warm_up = ssh(
        lab,
        Route::Portcullis,
        Cipher::Default,
        &format!("head -c {} /dev/zero", bytes / 4),
    )
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .status();
    if !matches!(warm_up, Ok(s) if s.success()) {
        report.note(&format!("warm-up download failed: {warm_up:?}"));
    }
    let before = store::last_session(lab).unwrap_or(0);
    thread::sleep(Duration::from_secs(1));
    let baseline = rss_kib(pid).unwrap_or(0);
    let sampler = Sampler::start(Duration::from_millis(50), move || rss_kib(pid).unwrap_or(0));
    let start = Instant::now();
    let child = ssh(
        lab,
        Route::Portcullis,
        Cipher::Default,
        &format!("head -c {bytes} /dev/zero"),
    )
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            report.check("backpressure: ssh", Err(e.to_string()));
            return;
        }
    };
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut received = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    while received < first {
        match stdout.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => received += n as u64,
        }
    }
    let pause_start = start.elapsed();
    thread::sleep(sizes.pause);
    let pause_end = start.elapsed();
    received += drain(stdout);
    let status = child.wait();
    let total_time = start.elapsed();
    let samples = sampler.finish();

    let peak = samples.iter().map(|(_, v)| *v).max().unwrap_or(0);
    let in_pause: Vec<u64> = samples
        .iter()
        .filter(|(t, _)| *t >= pause_start && *t <= pause_end)
        .map(|(_, v)| *v)
        .collect();
    let pause_first = in_pause.first().copied().unwrap_or(0);
    let pause_last = in_pause.last().copied().unwrap_or(0);
    let growth_kib = peak.saturating_sub(baseline);
    let rows = vec![
        vec!["before the warm-up download".to_string(), kib(cold)],
        vec!["before the download (baseline)".to_string(), kib(baseline)],
        vec!["start of the pause".to_string(), kib(pause_first)],
        vec!["end of the pause".to_string(), kib(pause_last)],
        vec!["peak over the run".to_string(), kib(peak)],
        vec![
            "after the download".to_string(),
            kib(samples.last().map(|s| s.1).unwrap_or(0)),
        ],
    ];
    report.table(&["portcullis RSS", "MiB"], &rows);
    report.note(&format!(
        "{} MiB received in {:.1} s ({} samples every 50 ms).",
        received >> 20,
        total_time.as_secs_f64(),
        samples.len()
    ));
    report.target(
        "flat memory under backpressure (peak RSS growth over the warm baseline < 32 MiB)",
        format!("{:.1} MiB", growth_kib as f64 / 1024.0),
        "< 32 MiB",
        growth_kib < 32 * 1024,
    );
    let ok = matches!(status, Ok(s) if s.success()) && received == bytes;
    report.check(
        "backpressure: the reader got every byte",
        if ok {
            Ok(format!("{received} bytes"))
        } else {
            Err(format!("{received} of {bytes} bytes, ssh {status:?}"))
        },
    );
    report.check(
        "backpressure: every byte recorded",
        store::check_sessions(lab, before, 1, |r| {
            if r.stdout == bytes {
                Ok(())
            } else {
                Err(format!("{} stdout bytes recorded", r.stdout))
            }
        }),
    );
}

fn kib(v: u64) -> String {
    format!("{:.1}", v as f64 / 1024.0)
}
