//! The sftp gate: judges each request against the path scope and follows
//! the responses, without I/O (the proxy commits and moves the bytes).
//!
//! Invariant: nothing a client chooses steers what the gate believes.
//! - The home directory (for relative paths) comes only from the gate's
//!   OWN `REALPATH "."`, sent after the target's VERSION and before any
//!   client request is let through; client requests wait until it is
//!   answered, and its answer never reaches the client. So no client
//!   request id, ordering or duplicate can be taken for it.
//! - A request whose id is already in flight is refused, never forwarded:
//!   every answer the gate follows belongs to exactly one request.
//! - A request naming a path reaches the target only when every path in
//!   it is in scope after normalisation (a relative symlink target against
//!   the link's own directory); a request naming a handle only when the
//!   target issued that handle to an in-scope OPEN/OPENDIR of this channel.
//! - Anything else (unknown requests and extensions, a packet before INIT,
//!   a second INIT) is refused or ends the channel; nothing passes blind.

use std::collections::HashMap;

use bytes::Bytes;

use super::packet::{self, ParseError, Reader, Response};
use super::packet::{FX_FAILURE, FX_OK, FX_OP_UNSUPPORTED, FX_PERMISSION_DENIED};
use crate::audit::Event;
use crate::policy::normalize;
use crate::session::scope::SftpDecision;

/// Requests in flight that the gate follows; past this, new ones are
/// refused until answers come back (bounded memory).
const MAX_IN_FLIGHT: usize = 4096;
/// Handles open or being opened; past this, opens are refused.
const MAX_HANDLES: usize = 1024;
/// The id of the gate's own `REALPATH "."`: no client request is in flight
/// while it is, so it cannot collide; this value just reads well in a capture.
pub const PROBE_ID: u32 = u32::MAX;

/// What to do with a client packet.
#[derive(Debug)]
pub enum Verdict {
    /// Forward the packet, committing the event first when there is one.
    Forward(Option<Event>),
    /// Do not forward: commit the event, answer the client with `reply`.
    Deny { event: Event, reply: Bytes },
    /// Not yet: the home directory is being learned. Offer the packet
    /// again once [`Gate::ready`].
    Wait,
}

/// What to do with a target packet.
#[derive(Debug, Default)]
pub struct Answer {
    /// Events to commit (handle totals).
    pub events: Vec<Event>,
    /// Whether the packet goes on to the client.
    pub forward: bool,
    /// A packet the gate sends to the target itself (its home probe).
    pub probe: Option<Bytes>,
}

/// A client broke the protocol: the channel ends.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GateError {
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error("sftp request before INIT")]
    BeforeInit,
    #[error("a second sftp INIT")]
    SecondInit,
    #[error("an sftp VERSION packet from the client")]
    VersionFromClient,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    AwaitingInit,
    AwaitingVersion,
    Probing,
    Ready,
}

#[derive(Debug)]
enum Pending {
    Open(String),
    Read(Vec<u8>),
    Write(Vec<u8>, u64),
    Close(Vec<u8>),
    Other,
}

struct Handle {
    path: String,
    read: u64,
    written: u64,
}

pub struct Gate {
    scope: SftpDecision,
    phase: Phase,
    home: Option<String>,
    in_flight: HashMap<u32, Pending>,
    handles: HashMap<Vec<u8>, Handle>,
}

impl Gate {
    pub fn new(scope: SftpDecision) -> Gate {
        Gate {
            scope,
            phase: Phase::AwaitingInit,
            home: None,
            in_flight: HashMap::new(),
            handles: HashMap::new(),
        }
    }

    /// Whether client requests are judged now (the home is known, or known
    /// to be unknown).
    pub fn ready(&self) -> bool {
        self.phase == Phase::Ready
    }

    /// The login's home directory, once learned.
    pub fn home(&self) -> Option<&str> {
        self.home.as_deref()
    }

