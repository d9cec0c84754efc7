//! SFTP v3 wire format (draft-ietf-secsh-filexfer-02), as far as the
//! bastion needs it: framing, the requests it judges, the responses it
//! follows, and the status packet it answers with.
//!
//! Invariant: every function here is a pure function of its bytes and never
//! panics: lengths are checked before every read, a packet longer than
//! [`MAX_PACKET`] is an error instead of an allocation, and anything the
//! parser does not understand is reported, not guessed.

use bytes::{Buf, Bytes, BytesMut};

/// Largest packet accepted (length field excluded): OpenSSH's own limit.
pub const MAX_PACKET: usize = 256 * 1024;

pub const FXP_INIT: u8 = 1;
pub const FXP_VERSION: u8 = 2;
pub const FXP_OPEN: u8 = 3;
pub const FXP_CLOSE: u8 = 4;
pub const FXP_READ: u8 = 5;
pub const FXP_WRITE: u8 = 6;
pub const FXP_LSTAT: u8 = 7;
pub const FXP_FSTAT: u8 = 8;
pub const FXP_SETSTAT: u8 = 9;
pub const FXP_FSETSTAT: u8 = 10;
pub const FXP_OPENDIR: u8 = 11;
pub const FXP_READDIR: u8 = 12;
pub const FXP_REMOVE: u8 = 13;
pub const FXP_MKDIR: u8 = 14;
pub const FXP_RMDIR: u8 = 15;
pub const FXP_REALPATH: u8 = 16;
pub const FXP_STAT: u8 = 17;
pub const FXP_RENAME: u8 = 18;
pub const FXP_READLINK: u8 = 19;
pub const FXP_SYMLINK: u8 = 20;
pub const FXP_STATUS: u8 = 101;
pub const FXP_HANDLE: u8 = 102;
pub const FXP_DATA: u8 = 103;
pub const FXP_NAME: u8 = 104;
pub const FXP_EXTENDED: u8 = 200;

pub const FX_OK: u32 = 0;
pub const FX_PERMISSION_DENIED: u32 = 3;
pub const FX_FAILURE: u32 = 4;
pub const FX_OP_UNSUPPORTED: u32 = 8;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("sftp packet of {0} bytes is larger than the {MAX_PACKET} allowed")]
    TooLarge(usize),
    #[error("sftp packet is empty")]
    Empty,
    #[error("sftp packet is truncated")]
    Truncated,
}

/// Reassembles packets from SSH data messages, which may split or join
/// them anywhere.
#[derive(Default)]
pub struct Framer {
    buf: BytesMut,
}

impl Framer {
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next whole packet, length prefix included, or `None` until more
    /// bytes arrive.
    pub fn next_packet(&mut self) -> Result<Option<Bytes>, ParseError> {
        let Some(prefix) = self.buf.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        if len > MAX_PACKET {
            return Err(ParseError::TooLarge(len));
        }
        if len == 0 {
            return Err(ParseError::Empty);
        }
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        Ok(Some(self.buf.split_to(4 + len).freeze()))
    }
}

/// A bounds-checked reader over one packet's body.
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn u8(&mut self) -> Result<u8, ParseError> {
        let (&first, rest) = self.rest.split_first().ok_or(ParseError::Truncated)?;
        self.rest = rest;
        Ok(first)
    }

    pub fn u32(&mut self) -> Result<u32, ParseError> {
        if self.rest.len() < 4 {
            return Err(ParseError::Truncated);
        }
        Ok(self.rest.get_u32())
    }

    pub fn string(&mut self) -> Result<&'a [u8], ParseError> {
        let len = self.u32()? as usize;
        if self.rest.len() < len {
            return Err(ParseError::Truncated);
        }
        let (s, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(s)
    }
}

/// The type, the request id (absent for INIT and VERSION) and a reader at
/// the first field after them.
pub fn open_packet(packet: &[u8]) -> Result<(u8, Option<u32>, Reader<'_>), ParseError> {
    let body = packet.get(4..).ok_or(ParseError::Truncated)?;
    let mut reader = Reader { rest: body };
    let kind = reader.u8()?;
    let id = match kind {
        FXP_INIT | FXP_VERSION => None,
        _ => Some(reader.u32()?),
    };
    Ok((kind, id, reader))
}

/// What a response from the target means to the bastion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response<'a> {
    Version,
    Status {
        id: u32,
        code: u32,
    },
    Handle {
        id: u32,
        handle: &'a [u8],
    },
    Data {
        id: u32,
        len: usize,
    },
    /// The first name of a NAME response (what REALPATH answers).
    Name {
        id: u32,
        first: Option<&'a [u8]>,
    },
    Other {
        id: u32,
    },
}

pub fn parse_response(packet: &[u8]) -> Result<Response<'_>, ParseError> {
    let (kind, id, mut r) = open_packet(packet)?;
    let Some(id) = id else {
        return Ok(Response::Version);
    };
    Ok(match kind {
        FXP_STATUS => Response::Status { id, code: r.u32()? },
        FXP_HANDLE => Response::Handle {
            id,
            handle: r.string()?,
        },
        FXP_DATA => Response::Data {
            id,
            len: r.string()?.len(),
        },
        FXP_NAME => {
            let count = r.u32()?;
            let first = if count > 0 { Some(r.string()?) } else { None };
            Response::Name { id, first }
        }
        _ => Response::Other { id },
    })
}

/// An SSH_FXP_STATUS packet for request `id`.
pub fn status_packet(id: u32, code: u32, message: &str) -> Bytes {
    let mut body = Vec::with_capacity(32 + message.len());
    body.push(FXP_STATUS);
    body.extend_from_slice(&id.to_be_bytes());
    body.extend_from_slice(&code.to_be_bytes());
    put_string(&mut body, message.as_bytes());
    put_string(&mut body, b"en");
    let mut packet = Vec::with_capacity(4 + body.len());
    packet.extend_from_slice(&(body.len() as u32).to_be_bytes());
    packet.extend_from_slice(&body);
    Bytes::from(packet)
}

/// An SSH_FXP_REALPATH request for `path` with request `id` (the gate's
/// own question for the home directory).
pub fn realpath_packet(id: u32, path: &[u8]) -> Bytes {
    let mut body = Vec::with_capacity(16 + path.len());
    body.push(FXP_REALPATH);
    body.extend_from_slice(&id.to_be_bytes());
    put_string(&mut body, path);
    let mut packet = Vec::with_capacity(4 + body.len());
    packet.extend_from_slice(&(body.len() as u32).to_be_bytes());
    packet.extend_from_slice(&body);
    Bytes::from(packet)
}

pub fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

/// `SSH_FXF_*` open flags as words, for the record.
pub fn open_flags(pflags: u32) -> String {
    const NAMES: [(u32, &str); 6] = [
        (0x01, "read"),
        (0x02, "write"),
        (0x04, "append"),
        (0x08, "create"),
        (0x10, "truncate"),
        (0x20, "exclusive"),
    ];
    let words: Vec<&str> = NAMES
        .iter()
        .filter(|(bit, _)| pflags & bit != 0)
        .map(|(_, name)| *name)
        .collect();
    words.join(",")
}
