//! Connect latency: `ssh HOST true`, a whole connection per run
//! (handshake, authentication, one exec, teardown).

use crate::lab::Lab;
use crate::procs::timed;
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

pub fn run(lab: &Lab, sizes: &Sizes, report: &mut Report) {
    report.section("Connect latency (`ssh HOST true`)");
    let before = store::last_session(lab).unwrap_or(0);
    let mut samples = vec![Samples::default(); ROUTES.len()];
    let mut errors = Vec::new();
    let mut portcullis_runs = 0;
    // One warm-up each (page cache, sshd's first fork), then interleaved.
    for rep in 0..=sizes.connect_reps {
        for (i, route) in ROUTES.iter().enumerate() {
            let result = timed(&mut ssh(lab, *route, Cipher::Default, "true"));
            if *route == Route::Portcullis {
                portcullis_runs += 1;
            }
            match result {
                Ok(t) if rep > 0 => samples[i].push(t.as_secs_f64()),
                Ok(_) => {}
                Err(e) => errors.push(format!("{}: {e}", route.name())),
            }
        }
    }
    let direct = samples[0].median();
    let jump = samples[1].median();
    let rows: Vec<Vec<String>> = ROUTES
        .iter()
        .zip(&samples)
        .map(|(route, s)| {
            vec![
                route.name().to_string(),
                s.summary(3),
                ratio(s.median(), jump),
                ratio(s.median(), direct),
            ]
        })
        .collect();
    report.table(
        &[
            "path",
            "seconds, median [min-max]",
            "vs ProxyJump",
            "vs direct",
        ],
        &rows,
    );
    for e in errors.iter().take(5) {
        report.note(&format!("error: {e}"));
    }
    let ours = samples[3].median();
    report.target(
        "connect latency <= 1.2x ProxyJump",
        format!("{:.3} s = {}", ours, ratio(ours, jump)),
        "<= 1.20x",
        ours / jump <= 1.2,
    );
    report.check(
        "connect: every portcullis connection recorded",
        store::check_sessions(lab, before, portcullis_runs, |r| {
            if r.exec_allowed == 1 && r.exit_status == 1 && r.exit_nonzero == 0 {
                Ok(())
            } else {
                Err("expected one exec and exit status 0".into())
            }
        }),
    );
    if !errors.is_empty() {
        report.check("connect: every run succeeded", Err(errors.join("; ")));
    }
}
