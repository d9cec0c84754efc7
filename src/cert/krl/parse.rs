//! Reading a KRL: every byte accounted for, nothing guessed.

use super::*;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KrlError {
    #[error("not an OpenSSH KRL (bad magic)")]
    Magic,
    #[error("KRL format version {0} is not supported")]
    Version(u32),
    #[error("the KRL is truncated or malformed")]
    Malformed,
    #[error("the KRL is signed (OpenSSH refuses signed KRLs too)")]
    Signed,
    #[error("the KRL has a critical extension {0:?} this version does not know")]
    CriticalExtension(String),
    #[error("the KRL has an unknown section type {0}")]
    UnknownSection(u8),
}

/// A cursor over wire data; every read is bounds-checked.
struct Wire<'a>(&'a [u8]);

impl<'a> Wire<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], KrlError> {
        if self.0.len() < n {
            return Err(KrlError::Malformed);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, KrlError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, KrlError> {
        let bytes: [u8; 4] = self.take(4)?.try_into().map_err(|_| KrlError::Malformed)?;
        Ok(u32::from_be_bytes(bytes))
    }

    fn u64(&mut self) -> Result<u64, KrlError> {
        let bytes: [u8; 8] = self.take(8)?.try_into().map_err(|_| KrlError::Malformed)?;
        Ok(u64::from_be_bytes(bytes))
    }

    fn string(&mut self) -> Result<&'a [u8], KrlError> {
        let len = usize::try_from(self.u32()?).map_err(|_| KrlError::Malformed)?;
        self.take(len)
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Krl {
    pub fn parse(bytes: &[u8]) -> Result<Krl, KrlError> {
        let mut wire = Wire(bytes);
        if wire.take(MAGIC.len()).map_err(|_| KrlError::Magic)? != MAGIC {
            return Err(KrlError::Magic);
        }
        let version = wire.u32()?;
        if version != FORMAT_VERSION {
            return Err(KrlError::Version(version));
        }
        let _krl_version = wire.u64()?;
        let _generated = wire.u64()?;
        let _flags = wire.u64()?;
        let _reserved = wire.string()?;
        let _comment = wire.string()?;
        let mut krl = Krl::default();
        while !wire.is_empty() {
            let kind = wire.byte()?;
            if kind == SECTION_SIGNATURE {
                return Err(KrlError::Signed);
            }
            let mut data = Wire(wire.string()?);
            match kind {
                SECTION_CERTIFICATES => krl.certs.push(cert_section(&mut data)?),
                SECTION_EXPLICIT_KEY => {
                    while !data.is_empty() {
                        krl.explicit_keys.push(data.string()?.to_vec());
                    }
                }
                SECTION_FINGERPRINT_SHA1 | SECTION_FINGERPRINT_SHA256 => {
                    let hashes = match kind {
                        SECTION_FINGERPRINT_SHA1 => &mut krl.sha1,
                        _ => &mut krl.sha256,
                    };
                    while !data.is_empty() {
                        hashes.push(data.string()?.to_vec());
                    }
                }
                SECTION_EXTENSION => extension(&mut data)?,
                other => return Err(KrlError::UnknownSection(other)),
            }
        }
        Ok(krl)
    }
}

fn cert_section(data: &mut Wire<'_>) -> Result<CertRevocations, KrlError> {
    let mut section = CertRevocations {
        ca_key: data.string()?.to_vec(),
        ..CertRevocations::default()
    };
    let _reserved = data.string()?;
    while !data.is_empty() {
        let kind = data.byte()?;
        let mut sub = Wire(data.string()?);
        match kind {
            CERT_SERIAL_LIST => {
                while !sub.is_empty() {
                    let serial = sub.u64()?;
                    section.serial_ranges.push((serial, serial));
                }
            }
            CERT_SERIAL_RANGE => {
                let (lo, hi) = (sub.u64()?, sub.u64()?);
                if lo > hi || !sub.is_empty() {
                    return Err(KrlError::Malformed);
                }
                section.serial_ranges.push((lo, hi));
            }
            CERT_SERIAL_BITMAP => {
                let offset = sub.u64()?;
                let bitmap = sub.string()?;
                if !sub.is_empty() {
                    return Err(KrlError::Malformed);
                }
                bitmap_serials(offset, bitmap, &mut section.serial_ranges)?;
            }
            CERT_KEY_ID => {
                while !sub.is_empty() {
                    let id = std::str::from_utf8(sub.string()?).map_err(|_| KrlError::Malformed)?;
                    section.key_ids.push(id.to_owned());
                }
            }
            CERT_EXTENSION => extension(&mut sub)?,
            other => return Err(KrlError::UnknownSection(other)),
        }
    }
    Ok(section)
}

/// An mpint bitmap: bit N (counting from the least significant bit of the
/// last byte) revokes serial `offset + N`.
pub(super) fn bitmap_serials(
    offset: u64,
    bitmap: &[u8],
    out: &mut Vec<(u64, u64)>,
) -> Result<(), KrlError> {
    for (from_end, byte) in bitmap.iter().rev().enumerate() {
        for bit in 0..8u64 {
            if byte & (1 << bit) != 0 {
                let index = u64::try_from(from_end)
                    .ok()
                    .and_then(|i| i.checked_mul(8))
                    .and_then(|i| i.checked_add(bit))
                    .and_then(|i| offset.checked_add(i))
                    .ok_or(KrlError::Malformed)?;
                out.push((index, index));
            }
        }
    }
    Ok(())
}

/// An extension: a critical one we do not know makes the KRL unreadable.
fn extension(data: &mut Wire<'_>) -> Result<(), KrlError> {
    let name = String::from_utf8_lossy(data.string()?).into_owned();
    let critical = data.byte()? != 0;
    let _contents = data.string()?;
    match critical {
        true => Err(KrlError::CriticalExtension(name)),
        false => Ok(()),
    }
}
