//! Processes: long-running daemons, memory of a process tree, timing runs.

use std::fs::{self, File};
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// A long-running child process, killed (and reaped) on drop.
pub struct Daemon {
    child: Child,
    pub log: PathBuf,
}

impl Daemon {
    pub fn spawn(cmd: &mut Command, log: &Path) -> Result<Daemon, String> {
        let file = File::create(log).map_err(|e| format!("create {}: {e}", log.display()))?;
        let out = file.try_clone().map_err(|e| e.to_string())?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(file)
            .spawn()
            .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
        Ok(Daemon {
            child,
            log: log.to_path_buf(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until `port` accepts a TCP connection (or the process exits).
    pub fn wait_listening(&mut self, port: u16, what: &str) -> Result<(), String> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "{what} exited ({status}) before listening on {addr}:\n{}",
                    tail(&self.log, 30)
                ));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("{what} is not listening on {addr} after 20 s"));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Daemon {
    /// Kills the process and reaps it.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The last `n` lines of a file.
pub fn tail(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs `cmd` to completion with stdout discarded; its wall time, or its
/// stderr when it failed.
pub fn timed(cmd: &mut Command) -> Result<Duration, String> {
    let start = Instant::now();
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    let elapsed = start.elapsed();
    succeeded(cmd, &out).map(|()| elapsed)
}

/// Runs `cmd` with the stdout of `producer` as its stdin.
pub fn timed_with_input(producer: &mut Command, cmd: &mut Command) -> Result<Duration, String> {
    let start = Instant::now();
    let mut source = producer
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {producer:?}: {e}"))?;
    let input = source.stdout.take().ok_or("no producer stdout")?;
    let out = cmd
        .stdin(Stdio::from(input))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    let elapsed = start.elapsed();
    let _ = source.wait();
    succeeded(cmd, &out).map(|()| elapsed)
}

/// `Ok` if `cmd` exited 0, else its command line, status and stderr.
fn succeeded(cmd: &Command, out: &std::process::Output) -> Result<(), String> {
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{} ({}): {}",
        describe(cmd),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}

/// A command line for messages (program and arguments, no environment).
pub fn describe(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

fn status_field_kib(pid: u32, field: &str) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    kib_field(&text, field)
}

fn kib_field(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Resident set size of one process, KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_field_kib(pid, "VmRSS:")
}

/// Proportional set size of one process, KiB (shared pages divided among
/// their users: the fair figure for many forked processes).
pub fn pss_kib(pid: u32) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    kib_field(&text, "Pss:")
}

/// Every live descendant of `root` (not `root` itself).
pub fn descendants(root: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // The command name is in parentheses and may hold spaces.
            let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                continue;
            };
            if let Some(ppid) = after
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse::<u32>().ok())
            {
                parent_of.push((pid, ppid));
            }
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        found.extend(parent_of.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    found.remove(0);
    found
}

/// CPU seconds (user + system) a process has used; with `children`, also
/// what its children that it has reaped used (sshd's listener reaps each
/// connection's processes, so this covers every session it served).
pub fn cpu_seconds(pid: u32, children: bool) -> f64 {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return 0.0;
    };
    // Fields after the command name start at 3 (state); utime is 14.
    let fields: Vec<u64> = after
        .split_whitespace()
        .skip(11)
        .take(4)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let ticks: u64 = if children {
        fields.iter().sum()
    } else {
        fields.iter().take(2).sum()
    };
    // USER_HZ is 100 on Linux.
    ticks as f64 / 100.0
}

/// CPU seconds (user + system) the threads of `pid` whose name starts with
/// `prefix` have used (the kernel keeps 15 bytes of a thread's name).
pub fn thread_cpu_seconds(pid: u32, prefix: &str) -> f64 {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0.0;
    };
    let mut ticks = 0u64;
    for task in tasks.flatten() {
        let Ok(stat) = fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if !stat[open + 1..close].starts_with(prefix) {
            continue;
        }
        ticks += stat[close + 1..]
            .split_whitespace()
            .skip(11)
            .take(2)
            .map(|f| f.parse::<u64>().unwrap_or(0))
            .sum::<u64>();
    }
    ticks as f64 / 100.0
}

/// CPU seconds of this process's reaped children (the ssh clients it ran).
pub fn children_cpu_seconds() -> f64 {
    cpu_seconds(std::process::id(), true) - cpu_seconds(std::process::id(), false)
}

/// Memory of a set of processes, KiB.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    pub processes: usize,
    pub rss_kib: u64,
    pub pss_kib: u64,
}

pub fn memory_of(pids: &[u32]) -> Memory {
    let mut m = Memory::default();
    for &pid in pids {
        if let Some(rss) = rss_kib(pid) {
            m.processes += 1;
            m.rss_kib += rss;
            m.pss_kib += pss_kib(pid).unwrap_or(0);
        }
    }
    m
}

/// Samples a value (a process's RSS, a tree's memory) every `every`.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Vec<(Duration, u64)>>,
}

impl Sampler {
    pub fn start(every: Duration, mut probe: impl FnMut() -> u64 + Send + 'static) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = thread::spawn(move || {
            let start = Instant::now();
            let mut samples = Vec::new();
            while !flag.load(Ordering::SeqCst) {
                samples.push((start.elapsed(), probe()));
                thread::sleep(every);
            }
            samples.push((start.elapsed(), probe()));
            samples
        });
        Sampler { stop, handle }
    }

    /// Stops sampling; the samples with their time since the start.
    pub fn finish(self) -> Vec<(Duration, u64)> {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().unwrap_or_default()
    }
}

/// Reads `reader` to its end, returning how many bytes came.
pub fn drain(mut reader: impl Read) -> u64 {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        match reader.read(&mut buf) {
            Ok(0) | Err(_) => return total,
            Ok(n) => total += n as u64,
        }
    }
}