    /// Judges one client packet (length prefix included).
    pub fn on_request(&mut self, packet: &[u8]) -> Result<Verdict, GateError> {
        use packet::*;
        let (kind, id, mut r) = open_packet(packet)?;
        match (kind, self.phase) {
            (FXP_INIT, Phase::AwaitingInit) => {
                self.phase = Phase::AwaitingVersion;
                return Ok(Verdict::Forward(None));
            }
            (FXP_INIT, _) => return Err(GateError::SecondInit),
            (FXP_VERSION, _) => return Err(GateError::VersionFromClient),
            (_, Phase::AwaitingInit) => return Err(GateError::BeforeInit),
            (_, Phase::AwaitingVersion | Phase::Probing) => return Ok(Verdict::Wait),
            (_, Phase::Ready) => {}
        }
        let Some(id) = id else {
            return Err(GateError::Parse(ParseError::Truncated));
        };
        if self.in_flight.contains_key(&id) {
            let reason = format!("request id {id} is already in flight");
            return Ok(deny(id, "request", None, &reason, FX_FAILURE));
        }
        if self.in_flight.len() >= MAX_IN_FLIGHT {
            let reason = "too many requests in flight";
            return Ok(deny(id, "request", None, reason, FX_FAILURE));
        }
        let (verdict, pending) = match kind {
            FXP_OPEN | FXP_OPENDIR => self.open(id, kind, &mut r)?,
            FXP_REALPATH => {
                let path = r.string()?;
                if path == b"." || path.is_empty() {
                    // It reveals only the home; the gate's own probe, not
                    // this, is where the gate learns it.
                    let event = op_event("realpath", ".".to_owned(), None, None);
                    (Verdict::Forward(Some(event)), Pending::Other)
                } else {
                    (self.path_only(id, "realpath", path), Pending::Other)
                }
            }
            FXP_LSTAT | FXP_STAT | FXP_SETSTAT | FXP_REMOVE | FXP_MKDIR | FXP_RMDIR
            | FXP_READLINK => {
                let op = match kind {
                    FXP_LSTAT => "lstat",
                    FXP_STAT => "stat",
                    FXP_SETSTAT => "setstat",
                    FXP_REMOVE => "remove",
                    FXP_MKDIR => "mkdir",
                    FXP_RMDIR => "rmdir",
                    _ => "readlink",
                };
                (self.path_only(id, op, r.string()?), Pending::Other)
            }
            FXP_RENAME => (self.two_paths(id, "rename", &mut r)?, Pending::Other),
            FXP_SYMLINK => (self.symlink(id, &mut r)?, Pending::Other),
            FXP_READ => {
                let handle = r.string()?;
                let pending = Pending::Read(handle.to_vec());
                (self.on_handle(id, "read", handle), pending)
            }
            FXP_WRITE => {
                let handle = r.string()?;
                let _offset = (r.u32()?, r.u32()?);
                let len = r.string()?.len() as u64;
                let pending = Pending::Write(handle.to_vec(), len);
                (self.on_handle(id, "write", handle), pending)
            }
            FXP_CLOSE => {
                let handle = r.string()?;
                let pending = Pending::Close(handle.to_vec());
                (self.on_handle(id, "close", handle), pending)
            }
            FXP_FSTAT | FXP_FSETSTAT | FXP_READDIR => {
                (self.on_handle(id, "handle", r.string()?), Pending::Other)
            }
            FXP_EXTENDED => (self.extended(id, &mut r)?, Pending::Other),
            _ => {
                let verdict = deny(
                    id,
                    "unknown",
                    None,
                    "unknown sftp request",
                    FX_OP_UNSUPPORTED,
                );
                (verdict, Pending::Other)
            }
        };
        if let Verdict::Forward(_) = verdict {
            self.in_flight.insert(id, pending);
        }
        Ok(verdict)
    }

