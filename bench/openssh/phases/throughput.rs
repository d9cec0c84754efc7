//! Download (`cat FILE`) and upload (`cat > /dev/null`, fed from FILE)
//! through one exec, along every route, for incompressible bytes and for
//! text, with each side's default cipher and with aes128-gcm forced. Every
//! portcullis run is checked byte for byte against the store, and its CPU
//! is split between recording (the store's writer and checkpointer
//! threads) and the rest (the network side).

use std::process::Command;
use std::thread;
use std::time::Duration;

use crate::lab::Lab;
use crate::procs::{
    children_cpu_seconds, cpu_seconds, thread_cpu_seconds, timed, timed_with_input,
};
use crate::report::Report;
use crate::route::{ssh, Cipher, Route};
use crate::stats::{ratio, Samples};
use crate::store;
use crate::workload::{self, store_bytes, Workload};
use crate::Sizes;

const ROUTES: [Route; 4] = [
    Route::Direct,
    Route::ProxyJump,
    Route::Relay,
    Route::Portcullis,
];

/// Threads of the bastion that record: the store's writer and checkpointer.
const RECORDING_THREADS: [&str; 2] = ["portcullis-audi", "portcullis-ckpt"];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Download,
    Upload,
}

pub fn run(lab: &Lab, sizes: &Sizes, report: &mut Report) {
    report.section("Throughput through one exec");
    report.note(
        "MB/s = 10^6 bytes per second of wall time, from `ssh` start to exit \
         (handshake included, as a user sees it). CPU columns: seconds of CPU per GiB \
         moved (median), for the client side (`ssh`, and its `ssh -W` for ProxyJump), \
         the hop (the bastion process, or every process the jump sshd ran for the \
         session) and the target sshd with its command: unlike MB/s, these do not \
         depend much on what else the machine runs. For portcullis the hop's CPU is \
         split: `recording` is its store writer and checkpointer threads, `network` \
         the rest; `store` is how much the store grew per GiB recorded.",
    );
    let largest = sizes.download_bytes.max(sizes.upload_bytes);
    if let Err(e) = workload::prepare(lab.dir(), largest) {
        report.check("throughput: workload files", Err(e));
        return;
    }
    for workload in Workload::ALL {
        for direction in [Direction::Download, Direction::Upload] {
            for cipher in [Cipher::Default, Cipher::Aes128Gcm] {
                measure(lab, sizes, report, (workload, direction, cipher));
                report.save();
            }
        }
    }
    super::codecs::run(lab, report);
    report.save();
}

/// The portcullis route's extra figures, per GiB.
#[derive(Clone, Default)]
struct Recording {
    cpu: Samples,
    store_mib: Samples,
}

