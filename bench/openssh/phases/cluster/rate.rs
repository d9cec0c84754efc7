//! Sessions per second admitted: N clients, each opening whole sessions
//! (`ssh HOST true`) back to back for T seconds.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use crate::procs::timed;

use super::latency::ssh;
use super::setup::ClusterLab;

/// What one burst against one host came to.
#[derive(Debug, Clone, Copy, Default)]
pub struct Burst {
    pub sessions: usize,
    pub seconds: f64,
    pub errors: usize,
}

impl Burst {
    pub fn add(&mut self, other: Burst) {
        self.sessions += other.sessions;
        self.seconds += other.seconds;
        self.errors += other.errors;
    }

    pub fn per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.sessions as f64 / self.seconds
        } else {
            f64::NAN
        }
    }
}

/// `clients` threads, each running `ssh HOST true` until `length` has
/// passed; the wall time runs until the last session started in time has
/// ended. The first few errors go to `errors`.
pub fn burst(
    cluster: &ClusterLab,
    host: &str,
    clients: usize,
    length: Duration,
    errors: &Mutex<Vec<String>>,
) -> Burst {
    let sessions = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    let start = Instant::now();
    let deadline = start + length;
    thread::scope(|s| {
        for _ in 0..clients {
            s.spawn(|| {
                while Instant::now() < deadline {
                    match timed(&mut ssh(&cluster.ssh_config, host, "true")) {
                        Ok(_) => {
                            sessions.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            if let Ok(mut list) = errors.lock() {
                                if list.len() < 5 {
                                    list.push(format!("{host}: {e}"));
                                }
                            }
                        }
                    }
                }
            });
        }
    });
    Burst {
        sessions: sessions.into_inner(),
        seconds: start.elapsed().as_secs_f64(),
        errors: failed.into_inner(),
    }
}
