//! The readers' end of the payload: fetches the bytes a row names.
//!
//! Invariant: a reference is data from the store, which an attacker may
//! have edited: a length beyond [`MAX_ROW_READ`], a negative offset or a
//! missing segment is an error for that row, never an allocation of what
//! the reference claims or a panic.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::{dir_of, segment_path, PayloadRef};

/// The most a reader allocates for one row (the writer makes rows of at
/// most 256 KiB).
const MAX_ROW_READ: usize = 64 << 20;

/// The readers' end: fetches a row's bytes, keeping segments open.
pub(crate) struct PayloadReader {
    dir: PathBuf,
    files: RefCell<HashMap<i64, File>>,
}

impl PayloadReader {
    pub(crate) fn new(store: &Path) -> PayloadReader {
        PayloadReader {
            dir: dir_of(store),
            files: RefCell::new(HashMap::new()),
        }
    }

    /// The bytes `r` names; an error when they are not there (a segment
    /// lost or cut short).
    pub(crate) fn read(&self, r: PayloadRef) -> io::Result<Vec<u8>> {
        let (Ok(offset), Ok(len)) = (u64::try_from(r.offset), usize::try_from(r.len)) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "bad payload reference",
            ));
        };
        if len > MAX_ROW_READ {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "payload reference too long",
            ));
        }
        let mut files = self.files.borrow_mut();
        let file = match files.entry(r.segment) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(File::open(segment_path(&self.dir, r.segment))?)
            }
        };
        let mut bytes = vec![0u8; len];
        file.read_exact_at(&mut bytes, offset)?;
        Ok(bytes)
    }
}
