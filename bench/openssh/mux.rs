//! ControlMaster connections: one SSH connection (one portcullis session)
//! that many `ssh` runs share, each as one more channel.

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::lab::Lab;
use crate::route::{mux_exit, mux_master, Route};

/// A running ControlMaster; asked to exit (then killed) on drop.
pub struct Master<'a> {
    lab: &'a Lab,
    pub route: Route,
    pub socket: PathBuf,
    child: Child,
}

impl<'a> Master<'a> {
    pub fn open(lab: &'a Lab, route: Route, socket: PathBuf) -> Result<Master<'a>, String> {
        let _ = std::fs::remove_file(&socket);
        let child = mux_master(lab, route, &socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("ssh -M: {e}"))?;
        let mut master = Master {
            lab,
            route,
            socket,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !master.socket.exists() {
            if let Ok(Some(status)) = master.child.try_wait() {
                return Err(format!("{} master exited: {status}", route.name()));
            }
            if Instant::now() > deadline {
                return Err(format!("{} master: no control socket", route.name()));
            }
            thread::sleep(Duration::from_millis(10));
        }
        Ok(master)
    }
}

impl Drop for Master<'_> {
    fn drop(&mut self) {
        let _ = mux_exit(self.lab, self.route, &self.socket)
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