fn measure(
    lab: &Lab,
    sizes: &Sizes,
    report: &mut Report,
    (workload, direction, cipher): (Workload, Direction, Cipher),
) {
    let file = workload.file(lab.dir());
    let file_arg = file.display().to_string();
    let (bytes, label) = match direction {
        Direction::Download => (
            sizes.download_bytes,
            format!(
                "Download {} MiB {} (`cat FILE`), {}",
                sizes.download_bytes >> 20,
                workload.name(),
                cipher.name()
            ),
        ),
        Direction::Upload => (
            sizes.upload_bytes,
            format!(
                "Upload {} MiB {} (`cat > /dev/null`), {}",
                sizes.upload_bytes >> 20,
                workload.name(),
                cipher.name()
            ),
        ),
    };
    eprintln!("bench: {label}");
    let mut samples = vec![Samples::default(); ROUTES.len()];
    let mut cpu = vec![[Samples::default(), Samples::default(), Samples::default()]; ROUTES.len()];
    let mut recording = Recording::default();
    let mut errors = Vec::new();
    let mut record_problems = Vec::new();
    let mut recorded_runs = 0;
    let gib = bytes as f64 / (1u64 << 30) as f64;
    for _ in 0..sizes.reps {
        for (i, route) in ROUTES.iter().enumerate() {
            let before = store::last_session(lab).unwrap_or(0);
            let cpu_before = cpu_now(lab, *route);
            let recording_before = recording_cpu(lab);
            let store_before = store_bytes(&lab.store_path());
            let result = match direction {
                Direction::Download => timed(&mut ssh(
                    lab,
                    *route,
                    cipher,
                    &format!("head -c {bytes} {file_arg}"),
                )),
                Direction::Upload => timed_with_input(
                    Command::new("head").args(["-c", &bytes.to_string(), &file_arg]),
                    &mut ssh(lab, *route, cipher, "cat > /dev/null"),
                ),
            };
            match result {
                Ok(t) => {
                    samples[i].push(bytes as f64 / t.as_secs_f64() / 1e6);
                    // sshd reaps the session's processes a moment after.
                    thread::sleep(Duration::from_millis(300));
                    let used = cpu_now(lab, *route);
                    for (k, (a, b)) in used.iter().zip(cpu_before).enumerate() {
                        cpu[i][k].push((a - b) / gib);
                    }
                    if *route == Route::Portcullis {
                        recording
                            .cpu
                            .push((recording_cpu(lab) - recording_before) / gib);
                        let grown = store_bytes(&lab.store_path()).saturating_sub(store_before);
                        recording
                            .store_mib
                            .push(grown as f64 / (1u64 << 20) as f64 / gib);
                    }
                }
                Err(e) => errors.push(format!("{}: {e}", route.name())),
            }
            if *route == Route::Portcullis {
                recorded_runs += 1;
                let check = store::check_sessions(lab, before, 1, |r| {
                    let (seen, stream) = match direction {
                        Direction::Download => (r.stdout, "stdout"),
                        Direction::Upload => (r.stdin, "stdin"),
                    };
                    if seen == bytes {
                        Ok(())
                    } else {
                        Err(format!("{seen} {stream} bytes recorded, {bytes} sent"))
                    }
                });
                if let Err(e) = check {
                    record_problems.push(e);
                }
            }
        }
    }
    report.subsection(&label);
    let direct = samples[0].median();
    let jump = samples[1].median();
    let rows: Vec<Vec<String>> = ROUTES
        .iter()
        .zip(&samples)
        .zip(&cpu)
        .map(|((route, s), c)| {
            let [client, hop, target] = c.clone().map(|x| x.median());
            vec![
                route.name().to_string(),
                s.summary(0),
                ratio(s.median(), jump),
                ratio(s.median(), direct),
                format!("{client:.2}"),
                format!("{hop:.2}"),
                format!("{target:.2}"),
                format!("{:.2}", client + hop + target),
            ]
        })
        .collect();
    report.table(
        &[
            "path",
            "MB/s, median [min-max]",
            "vs ProxyJump",
            "vs direct",
            "CPU client",
            "CPU hop",
            "CPU target",
            "CPU total",
        ],
        &rows,
    );
    let hop = cpu[3][1].median();
    let recording_cpu = recording.cpu.median();
    report.note(&format!(
        "portcullis hop, CPU s per GiB: recording {recording_cpu:.2}, network {:.2}; \
         store grew {:.0} MiB per GiB recorded.",
        hop - recording_cpu,
        recording.store_mib.median()
    ));
    for e in errors.iter().take(5) {
        report.note(&format!("error: {e}"));
    }
    let ours = samples[3].median();
    let what = match direction {
        Direction::Download => "download",
        Direction::Upload => "upload",
    };
    let case = format!("{what} {}, {}", workload.name(), cipher.name());
    report.target(
        &format!("{case}: >= 1.3x ProxyJump"),
        format!("{ours:.0} MB/s = {}", ratio(ours, jump)),
        ">= 1.30x",
        ours / jump >= 1.3,
    );
    report.target(
        &format!("{case}: >= 0.8x direct"),
        format!("{ours:.0} MB/s = {}", ratio(ours, direct)),
        ">= 0.80x",
        ours / direct >= 0.8,
    );
    if workload == Workload::Random {
        report.target(
            &format!("{case}: recording <= 1 CPU s/GiB"),
            format!("{recording_cpu:.2} CPU s/GiB"),
            "<= 1.00",
            recording_cpu <= 1.0,
        );
    }
    let result = if record_problems.is_empty() {
        Ok(format!(
            "{recorded_runs} runs, every byte in the store ({bytes} each)"
        ))
    } else {
        Err(record_problems.join("; "))
    };
    report.check(&format!("{case}: recorded"), result);
    if !errors.is_empty() {
        report.check(
            &format!("{case}: every run succeeded"),
            Err(errors.join("; ")),
        );
    }
}

/// CPU seconds so far of the bastion's recording threads.
fn recording_cpu(lab: &Lab) -> f64 {
    RECORDING_THREADS
        .iter()
        .map(|name| thread_cpu_seconds(lab.bastion_pid(), name))
        .sum()
}

/// CPU seconds so far of the client side, the hop and the target.
fn cpu_now(lab: &Lab, route: Route) -> [f64; 3] {
    let hop = match route {
        Route::Direct => 0.0,
        Route::Portcullis => cpu_seconds(lab.bastion_pid(), false),
        Route::ProxyJump | Route::Relay => cpu_seconds(lab.jump_pid(), true),
    };
    [
        children_cpu_seconds(),
        hop,
        cpu_seconds(lab.target_pid(), true),
    ]
}
