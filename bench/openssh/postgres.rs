//! A throwaway PostgreSQL for the cluster phase (Debian's package):
//! `initdb` into the lab, the server on a free loopback port, stopped
//! when the handle drops. As root the server runs as the `postgres` user
//! the package creates (PostgreSQL refuses to run as root).
//!
//! Durability is the server's default (`fsync` and `synchronous_commit`
//! on): the cluster's control state is meant to survive a crash, so the
//! bench pays what production pays.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::lab::{free_port, run};

pub struct Postgres {
    pub port: u16,
    bin: PathBuf,
    data: PathBuf,
}

impl Postgres {
    /// Creates and starts a server in `dir` (created), with a database
    /// `portcullis` owned by role `portcullis`, trusted from loopback.
    pub fn start(dir: &Path) -> Result<Postgres, String> {
        let bin = server_bin()?;
        let data = dir.join("data");
        let socket_dir = dir.join("sock");
        let log = dir.join("postgres.log");
        for sub in [&data, &socket_dir] {
            fs::create_dir_all(sub).map_err(|e| format!("create {}: {e}", sub.display()))?;
        }
        fs::write(&log, "").map_err(|e| format!("create {}: {e}", log.display()))?;
        if is_root() {
            // The server user must reach its files: the lab (root's, 0700)
            // gets search permission only, this directory a plain 0755.
            if let Some(lab) = dir.parent() {
                chmod(lab, 0o711)?;
            }
            chmod(dir, 0o755)?;
            for path in [&data, &socket_dir, &log] {
                run(
                    Command::new("chown").arg("postgres:postgres").arg(path),
                    "chown postgres",
                )?;
            }
        }
        run(
            as_server_user(&bin.join("initdb"))
                .arg("-D")
                .arg(&data)
                .args(["-U", "portcullis", "--auth=trust", "-E", "UTF8"])
                // Only initdb's own flush is skipped; the server keeps fsync.
                .arg("--no-sync"),
            "initdb",
        )?;
        let port = free_port()?;
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1",
            socket_dir.display()
        );
        run(
            as_server_user(&bin.join("pg_ctl"))
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(&log)
                .args(["-o", &options, "-w", "-t", "30", "start"]),
            "pg_ctl start",
        )?;
        let pg = Postgres { port, bin, data };
        run(
            Command::new(pg.bin.join("createdb"))
                .args(["-h", "127.0.0.1", "-p", &port.to_string()])
                .args(["-U", "portcullis", "portcullis"]),
            "createdb",
        )?;
        Ok(pg)
    }

    /// The connection string replicas are configured with.
    pub fn url(&self) -> String {
        format!("postgres://portcullis@127.0.0.1:{}/portcullis", self.port)
    }

    /// The server's version and durability settings, as it reports them.
    pub fn describe(&self) -> String {
        let show = |name: &str| {
            self.psql(&format!("SHOW {name}"))
                .unwrap_or_else(|e| format!("unknown: {e}"))
        };
        format!(
            "PostgreSQL {} (fsync = {}, synchronous_commit = {})",
            show("server_version"),
            show("fsync"),
            show("synchronous_commit")
        )
    }

    /// Runs one SQL statement; its output, unaligned and without headers.
    pub fn psql(&self, sql: &str) -> Result<String, String> {
        run(
            Command::new(self.bin.join("psql"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
                .args(["-U", "portcullis", "-d", "portcullis", "-At"])
                .args(["-v", "ON_ERROR_STOP=1", "-c", sql]),
            "psql",
        )
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = as_server_user(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

/// The newest installed server's bin directory.
fn server_bin() -> Result<PathBuf, String> {
    let mut found: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .map_err(|e| format!("PostgreSQL is not installed (apt-get install postgresql): {e}"))?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, bin)| bin)
        .ok_or_else(|| "no initdb under /usr/lib/postgresql/*/bin".to_string())
}

fn is_root() -> bool {
    // The effective uid, as /proc reports it (no libc call needed).
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

fn as_server_user(program: &Path) -> Command {
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn chmod(path: &Path, mode: u32) -> Result<(), String> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {}: {e}", path.display()))
}
