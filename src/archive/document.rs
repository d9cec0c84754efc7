//! The archived object: one session's rows as the local store holds them
//! (its record and every event and stream chunk, with seq and time), and
//! the replica that recorded it.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::audit::Transcript;
use crate::cluster::Seal;

const FORMAT: &str = "portcullis-archived-session";
const VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
pub struct Sealed {
    format: String,
    version: u32,
    pub replica: String,
    pub transcript: Transcript,
}

impl Sealed {
    pub fn new(replica: &str, transcript: Transcript) -> Sealed {
        Sealed {
            format: FORMAT.to_owned(),
            version: VERSION,
            replica: replica.to_owned(),
            transcript,
        }
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    pub fn parse(bytes: &[u8]) -> Result<Sealed, String> {
        let sealed: Sealed = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if sealed.format != FORMAT || sealed.version != VERSION {
            return Err(format!(
                "format {} version {} is not one this portcullis reads",
                sealed.format, sealed.version
            ));
        }
        Ok(sealed)
    }
}

/// The seal of `bytes` stored under `object_key`.
pub fn seal_of_bytes(object_key: &str, bytes: &[u8]) -> Seal {
    Seal {
        object_key: object_key.to_owned(),
        sha256: hex::encode(Sha256::digest(bytes)),
        bytes: i64::try_from(bytes.len()).unwrap_or(i64::MAX),
    }
}
