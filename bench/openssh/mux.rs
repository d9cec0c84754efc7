//! ControlMaster connections: one SSH connection (one portcullis session)
//! that many `ssh` runs share, each as one more channel.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::lab::Lab;
use crate::procs::timed;
use crate::route::{mux_client_at, mux_exit_at, mux_master_at, Route};
use crate::stats::Samples;

/// A running ControlMaster; asked to exit (then killed) on drop.
pub struct Master {
    config: PathBuf,
    host: String,
    pub socket: PathBuf,
    child: Child,
}

impl Master {
    pub fn open(lab: &Lab, route: Route, socket: PathBuf) -> Result<Master, String> {
        Master::open_at(&lab.config_default, route.host(), socket)
    }

    /// A master to `host` of the ssh client config `config` (hosts that
    /// are not a [`Route`], such as the cluster phase's balancer fronts).
    pub fn open_at(config: &Path, host: &str, socket: PathBuf) -> Result<Master, String> {
        let _ = std::fs::remove_file(&socket);
        let child = mux_master_at(config, host, &socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("ssh -M: {e}"))?;
        let mut master = Master {
            config: config.to_path_buf(),
            host: host.to_string(),
            socket,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !master.socket.exists() {
            if let Ok(Some(status)) = master.child.try_wait() {
                return Err(format!("{host} master exited: {status}"));
            }
            if Instant::now() > deadline {
                return Err(format!("{host} master: no control socket"));
            }
            thread::sleep(Duration::from_millis(10));
        }
        Ok(master)
    }

    /// `command` as one more channel on this connection.
    pub fn client(&self, command: &str) -> Command {
        mux_client_at(&self.config, &self.host, &self.socket, command)
    }
}

impl Drop for Master {
    fn drop(&mut self) {
        let _ = mux_exit_at(&self.config, &self.host, &self.socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Unmeasured runs on each master before the measured ones.
pub const EXEC_WARMUP: usize = 3;

/// `ssh -S ctl HOST true` on every master in turn, `reps` measured rounds
/// after [`EXEC_WARMUP`]: each master's times in ms, and the errors.
pub fn exec_samples(masters: &[Master], reps: usize) -> (Vec<Samples>, Vec<String>) {
    let mut samples = vec![Samples::default(); masters.len()];
    let mut errors = Vec::new();
    for rep in 0..reps + EXEC_WARMUP {
        for (i, master) in masters.iter().enumerate() {
            match timed(&mut master.client("true")) {
                Ok(t) if rep >= EXEC_WARMUP => samples[i].push(t.as_secs_f64() * 1e3),
                Ok(_) => {}
                Err(e) => errors.push(e),
            }
        }
    }
    (samples, errors)
}
