//! What the throughput phase moves: incompressible bytes, and typical text
//! (a source tree through `tar`), each a file in the lab that every route
//! reads the same way (`cat FILE` down, `cat > /dev/null` fed from it up).
//!
//! Invariant: both files exist, `bytes` long, before the first transfer,
//! and are the same bytes for every route and repetition of a run.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Pseudo-random bytes: no codec shrinks them.
    Random,
    /// A tar stream of Rust source trees (the cargo registry's, or
    /// /usr/share when there is none): text as an agent's `cat` or `tar`
    /// sends it.
    Text,
}

impl Workload {
    pub const ALL: [Workload; 2] = [Workload::Random, Workload::Text];

    pub fn name(self) -> &'static str {
        match self {
            Workload::Random => "incompressible",
            Workload::Text => "text (tar of source trees)",
        }
    }

    pub fn file(self, lab_dir: &Path) -> PathBuf {
        lab_dir.join(match self {
            Workload::Random => "workload-random.bin",
            Workload::Text => "workload-text.tar",
        })
    }
}

/// Writes both workload files, `bytes` each, into `lab_dir`.
pub fn prepare(lab_dir: &Path, bytes: u64) -> Result<(), String> {
    write_random(&Workload::Random.file(lab_dir), bytes)?;
    write_text(&Workload::Text.file(lab_dir), bytes)
}

fn write_random(path: &Path, bytes: u64) -> Result<(), String> {
    let mut file = File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut block = vec![0u8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        for word in block.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        let n = left.min(block.len() as u64) as usize;
        file.write_all(&block[..n]).map_err(|e| e.to_string())?;
        left -= n as u64;
    }
    Ok(())
}

/// Source trees to tar, the largest first that exists.
fn text_source() -> Option<PathBuf> {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let candidates = cargo_home
        .map(|h| h.join("registry/src"))
        .into_iter()
        .chain([PathBuf::from("/usr/share")]);
    candidates.into_iter().find(|p| p.is_dir())
}

fn write_text(path: &Path, bytes: u64) -> Result<(), String> {
    let source = text_source().ok_or("no source tree to tar for the text workload")?;
    let mut file = File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut left = bytes;
    while left > 0 {
        let mut tar = Command::new("tar")
            .args(["-cf", "-", "--ignore-failed-read", "-C"])
            .arg(&source)
            .arg(".")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("tar: {e}"))?;
        let mut out = tar.stdout.take().ok_or("tar has no stdout")?;
        let mut buf = vec![0u8; 1 << 20];
        let mut wrote_any = false;
        while left > 0 {
            let n = out.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            let n = n.min(left as usize);
            file.write_all(&buf[..n]).map_err(|e| e.to_string())?;
            left -= n as u64;
            wrote_any = true;
        }
        let _ = tar.kill();
        let _ = tar.wait();
        if !wrote_any {
            return Err(format!("tar of {} gave nothing", source.display()));
        }
    }
    Ok(())
}

/// Bytes of the store on disk: the database, its WAL, and anything beside
/// it named after it (a payload directory).
pub fn store_bytes(store: &Path) -> u64 {
    let Some(dir) = store.parent() else {
        return 0;
    };
    let name = store
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&name))
        .map(|e| size_of(&e.path()))
        .sum()
}

fn size_of(path: &Path) -> u64 {
    match fs::metadata(path) {
        Ok(m) if m.is_dir() => fs::read_dir(path)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| size_of(&e.path()))
            .sum(),
        Ok(m) => m.len(),
        Err(_) => 0,
    }
}
