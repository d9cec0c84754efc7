//! The writer's end of the payload: appends rows' bytes to the current
//! segment, with direct I/O where the filesystem has it.
//!
//! Why direct I/O: a buffered write copies every byte into the page cache,
//! and on a machine whose memory is full of cache (any long-running one)
//! each new page is first reclaimed from something else: about 3 CPU s per
//! GiB recorded on the benchmark machine, most of the recording cost. With
//! `O_DIRECT` the disk reads the bytes from one reused, aligned buffer
//! (0.14 CPU s per GiB measured with `dd`). Where `O_DIRECT` is refused
//! (some filesystems), writes are buffered and the synced range is then
//! dropped from the cache, so that its pages serve the next writes.
//!
//! Invariant: after [`Appender::sync`], every byte appended is on disk;
//! what the file holds past the logical end is zeros of the last block.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io;
use std::num::NonZeroU64;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{params, Connection};
use rustix::fs::{fadvise, Advice, OFlags};

use super::blocks::{Blocks, BLOCK};
use super::{dir_of, io_error, segment_path, PayloadRef, SEGMENT_BYTES};
use crate::audit::StoreError;

/// Bytes gathered before whole blocks are written out: large enough for
/// the disk to stream, small enough to stay in the CPU's cache.
const BUFFER_BYTES: usize = 1 << 20;

/// Most bytes copied before they are shown: small enough to be still in
/// the core's cache when they are read again.
const PIECE_BYTES: usize = 64 << 10;

pub(crate) struct Appender {
    dir: PathBuf,
    segment: i64,
    file: File,
    direct: bool,
    /// The bytes not yet written (from the last block boundary on).
    pending: Blocks,
    /// Bytes appended since the last sync.
    unsynced: bool,
    /// Where the last sync ended (buffered mode drops the cache before it).
    synced_to: u64,
    /// Held for the appender's life: the directory's exclusive lock.
    _lock: File,
}

impl Appender {
    /// Opens the payload of the store at `store` for appending: takes the
    /// lock (waiting up to `wait` for it), and cuts the last segment back
    /// to what committed rows name.
    pub(crate) fn open(
        store: &Path,
        conn: &Connection,
        wait: Duration,
    ) -> Result<Appender, StoreError> {
        Appender::open_with(store, conn, wait, DirectIo::IfPossible)
    }

