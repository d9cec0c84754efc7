//! The sftp gate: judges each request against the path scope and follows
//! the responses, without I/O (the proxy commits and moves the bytes).
//!
//! Invariant: a request that names a path reaches the target only when
//! every path in it is in scope after normalisation; otherwise the bastion
//! answers it itself with `SSH_FX_PERMISSION_DENIED`. Requests that name a
//! handle need no check: handles only come from opens that were in scope.
//! Extended requests the gate cannot read are refused, not passed blind.
//! The one exception is `REALPATH "."`, the client's first question: it
//! only reveals the login's home directory, which the gate learns from the
//! answer to resolve relative paths.

use std::collections::HashMap;

use bytes::Bytes;

use super::packet::{self, ParseError, Reader, Response};
use super::packet::{FX_OK, FX_OP_UNSUPPORTED, FX_PERMISSION_DENIED};
use crate::audit::Event;
use crate::policy::normalize;
use crate::scope::SftpDecision;

/// Requests in flight that the gate follows; past this, new ones are
/// refused until answers come back (bounded memory).
const MAX_PENDING: usize = 4096;
/// Open handles the gate keeps totals for.
const MAX_HANDLES: usize = 1024;

pub enum Verdict {
    /// Forward the packet, committing the event first when there is one.
    Forward(Option<Event>),
    /// Do not forward: commit the event, answer the client with `reply`.
    Deny { event: Event, reply: Bytes },
}

enum Pending {
    Home,
    Open(String),
    Read(Vec<u8>),
    Write(Vec<u8>, u64),
    Close(Vec<u8>),
}

struct Handle {
    path: String,
    read: u64,
    written: u64,
}

pub struct Gate {
    scope: SftpDecision,
    home: Option<String>,
    pending: HashMap<u32, Pending>,
    handles: HashMap<Vec<u8>, Handle>,
}

impl Gate {
    pub fn new(scope: SftpDecision) -> Gate {
        Gate {
            scope,
            home: None,
            pending: HashMap::new(),
            handles: HashMap::new(),
        }
    }

    /// Judges one client packet (length prefix included).
    pub fn on_request(&mut self, packet: &[u8]) -> Result<Verdict, ParseError> {
        use packet::*;
        let (kind, id, mut r) = open_packet(packet)?;
        let Some(id) = id else {
            return Ok(Verdict::Forward(None));
        };
        if self.pending.len() >= MAX_PENDING {
            return Ok(deny(
                id,
                "request",
                None,
                "too many requests in flight",
                FX_FAILURE,
            ));
        }
        let verdict = match kind {
            FXP_OPEN => {
                let path = r.string()?;
                let flags = open_flags(r.u32()?);
                self.one_path(
                    id,
                    "open",
                    path,
                    |p| Pending::Open(p.to_owned()),
                    Some(flags),
                )
            }
            FXP_OPENDIR => self.one_path(
                id,
                "opendir",
                r.string()?,
                |p| Pending::Open(p.to_owned()),
                None,
            ),
            FXP_REALPATH => {
                let path = r.string()?;
                if path == b"." || path.is_empty() {
                    self.pending.insert(id, Pending::Home);
                    Verdict::Forward(Some(op_event("realpath", ".".to_owned(), None, None)))
                } else {
                    self.path_only(id, "realpath", path)
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
                self.path_only(id, op, r.string()?)
            }
            FXP_RENAME => self.two_paths(id, "rename", &mut r)?,
            FXP_SYMLINK => self.two_paths(id, "symlink", &mut r)?,
            FXP_READ => {
                self.track(id, Pending::Read(r.string()?.to_vec()));
                Verdict::Forward(None)
            }
            FXP_WRITE => {
                let handle = r.string()?.to_vec();
                let _offset = (r.u32()?, r.u32()?);
                let len = r.string()?.len() as u64;
                self.track(id, Pending::Write(handle, len));
                Verdict::Forward(None)
            }
            FXP_CLOSE => {
                self.track(id, Pending::Close(r.string()?.to_vec()));
                Verdict::Forward(None)
            }
            FXP_FSTAT | FXP_FSETSTAT | FXP_READDIR => Verdict::Forward(None),
            FXP_EXTENDED => self.extended(id, &mut r)?,
            _ => deny(
                id,
                "unknown",
                None,
                "unknown sftp request",
                FX_OP_UNSUPPORTED,
            ),
        };
        Ok(verdict)
    }

    /// Follows one target packet; returns events to commit (handle totals).
    pub fn on_response(&mut self, packet: &[u8]) -> Result<Vec<Event>, ParseError> {
        let (id, response) = match packet::parse_response(packet)? {
            Response::Version => return Ok(Vec::new()),
            r @ (Response::Status { id, .. }
            | Response::Handle { id, .. }
            | Response::Data { id, .. }
            | Response::Name { id, .. }
            | Response::Other { id }) => (id, r),
        };
        let mut events = Vec::new();
        match (self.pending.remove(&id), response) {
            (
                Some(Pending::Home),
                Response::Name {
                    first: Some(name), ..
                },
            ) if self.home.is_none() => {
                // The target's answer: only a clean absolute path (UTF-8, no
                // control character) becomes the home, normalised, or its
                // bytes would reach every relative path's record and refusal.
                self.home = normalize(name, None).ok();
            }
            (Some(Pending::Open(path)), Response::Handle { handle, .. })
                if self.handles.len() < MAX_HANDLES =>
            {
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
            (Some(Pending::Close(handle)), Response::Status { .. }) => {
                if let Some(h) = self.handles.remove(&handle) {
                    events.push(closed_event(h));
                }
            }
            _ => {}
        }
        Ok(events)
    }

    /// Totals of handles still open when the channel ends.
    pub fn finish(&mut self) -> Vec<Event> {
        self.handles.drain().map(|(_, h)| closed_event(h)).collect()
    }

    fn track(&mut self, id: u32, pending: Pending) {
        self.pending.insert(id, pending);
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

    fn one_path(
        &mut self,
        id: u32,
        op: &'static str,
        raw: &[u8],
        pending: impl FnOnce(&str) -> Pending,
        flags: Option<String>,
    ) -> Verdict {
        match self.check(raw) {
            Ok(path) => {
                self.track(id, pending(&path));
                Verdict::Forward(Some(op_event(op, path, None, flags)))
            }
            Err(reason) => deny(id, op, Some(raw), &reason, FX_PERMISSION_DENIED),
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

    /// OpenSSH's extensions: those with paths are checked, those with only
    /// handles pass, anything else is refused.
    fn extended(&mut self, id: u32, r: &mut Reader<'_>) -> Result<Verdict, ParseError> {
        let name = r.string()?;
        Ok(match name {
            b"posix-rename@openssh.com" | b"hardlink@openssh.com" => {
                let op = if name.starts_with(b"posix") {
                    "posix-rename"
                } else {
                    "hardlink"
                };
                self.two_paths(id, op, r)?
            }
            b"statvfs@openssh.com" => self.path_only(id, "statvfs", r.string()?),
            b"lsetstat@openssh.com" => self.path_only(id, "lsetstat", r.string()?),
            b"expand-path@openssh.com" => self.path_only(id, "expand-path", r.string()?),
            b"fstatvfs@openssh.com"
            | b"fsync@openssh.com"
            | b"limits@openssh.com"
            | b"copy-data" => Verdict::Forward(None),
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