    /// Follows one target packet.
    pub fn on_response(&mut self, packet: &[u8]) -> Result<Answer, ParseError> {
        let mut answer = Answer {
            forward: true,
            ..Answer::default()
        };
        let response = packet::parse_response(packet)?;
        let id = match response {
            Response::Version => {
                if self.phase == Phase::AwaitingVersion {
                    self.phase = Phase::Probing;
                    answer.probe = Some(packet::realpath_packet(PROBE_ID, b"."));
                }
                return Ok(answer);
            }
            Response::Status { id, .. }
            | Response::Handle { id, .. }
            | Response::Data { id, .. }
            | Response::Name { id, .. }
            | Response::Other { id } => id,
        };
        if self.phase == Phase::Probing && id == PROBE_ID {
            // Only a clean absolute path (UTF-8, no control character)
            // becomes the home, normalised; anything else leaves relative
            // paths refused.
            if let Response::Name {
                first: Some(name), ..
            } = response
            {
                self.home = normalize(name, None)
                    .ok()
                    .filter(|_| name.starts_with(b"/"));
            }
            self.phase = Phase::Ready;
            answer.forward = false;
            return Ok(answer);
        }
        match (self.in_flight.remove(&id), response) {
            (Some(Pending::Open(path)), Response::Handle { handle, .. }) => {
                let totals = Handle {
                    path,
                    read: 0,
                    written: 0,
                };
                self.handles.insert(handle.to_vec(), totals);
            }
            (Some(Pending::Read(handle)), Response::Data { len, .. }) => {
                if let Some(h) = self.handles.get_mut(&handle) {
                    h.read += len as u64;
                }
            }
            (Some(Pending::Write(handle, len)), Response::Status { code: FX_OK, .. }) => {
                if let Some(h) = self.handles.get_mut(&handle) {
                    h.written += len;
                }
            }
            // OpenSSH frees a handle on close whatever the status says.
            (Some(Pending::Close(handle)), Response::Status { .. }) => {
                if let Some(h) = self.handles.remove(&handle) {
                    answer.events.push(closed_event(h));
                }
            }
            _ => {}
        }
        Ok(answer)
    }

    /// Totals of handles still open when the channel ends.
    pub fn finish(&mut self) -> Vec<Event> {
        self.handles.drain().map(|(_, h)| closed_event(h)).collect()
    }

    fn check(&self, raw: &[u8]) -> Result<String, String> {
        self.scope
            .check_path(raw, self.home.as_deref())
            .map_err(|refusal| refusal.to_string())
    }

    fn path_only(&mut self, id: u32, op: &'static str, raw: &[u8]) -> Verdict {
        match self.check(raw) {
            Ok(path) => Verdict::Forward(Some(op_event(op, path, None, None))),
            Err(reason) => deny(id, op, Some(raw), &reason, FX_PERMISSION_DENIED),
        }
    }

    fn open(
        &mut self,
        id: u32,
        kind: u8,
        r: &mut Reader<'_>,
    ) -> Result<(Verdict, Pending), ParseError> {
        let (op, raw, flags) = if kind == packet::FXP_OPEN {
            let raw = r.string()?;
            ("open", raw, Some(packet::open_flags(r.u32()?)))
        } else {
            ("opendir", r.string()?, None)
        };
        let opening = self
            .in_flight
            .values()
            .filter(|p| matches!(p, Pending::Open(_)))
            .count();
        if self.handles.len() + opening >= MAX_HANDLES {
            let verdict = deny(id, op, Some(raw), "too many open handles", FX_FAILURE);
            return Ok((verdict, Pending::Other));
        }
        Ok(match self.check(raw) {
            Ok(path) => (
                Verdict::Forward(Some(op_event(op, path.clone(), None, flags))),
                Pending::Open(path),
            ),
            Err(reason) => (
                deny(id, op, Some(raw), &reason, FX_PERMISSION_DENIED),
                Pending::Other,
            ),
        })
    }

    /// A request on a handle passes only for a handle this gate saw issued.
    fn on_handle(&self, id: u32, op: &'static str, handle: &[u8]) -> Verdict {
        if self.handles.contains_key(handle) {
            Verdict::Forward(None)
        } else {
            let reason = "unknown handle (not issued to this channel by an open in scope)";
            deny(id, op, None, reason, FX_FAILURE)
        }
    }