    fn open_with(
        store: &Path,
        conn: &Connection,
        wait: Duration,
        io: DirectIo,
    ) -> Result<Appender, StoreError> {
        let dir = dir_of(store);
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| io_error(&dir, e))?;
        let lock = take_lock(&dir, wait)?;
        let last = last_segment(&dir)?.max(1);
        let committed: i64 = conn.query_row(
            "SELECT COALESCE(MAX(payload_offset + payload_len), 0) FROM events
             WHERE payload_segment = ?1",
            params![last],
            |row| row.get(0),
        )?;
        let committed = u64::try_from(committed).unwrap_or(0);
        let (segment, opened) = match open_segment(&dir, last, committed, io)? {
            Some(opened) => (last, opened),
            // The segment lost bytes that rows name: never write over
            // offsets they name (verify reports them), start the next one.
            None => (
                last + 1,
                open_segment(&dir, last + 1, 0, io)?.ok_or_else(new_segment_not_empty)?,
            ),
        };
        let (file, direct, pending) = opened;
        Ok(Appender {
            dir,
            segment,
            synced_to: pending.end(),
            file,
            direct,
            pending,
            unsynced: false,
            _lock: lock,
        })
    }

    /// Appends the consecutive `parts` of one row, showing each piece to
    /// `copied` right after copying it (while it is in cache); returns
    /// where they are.
    pub(crate) fn append(
        &mut self,
        parts: &[&[u8]],
        mut copied: impl FnMut(&[u8]),
    ) -> Result<PayloadRef, StoreError> {
        if self.pending.end() >= SEGMENT_BYTES {
            self.next_segment()?;
        }
        let offset = self.pending.end();
        for part in parts {
            let mut rest: &[u8] = part;
            while !rest.is_empty() {
                if self.pending.space() == 0 {
                    self.write_full_blocks()?;
                }
                let n = self.pending.fill(&rest[..rest.len().min(PIECE_BYTES)]);
                copied(&rest[..n]);
                rest = &rest[n..];
            }
        }
        if self.pending.end() - self.pending.start() >= BUFFER_BYTES as u64 {
            self.write_full_blocks()?;
        }
        let len = self.pending.end() - offset;
        self.unsynced |= len > 0;
        Ok(PayloadRef {
            segment: self.segment,
            offset: i64::try_from(offset).unwrap_or(i64::MAX),
            len: i64::try_from(len).unwrap_or(i64::MAX),
        })
    }

    /// Puts everything appended on disk (before a commit that syncs).
    pub(crate) fn sync(&mut self) -> Result<(), StoreError> {
        if !self.unsynced {
            return Ok(());
        }
        let path = segment_path(&self.dir, self.segment);
        let start = self.pending.start();
        self.file
            .write_all_at(self.pending.padded(), start)
            .map_err(|e| io_error(&path, e))?;
        self.file.sync_data().map_err(|e| io_error(&path, e))?;
        self.pending.advance_past_full_blocks();
        self.unsynced = false;
        let end = self.pending.end();
        if !self.direct {
            // Only advice: failing it is harmless.
            let len = NonZeroU64::new(end - self.synced_to);
            let _ = fadvise(&self.file, self.synced_to, len, Advice::DontNeed);
        }
        self.synced_to = end;
        Ok(())
    }

    fn io(&self) -> DirectIo {
        match self.direct {
            true => DirectIo::IfPossible,
            false => DirectIo::Never,
        }
    }

    fn write_full_blocks(&mut self) -> Result<(), StoreError> {
        let path = segment_path(&self.dir, self.segment);
        self.file
            .write_all_at(self.pending.full_blocks(), self.pending.start())
            .map_err(|e| io_error(&path, e))?;
        self.pending.advance_past_full_blocks();
        Ok(())
    }

    fn next_segment(&mut self) -> Result<(), StoreError> {
        self.sync()?;
        let path = segment_path(&self.dir, self.segment);
        // The closed segment ends at its last byte, not a padded block.
        self.file
            .set_len(self.pending.end())
            .map_err(|e| io_error(&path, e))?;
        let (file, direct, pending) = open_segment(&self.dir, self.segment + 1, 0, self.io())?
            .ok_or_else(new_segment_not_empty)?;
        self.segment += 1;
        self.file = file;
        self.direct = direct;
        self.synced_to = pending.end();
        self.pending = pending;
        Ok(())
    }
}

/// Whether to write segments with `O_DIRECT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DirectIo {
    IfPossible,
    /// Buffered writes (what a filesystem without `O_DIRECT` gets).
    Never,
}

