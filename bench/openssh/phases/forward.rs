//! Forward throughput: `ssh -L` to a loopback TCP sink, direct vs
//! ProxyJump vs portcullis.
//!
//! Before measuring, [`portcullis_forwards`] checks that the bastion
//! forwards to the sink at all (the lab's role opens `127.0.0.1:*`, see
//! lab.rs); if it does not, the portcullis row is reported as not measured
//! with the reason, and the OpenSSH rows are still measured.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use crate::lab::Lab;
use crate::report::Report;
use crate::route::Route;
use crate::stats::{ratio, Samples};
use crate::Sizes;

/// A loopback TCP server that reads each connection to its end and reports
/// how many bytes came.
struct Sink {
    port: u16,
    received: Receiver<u64>,
}

impl Sink {
    fn start() -> Result<Sink, String> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let (tx, received) = mpsc::channel();
        thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let tx = tx.clone();
                thread::spawn(move || {
                    let n = crate::procs::drain(&conn);
                    let _ = tx.send(n);
                });
            }
        });
        Ok(Sink { port, received })
    }

    fn forget_earlier(&self) {
        while self.received.try_recv().is_ok() {}
    }
}

/// `ssh -N -L LOCAL:127.0.0.1:SINK HOST`, killed on drop.
struct Forward {
    child: Child,
    local: u16,
}

impl Forward {
    fn open(lab: &Lab, route: Route, sink: &Sink) -> Result<Forward, String> {
        let local = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let child = std::process::Command::new("ssh")
            .arg("-F")
            .arg(&lab.config_default)
            .args(["-N", "-o", "ExitOnForwardFailure=yes", "-L"])
            .arg(format!("{local}:127.0.0.1:{}", sink.port))
            .arg(route.host())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        let mut fwd = Forward { child, local };
        let deadline = Instant::now() + Duration::from_secs(30);
        // The local port listens once ssh is logged in.
        loop {
            if let Ok(Some(status)) = fwd.child.try_wait() {
                return Err(format!("ssh -L exited: {status}"));
            }
            if TcpStream::connect(("127.0.0.1", local)).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                return Err("ssh -L: local port never listened".into());
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(fwd)
    }

    /// Sends `bytes` through the forward; the time until the sink has them all.
    fn send(&self, sink: &Sink, bytes: u64) -> Result<Duration, String> {
        thread::sleep(Duration::from_millis(200));
        sink.forget_earlier();
        let start = Instant::now();
        let mut conn = TcpStream::connect(("127.0.0.1", self.local)).map_err(|e| e.to_string())?;
        let block = vec![0u8; 1 << 20];
        let mut sent = 0u64;
        while sent < bytes {
            let n = block.len().min((bytes - sent) as usize);
            conn.write_all(&block[..n]).map_err(|e| e.to_string())?;
            sent += n as u64;
        }
        conn.shutdown(Shutdown::Write).map_err(|e| e.to_string())?;
        let got = sink
            .received
            .recv_timeout(Duration::from_secs(300))
            .map_err(|_| "the sink got nothing".to_string())?;
        let elapsed = start.elapsed();
        let mut rest = Vec::new();
        let _ = conn.read_to_end(&mut rest);
        if got == bytes {
            Ok(elapsed)
        } else {
            Err(format!("the sink got {got} of {bytes} bytes"))
        }
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a forward through portcullis carries bytes on this branch.
fn portcullis_forwards(lab: &Lab, sink: &Sink) -> Result<(), String> {
    let fwd = Forward::open(lab, Route::Portcullis, sink)?;
    fwd.send(sink, 64 * 1024).map(|_| ())
}

pub fn run(lab: &Lab, sizes: &Sizes, report: &mut Report) {
    let bytes = sizes.forward_bytes;
    report.section(&format!(
        "Forward throughput (`ssh -L`, {} MiB to a loopback sink, default cipher)",
        bytes >> 20
    ));
    let sink = match Sink::start() {
        Ok(s) => s,
        Err(e) => {
            report.note(&format!("no sink: {e}"));
            return;
        }
    };
    let mut routes = vec![Route::Direct, Route::ProxyJump];
    match portcullis_forwards(lab, &sink) {
        Ok(()) => routes.push(Route::Portcullis),
        Err(e) => report.note(&format!(
            "portcullis: not measured: the probe forward failed ({e})"
        )),
    }
    let mut samples = vec![Samples::default(); routes.len()];
    let mut errors = Vec::new();
    for _ in 0..sizes.reps {
        for (i, route) in routes.iter().enumerate() {
            let result = Forward::open(lab, *route, &sink).and_then(|f| f.send(&sink, bytes));
            match result {
                Ok(t) => samples[i].push(bytes as f64 / t.as_secs_f64() / 1e6),
                Err(e) => errors.push(format!("{}: {e}", route.name())),
            }
        }
    }
    let direct = samples[0].median();
    let jump = samples[1].median();
    let rows: Vec<Vec<String>> = routes
        .iter()
        .zip(&samples)
        .map(|(route, s)| {
            vec![
                route.name().to_string(),
                s.summary(0),
                ratio(s.median(), jump),
                ratio(s.median(), direct),
            ]
        })
        .collect();
    report.table(
        &[
            "path",
            "MB/s, median [min-max]",
            "vs ProxyJump",
            "vs direct",
        ],
        &rows,
    );
    for e in errors.iter().take(5) {
        report.note(&format!("error: {e}"));
    }
}