    fn two_paths(
        &mut self,
        id: u32,
        op: &'static str,
        r: &mut Reader<'_>,
    ) -> Result<Verdict, ParseError> {
        let (from, to) = (r.string()?, r.string()?);
        Ok(match (self.check(from), self.check(to)) {
            (Ok(from), Ok(to)) => Verdict::Forward(Some(op_event(op, from, Some(to), None))),
            (Err(reason), _) => deny(id, op, Some(from), &reason, FX_PERMISSION_DENIED),
            (_, Err(reason)) => deny(id, op, Some(to), &reason, FX_PERMISSION_DENIED),
        })
    }

    /// `SYMLINK` in OpenSSH's order: the link's target, then the link. A
    /// relative target is what the link's own directory resolves, so it is
    /// judged there, not against the home.
    fn symlink(&mut self, id: u32, r: &mut Reader<'_>) -> Result<Verdict, ParseError> {
        let (target, link) = (r.string()?, r.string()?);
        let link_path = match self.check(link) {
            Ok(path) => path,
            Err(reason) => {
                return Ok(deny(
                    id,
                    "symlink",
                    Some(link),
                    &reason,
                    FX_PERMISSION_DENIED,
                ))
            }
        };
        let resolved = if target.starts_with(b"/") {
            normalize(target, None)
        } else {
            let parent = link_path.rsplit_once('/').map_or("", |(dir, _)| dir);
            let mut joined = format!("{parent}/").into_bytes();
            joined.extend_from_slice(target);
            normalize(&joined, None)
        };
        let checked = resolved.map_err(|e| e.to_string()).and_then(|path| {
            self.scope
                .check_normalized(path)
                .map_err(|refusal| refusal.to_string())
        });
        Ok(match checked {
            Ok(target) => {
                Verdict::Forward(Some(op_event("symlink", link_path, Some(target), None)))
            }
            Err(reason) => deny(id, "symlink", Some(target), &reason, FX_PERMISSION_DENIED),
        })
    }

    /// OpenSSH's extensions: those with paths are checked, those with
    /// handles need known handles, anything else is refused.
    fn extended(&mut self, id: u32, r: &mut Reader<'_>) -> Result<Verdict, ParseError> {
        let name = r.string()?;
        Ok(match name {
            b"posix-rename@openssh.com" => self.two_paths(id, "posix-rename", r)?,
            b"hardlink@openssh.com" => self.two_paths(id, "hardlink", r)?,
            b"statvfs@openssh.com" => self.path_only(id, "statvfs", r.string()?),
            b"lsetstat@openssh.com" => self.path_only(id, "lsetstat", r.string()?),
            b"expand-path@openssh.com" => self.path_only(id, "expand-path", r.string()?),
            b"fstatvfs@openssh.com" | b"fsync@openssh.com" => {
                self.on_handle(id, "extended", r.string()?)
            }
            b"copy-data" => {
                let from = r.string()?;
                let _offset_and_length = (r.u32()?, r.u32()?, r.u32()?, r.u32()?);
                let to = r.string()?;
                match self.on_handle(id, "copy-data", from) {
                    Verdict::Forward(_) => self.on_handle(id, "copy-data", to),
                    refused => refused,
                }
            }
            b"limits@openssh.com" => Verdict::Forward(None),
            other => {
                let what = String::from_utf8_lossy(other)
                    .chars()
                    .take(64)
                    .collect::<String>();
                let reason = format!("sftp extension {what:?} is not supported by the bastion");
                deny(id, "extended", None, &reason, FX_OP_UNSUPPORTED)
            }
        })
    }
}

fn op_event(op: &str, path: String, to: Option<String>, flags: Option<String>) -> Event {
    Event::SftpOp {
        op: op.to_owned(),
        path,
        to,
        flags,
    }
}

fn closed_event(h: Handle) -> Event {
    Event::SftpClosed {
        path: h.path,
        bytes_read: h.read,
        bytes_written: h.written,
    }
}

fn deny(id: u32, op: &str, path: Option<&[u8]>, reason: &str, code: u32) -> Verdict {
    Verdict::Deny {
        event: Event::SftpRefused {
            op: op.to_owned(),
            path: path.map(|p| String::from_utf8_lossy(p).chars().take(1024).collect()),
            reason: reason.to_owned(),
        },
        reply: packet::status_packet(id, code, &format!("portcullis: refused: {reason}")),
    }
}
