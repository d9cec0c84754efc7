//! Download (`head -c N /dev/zero`) and upload (`cat > /dev/null`) through
//! one exec, along every route, with each side's default cipher and with
//! aes128-gcm forced. Every portcullis run is checked byte for byte against
//! the store.

use std::process::Command;
use std::thread;
use std::time::Duration;

use crate::lab::Lab;
use crate::procs::{children_cpu_seconds, cpu_seconds, timed, timed_with_input};
use crate::report::Report;
use crate::route::{ssh, Cipher, Route};
use crate::stats::{ratio, Samples};
use crate::store;
use crate::Sizes;

const ROUTES: [Route; 4] = [
    Route::Direct,
    Route::ProxyJump,
    Route::Relay,
    Route::Portcullis,
];

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
         depend much on what else the machine runs.",
    );
    for direction in [Direction::Download, Direction::Upload] {
        for cipher in [Cipher::Default, Cipher::Aes128Gcm] {
            measure(lab, sizes, report, direction, cipher);
            report.save();
        }
    }
}

fn measure(lab: &Lab, sizes: &Sizes, report: &mut Report, direction: Direction, cipher: Cipher) {
    let (bytes, label) = match direction {
        Direction::Download => (
            sizes.download_bytes,
            format!(
                "Download {} MiB (`head -c {} /dev/zero`), {}",
                sizes.download_bytes >> 20,
                sizes.download_bytes,
                cipher.name()
            ),
        ),
        Direction::Upload => (
            sizes.upload_bytes,
            format!(
                "Upload {} MiB (`cat > /dev/null`), {}",
                sizes.upload_bytes >> 20,
                cipher.name()
            ),
        ),
    };
    eprintln!("bench: {label}");
    let mut samples = vec![Samples::default(); ROUTES.len()];
    let mut cpu = vec![[Samples::default(), Samples::default(), Samples::default()]; ROUTES.len()];
    let mut errors = Vec::new();
    let mut record_problems = Vec::new();
    let mut recorded_runs = 0;
    for _ in 0..sizes.reps {
        for (i, route) in ROUTES.iter().enumerate() {
            let before = store::last_session(lab).unwrap_or(0);
            let cpu_before = cpu_now(lab, *route);
            let result = match direction {
                Direction::Download => timed(&mut ssh(
                    lab,
                    *route,
                    cipher,
                    &format!("head -c {bytes} /dev/zero"),
                )),
                Direction::Upload => timed_with_input(
                    Command::new("head").args(["-c", &bytes.to_string(), "/dev/zero"]),
                    &mut ssh(lab, *route, cipher, "cat > /dev/null"),
                ),
            };
            match result {
                Ok(t) => {
                    samples[i].push(bytes as f64 / t.as_secs_f64() / 1e6);
                    // sshd reaps the session's processes a moment after.
                    thread::sleep(Duration::from_millis(300));
                    let used = cpu_now(lab, *route);
                    let gib = bytes as f64 / (1u64 << 30) as f64;
                    for (k, (a, b)) in used.iter().zip(cpu_before).enumerate() {
                        cpu[i][k].push((a - b) / gib);
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
    for e in errors.iter().take(5) {
        report.note(&format!("error: {e}"));
    }
    let ours = samples[3].median();
    let what = match direction {
        Direction::Download => "download",
        Direction::Upload => "upload",
    };
    report.target(
        &format!("{what}, {}: >= 1.3x ProxyJump", cipher.name()),
        format!("{ours:.0} MB/s = {}", ratio(ours, jump)),
        ">= 1.30x",
        ours / jump >= 1.3,
    );
    report.target(
        &format!("{what}, {}: >= 0.8x direct", cipher.name()),
        format!("{ours:.0} MB/s = {}", ratio(ours, direct)),
        ">= 0.80x",
        ours / direct >= 0.8,
    );
    let result = if record_problems.is_empty() {
        Ok(format!(
            "{recorded_runs} runs, every byte in the store ({bytes} each)"
        ))
    } else {
        Err(record_problems.join("; "))
    };
    report.check(&format!("{what}, {}: recorded", cipher.name()), result);
    if !errors.is_empty() {
        report.check(
            &format!("{what}, {}: every run succeeded", cipher.name()),
            Err(errors.join("; ")),
        );
    }
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
