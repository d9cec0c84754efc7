//! The running server's process id, beside its store (`<store>.pid`), so
//! `portcullis reload` can find the server that writes a store.
//!
//! Invariant: the file names a live `portcullis serve` or is stale; a
//! reader checks the process before signalling it. Only one server writes
//! a store (the payload segments' lock), so there is one file per store.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Where the server writing `store` keeps its pid.
pub fn path(store: &Path) -> PathBuf {
    let mut name = store.as_os_str().to_owned();
    name.push(".pid");
    PathBuf::from(name)
}

/// Removes the file when the server stops.
pub struct PidFile(PathBuf);

impl PidFile {
    pub fn write(store: &Path) -> std::io::Result<PidFile> {
        let path = path(store);
        let mut file = std::fs::File::create(&path)?;
        writeln!(file, "{}", std::process::id())?;
        Ok(PidFile(path))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The pid of the server writing `store`, when one runs.
pub fn running_server(store: &Path) -> Result<u32, String> {
    let path = path(store);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "{}: {e} (is portcullis serve running on this store?)",
            path.display()
        )
    })?;
    let pid: u32 = text
        .trim()
        .parse()
        .map_err(|_| format!("{}: not a process id", path.display()))?;
    // A stale file may name a pid reused by another program.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let is_server = cmdline.split(|b| *b == 0).any(|arg| arg == b"serve")
        && String::from_utf8_lossy(&cmdline).contains("portcullis");
    if !is_server {
        return Err(format!(
            "{}: process {pid} is not a running portcullis serve (a stale file?)",
            path.display()
        ));
    }
    Ok(pid)
}