fn take_lock(dir: &Path, wait: Duration) -> Result<File, StoreError> {
    let path = dir.join("lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| io_error(&path, e))?;
    // A writer closing on another thread of this process lets go soon.
    let deadline = Instant::now() + wait;
    while lock.try_lock().is_err() {
        if Instant::now() >= deadline {
            return Err(StoreError::Unavailable(format!(
                "{}: another writer is recording into this store",
                dir.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(lock)
}

/// The highest segment number in `dir` (0 when there is none).
fn last_segment(dir: &Path) -> Result<i64, StoreError> {
    let entries = fs::read_dir(dir).map_err(|e| io_error(dir, e))?;
    Ok(entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let name = name.to_str()?;
            name.strip_suffix(".seg")?.parse::<i64>().ok()
        })
        .max()
        .unwrap_or(0))
}

/// Opens segment `segment` for appending at `committed`: cuts off what lies
/// past it (a crash left bytes no row names, or block padding) and loads
/// the partial last block. `None` when the segment is shorter than
/// `committed` (bytes that rows name are gone).
fn open_segment(
    dir: &Path,
    segment: i64,
    committed: u64,
    io: DirectIo,
) -> Result<Option<(File, bool, Blocks)>, StoreError> {
    let path = segment_path(dir, segment);
    let (file, direct) = open_file(&path, io)?;
    let len = file.metadata().map_err(|e| io_error(&path, e))?.len();
    if len < committed {
        return Ok(None);
    }
    if len > committed {
        file.set_len(committed).map_err(|e| io_error(&path, e))?;
    }
    let mut pending = Blocks::new(BUFFER_BYTES + BLOCK, committed);
    let tail = usize::try_from(committed - pending.start()).unwrap_or(0);
    if tail > 0 {
        // Read through a buffered handle: direct reads need aligned memory.
        let mut bytes = vec![0u8; tail];
        File::open(&path)
            .and_then(|f| f.read_exact_at(&mut bytes, pending.start()))
            .map_err(|e| io_error(&path, e))?;
        pending.fill(&bytes);
    }
    Ok(Some((file, direct, pending)))
}

/// Opens a segment file read-write, with `O_DIRECT` if the filesystem
/// takes it; returns whether it did.
fn open_file(path: &Path, io: DirectIo) -> Result<(File, bool), StoreError> {
    let open = |flags: OFlags| {
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(0o600)
            .custom_flags(flags.bits() as i32)
            .open(path)
    };
    let buffered = || {
        open(OFlags::empty())
            .map(|file| (file, false))
            .map_err(|e| io_error(path, e))
    };
    if io == DirectIo::Never {
        return buffered();
    }
    match open(OFlags::DIRECT) {
        Ok(file) => Ok((file, true)),
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => buffered(),
        Err(e) => Err(io_error(path, e)),
    }
}

/// Opening a segment at 0 cannot find it shorter than that; said anyway
/// rather than assumed.
fn new_segment_not_empty() -> StoreError {
    StoreError::Unavailable("a new payload segment could not be opened".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Appends rows of `sizes` through both I/O modes, reopening between,
    /// and returns the segment files' bytes up to the committed end.
    fn round_trip(io: DirectIo) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("s.db");
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE events (payload_segment INTEGER, payload_offset INTEGER,
                                  payload_len INTEGER)",
        )
        .unwrap();
        let mut expected = Vec::new();
        for round in 0..3u8 {
            let mut a = Appender::open_with(&store, &conn, Duration::ZERO, io).unwrap();
            if io == DirectIo::Never {
                assert!(!a.direct);
            }
            for size in [1usize, 4095, 4097, 70_000, 300_000] {
                let row = vec![round.wrapping_mul(31).wrapping_add(size as u8); size];
                let mut shown = Vec::new();
                let parts: [&[u8]; 2] = [&row[..size / 2], &row[size / 2..]];
                let at = a.append(&parts, |p| shown.extend_from_slice(p)).unwrap();
                assert!(shown == row, "every byte shown once, in order");
                a.sync().unwrap();
                conn.execute(
                    "INSERT INTO events VALUES (?1, ?2, ?3)",
                    params![at.segment, at.offset, at.len],
                )
                .unwrap();
                expected.extend(row);
            }
            // A crash leaves bytes no row names: the next open cuts them.
            a.append(&[b"never committed"], |_| ()).unwrap();
            a.sync().unwrap();
        }
        let mut read = Vec::new();
        let reader = super::super::PayloadReader::new(&store);
        let mut stmt = conn
            .prepare("SELECT payload_segment, payload_offset, payload_len FROM events")
            .unwrap();
        let refs = stmt
            .query_map([], |r| {
                Ok(PayloadRef {
                    segment: r.get(0)?,
                    offset: r.get(1)?,
                    len: r.get(2)?,
                })
            })
            .unwrap();
        for r in refs {
            read.extend(reader.read(r.unwrap()).unwrap());
        }
        assert_eq!(read.len(), expected.len());
        assert!(
            read == expected,
            "the bytes read back are the bytes appended"
        );
        read
    }

    #[test]
    fn direct_and_buffered_writes_keep_the_same_bytes_across_reopens() {
        assert_eq!(
            round_trip(DirectIo::IfPossible),
            round_trip(DirectIo::Never)
        );
    }
}
