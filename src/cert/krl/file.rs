//! An operator's KRL file (`[ca] revoked_keys`), read again whenever it
//! changes, as sshd reads its `RevokedKeys` at every authentication.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use russh::keys::ssh_key::Certificate;

use super::Krl;
use crate::cert::CertRefusal;

/// Larger files are refused (fail closed) rather than read.
const MAX_KRL_BYTES: u64 = 64 << 20;

pub struct RevokedKeys {
    path: PathBuf,
    cache: Mutex<Option<LastRead>>,
}

/// Which version of the file was read (`None`: it could not be looked
/// at), and what it held.
type LastRead = (Option<Stamp>, Result<Arc<Krl>, String>);

/// Which version of the file was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    inode: u64,
    len: u64,
    mtime_ns: i128,
}

impl RevokedKeys {
    pub fn new(path: PathBuf) -> RevokedKeys {
        RevokedKeys {
            path,
            cache: Mutex::new(None),
        }
    }

    /// `Err` when the file revokes `cert`, or cannot be read (then it
    /// revokes everything).
    pub fn check(&self, cert: &Certificate) -> Result<(), CertRefusal> {
        let name = self.path.display().to_string();
        let krl = self
            .current()
            .map_err(|e| CertRefusal::KrlUnreadable(name.clone(), e))?;
        match krl.revokes(cert) {
            true => Err(CertRefusal::RevokedByKrl(name)),
            false => Ok(()),
        }
    }

    fn current(&self) -> Result<Arc<Krl>, String> {
        let stamp = std::fs::metadata(&self.path).map(|meta| Stamp {
            inode: meta.ino(),
            len: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        });
        let mut cache = match self.cache.lock() {
            Ok(cache) => cache,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some((seen, krl)) = cache.as_ref() {
            if *seen == stamp.as_ref().ok().copied() {
                return krl.clone();
            }
        }
        let krl = match &stamp {
            Ok(stamp) => self.read(stamp.len),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = &krl {
            // Once per change of the file, not once per authentication.
            tracing::error!(file = %self.path.display(), error = %e, "revoked_keys cannot be read: refusing every certificate");
        }
        *cache = Some((stamp.ok(), krl.clone()));
        krl
    }

    fn read(&self, len: u64) -> Result<Arc<Krl>, String> {
        if len > MAX_KRL_BYTES {
            return Err(format!("larger than {MAX_KRL_BYTES} bytes"));
        }
        let bytes = std::fs::read(&self.path).map_err(|e| e.to_string())?;
        Krl::parse(&bytes).map(Arc::new).map_err(|e| e.to_string())
    }
}
