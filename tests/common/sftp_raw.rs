//! A raw SFTP v3 client for crafted packets.
//!
//! The transport is the real OpenSSH client: `ssh -s LOGIN@127.0.0.1 sftp`
//! with the agent's key and cert, its stdin and stdout carrying SFTP packets
//! as they are, nothing checked on our side. A reader thread decodes what
//! comes back, so every wait has a timeout and a test never hangs on a
//! bastion that stays silent.

use super::*;

use std::collections::VecDeque;
use std::process::ChildStdin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

pub const FXP_INIT: u8 = 1;
pub const FXP_VERSION: u8 = 2;
pub const FXP_OPEN: u8 = 3;
pub const FXP_CLOSE: u8 = 4;
pub const FXP_READ: u8 = 5;
pub const FXP_WRITE: u8 = 6;
pub const FXP_FSTAT: u8 = 8;
pub const FXP_OPENDIR: u8 = 11;
pub const FXP_READDIR: u8 = 12;
pub const FXP_REALPATH: u8 = 16;
pub const FXP_STAT: u8 = 17;
pub const FXP_SYMLINK: u8 = 20;
pub const FXP_STATUS: u8 = 101;
pub const FXP_HANDLE: u8 = 102;
pub const FXP_DATA: u8 = 103;
pub const FXP_NAME: u8 = 104;
pub const FXP_EXTENDED: u8 = 200;

pub const FX_OK: u32 = 0;
pub const FX_EOF: u32 = 1;
pub const FX_NO_SUCH_FILE: u32 = 2;
pub const FX_PERMISSION_DENIED: u32 = 3;
pub const FX_FAILURE: u32 = 4;
pub const FX_OP_UNSUPPORTED: u32 = 8;

/// `SSH_FXF_*` open flags.
pub const FXF_READ: u32 = 0x01;
pub const FXF_WRITE: u32 = 0x02;
pub const FXF_CREAT: u32 = 0x08;
pub const FXF_TRUNC: u32 = 0x10;

/// Larger replies are not SFTP: OpenSSH's limit is 256 KiB.
const MAX_REPLY: usize = 1024 * 1024;

/// How long a reply may take before a test calls it missing.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// One field of a request after its id.
#[derive(Clone, Copy, Debug)]
pub enum Field<'a> {
    U32(u32),
    U64(u64),
    Str(&'a [u8]),
}

/// Request packets, framed (length prefix included), to send alone or
/// several in one write.
pub mod packets {
    use super::*;

    /// A packet of `kind`: the id (absent for INIT) then the fields.
    pub fn packet(kind: u8, id: Option<u32>, fields: &[Field<'_>]) -> Vec<u8> {
        let mut body = vec![kind];
        if let Some(id) = id {
            body.extend_from_slice(&id.to_be_bytes());
        }
        for field in fields {
            match field {
                Field::U32(n) => body.extend_from_slice(&n.to_be_bytes()),
                Field::U64(n) => body.extend_from_slice(&n.to_be_bytes()),
                Field::Str(s) => {
                    body.extend_from_slice(&(s.len() as u32).to_be_bytes());
                    body.extend_from_slice(s);
                }
            }
        }
        let mut framed = (body.len() as u32).to_be_bytes().to_vec();
        framed.extend_from_slice(&body);
        framed
    }

    /// `SSH_FXP_INIT` version 3.
    pub fn init() -> Vec<u8> {
        packet(FXP_INIT, None, &[Field::U32(3)])
    }

    pub fn realpath(id: u32, path: &str) -> Vec<u8> {
        packet(FXP_REALPATH, Some(id), &[Field::Str(path.as_bytes())])
    }

    /// OPEN with empty attributes.
    pub fn open(id: u32, path: &str, pflags: u32) -> Vec<u8> {
        packet(
            FXP_OPEN,
            Some(id),
            &[
                Field::Str(path.as_bytes()),
                Field::U32(pflags),
                Field::U32(0),
            ],
        )
    }

    pub fn opendir(id: u32, path: &str) -> Vec<u8> {
        packet(FXP_OPENDIR, Some(id), &[Field::Str(path.as_bytes())])
    }

    pub fn readdir(id: u32, handle: &[u8]) -> Vec<u8> {
        packet(FXP_READDIR, Some(id), &[Field::Str(handle)])
    }

    pub fn read(id: u32, handle: &[u8], offset: u64, len: u32) -> Vec<u8> {
        packet(
            FXP_READ,
            Some(id),
            &[Field::Str(handle), Field::U64(offset), Field::U32(len)],
        )
    }

    pub fn write(id: u32, handle: &[u8], offset: u64, data: &[u8]) -> Vec<u8> {
        packet(
            FXP_WRITE,
            Some(id),
            &[Field::Str(handle), Field::U64(offset), Field::Str(data)],
        )
    }

    pub fn close(id: u32, handle: &[u8]) -> Vec<u8> {
        packet(FXP_CLOSE, Some(id), &[Field::Str(handle)])
    }

    pub fn fstat(id: u32, handle: &[u8]) -> Vec<u8> {
        packet(FXP_FSTAT, Some(id), &[Field::Str(handle)])
    }

    pub fn stat(id: u32, path: &str) -> Vec<u8> {
        packet(FXP_STAT, Some(id), &[Field::Str(path.as_bytes())])
    }

    /// SYMLINK in OpenSSH's wire order: the link's target first, then the
    /// path of the link to create.
    pub fn symlink(id: u32, target: &str, link: &str) -> Vec<u8> {
        packet(
            FXP_SYMLINK,
            Some(id),
            &[Field::Str(target.as_bytes()), Field::Str(link.as_bytes())],
        )
    }

    /// An `SSH_FXP_EXTENDED` request named `name`.
    pub fn extended(id: u32, name: &str, fields: &[Field<'_>]) -> Vec<u8> {
        let mut all = vec![Field::Str(name.as_bytes())];
        all.extend_from_slice(fields);
        packet(FXP_EXTENDED, Some(id), &all)
    }
}

/// A packet from the server, decoded.
#[derive(Clone, PartialEq, Eq)]
pub enum Reply {
    Version {
        version: u32,
    },
    Status {
        id: u32,
        code: u32,
        message: String,
    },
    Handle {
        id: u32,
        handle: Vec<u8>,
    },
    Data {
        id: u32,
        data: Vec<u8>,
    },
    /// The file names of a NAME (attributes skipped).
    Name {
        id: u32,
        names: Vec<String>,
    },
    /// Anything else (ATTRS, EXTENDED_REPLY), or a packet that did not
    /// decode: its type and raw body.
    Other {
        kind: u8,
        body: Vec<u8>,
    },
}

impl Reply {
    /// The request id it answers (none for VERSION and undecoded packets).
    pub fn id(&self) -> Option<u32> {
        match self {
            Reply::Status { id, .. }
            | Reply::Handle { id, .. }
            | Reply::Data { id, .. }
            | Reply::Name { id, .. } => Some(*id),
            Reply::Other { body, .. } => body
                .get(..4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
            Reply::Version { .. } => None,
        }
    }

    /// The status code, when this is a STATUS.
    pub fn status(&self) -> Option<u32> {
        match self {
            Reply::Status { code, .. } => Some(*code),
            _ => None,
        }
    }

    fn decode(body: &[u8]) -> Reply {
        let other = || Reply::Other {
            kind: body.first().copied().unwrap_or(0),
            body: body.get(1..).unwrap_or_default().to_vec(),
        };
        let Some((&kind, rest)) = body.split_first() else {
            return other();
        };
        Reply::decode_known(kind, &mut Fields(rest)).unwrap_or_else(other)
    }

    /// The packet types this client reads; `None` for others and for
    /// packets too short for their type.
    fn decode_known(kind: u8, r: &mut Fields<'_>) -> Option<Reply> {
        if kind == FXP_VERSION {
            return Some(Reply::Version { version: r.u32()? });
        }
        let id = r.u32()?;
        Some(match kind {
            FXP_STATUS => Reply::Status {
                id,
                code: r.u32()?,
                // Version 3 servers may leave the message out.
                message: r
                    .string()
                    .map(|m| String::from_utf8_lossy(m).into_owned())
                    .unwrap_or_default(),
            },
            FXP_HANDLE => Reply::Handle {
                id,
                handle: r.string()?.to_vec(),
            },
            FXP_DATA => Reply::Data {
                id,
                data: r.string()?.to_vec(),
            },
            FXP_NAME => {
                let count = r.u32()?;
                let mut names = Vec::new();
                for _ in 0..count {
                    names.push(String::from_utf8_lossy(r.string()?).into_owned());
                    r.string()?; // longname
                    r.attrs()?;
                }
                Reply::Name { id, names }
            }
            _ => return None,
        })
    }
}

/// As the test reads it: DATA as text (lossy), the rest field by field.
impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reply::Version { version } => write!(f, "VERSION {version}"),
            Reply::Status { id, code, message } => {
                write!(
                    f,
                    "STATUS {{ id: {id}, code: {code}, message: {message:?} }}"
                )
            }
            Reply::Handle { id, handle } => write!(f, "HANDLE {{ id: {id}, handle: {handle:?} }}"),
            Reply::Data { id, data } => write!(
                f,
                "DATA {{ id: {id}, data: {:?} }}",
                String::from_utf8_lossy(data)
            ),
            Reply::Name { id, names } => write!(f, "NAME {{ id: {id}, names: {names:?} }}"),
            Reply::Other { kind, body } => write!(f, "packet type {kind} {body:?}"),
        }
    }
}

/// A bounds-checked reader over a packet body.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn u32(&mut self) -> Option<u32> {
        let b = self.take(4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn string(&mut self) -> Option<&'a [u8]> {
        let len = self.u32()? as usize;
        self.take(len)
    }
    /// Skips an ATTRS structure.
    fn attrs(&mut self) -> Option<()> {
        let flags = self.u32()?;
        if flags & 0x1 != 0 {
            self.take(8)?; // size
        }
        if flags & 0x2 != 0 {
            self.take(8)?; // uid, gid
        }
        if flags & 0x4 != 0 {
            self.take(4)?; // permissions
        }
        if flags & 0x8 != 0 {
            self.take(8)?; // atime, mtime
        }
        if flags & 0x8000_0000 != 0 {
            for _ in 0..self.u32()? {
                self.string()?;
                self.string()?;
            }
        }
        Some(())
    }
}

/// `ssh -s LOGIN@127.0.0.1 sftp` as an agent runs it, speaking raw packets.
pub struct RawSftp {
    child: Child,
    stdin: Option<ChildStdin>,
    replies: mpsc::Receiver<Reply>,
    /// Replies received while waiting for another id, oldest first.
    held: VecDeque<Reply>,
    ended: Arc<AtomicBool>,
    stderr_path: PathBuf,
    _scratch: TempDir,
}

impl RawSftp {
    /// Starts the sftp subsystem through the bastion; sends nothing yet.
    pub fn connect(agent: &Agent<'_>) -> RawSftp {
        let scratch = tempdir();
        let stderr_path = scratch.path().join("ssh.stderr");
        let mut cmd = ssh_base(agent, scratch.path());
        cmd.args(["-T", "-s"])
            .arg(format!("{}@127.0.0.1", agent.login))
            .arg("sftp")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&stderr_path).expect("ssh stderr file"));
        let mut child = cmd.spawn().expect("run ssh -s sftp");
        let stdin = child.stdin.take();
        let mut stdout = child.stdout.take().expect("ssh stdout");
        let (sender, replies) = mpsc::channel();
        let ended = Arc::new(AtomicBool::new(false));
        let ended_by_reader = ended.clone();
        thread::spawn(move || {
            loop {
                let mut len = [0u8; 4];
                if stdout.read_exact(&mut len).is_err() {
                    break;
                }
                let len = u32::from_be_bytes(len) as usize;
                if len > MAX_REPLY {
                    // Not SFTP (a forced command's output, say): stop reading.
                    break;
                }
                let mut body = vec![0u8; len];
                if stdout.read_exact(&mut body).is_err()
                    || sender.send(Reply::decode(&body)).is_err()
                {
                    break;
                }
            }
            ended_by_reader.store(true, Ordering::SeqCst);
        });
        RawSftp {
            child,
            stdin,
            replies,
            held: VecDeque::new(),
            ended,
            stderr_path,
            _scratch: scratch,
        }
    }

    /// Writes bytes as they are (one or several packets, or a fragment).
    /// A write the channel no longer takes is not an error: the test looks
    /// at what came back.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        if let Some(stdin) = self.stdin.as_mut() {
            if stdin.write_all(bytes).and_then(|()| stdin.flush()).is_err() {
                self.stdin = None;
            }
        }
    }

    /// Sends one packet built from its parts.
    pub fn send(&mut self, kind: u8, id: u32, fields: &[Field<'_>]) {
        self.send_raw(&packets::packet(kind, Some(id), fields));
    }

    /// Sends INIT (version 3) and returns the server's version; panics
    /// when no VERSION comes back.
    pub fn init(&mut self) -> u32 {
        self.send_raw(&packets::init());
        match self.recv(REPLY_TIMEOUT) {
            Some(Reply::Version { version }) => version,
            other => panic!(
                "INIT was answered with {other:?}, not a VERSION\n{}",
                self.stderr()
            ),
        }
    }

    pub fn realpath(&mut self, id: u32, path: &str) {
        self.send_raw(&packets::realpath(id, path));
    }
    pub fn open(&mut self, id: u32, path: &str, pflags: u32) {
        self.send_raw(&packets::open(id, path, pflags));
    }
    pub fn opendir(&mut self, id: u32, path: &str) {
        self.send_raw(&packets::opendir(id, path));
    }
    pub fn read(&mut self, id: u32, handle: &[u8], offset: u64, len: u32) {
        self.send_raw(&packets::read(id, handle, offset, len));
    }
    pub fn write(&mut self, id: u32, handle: &[u8], offset: u64, data: &[u8]) {
        self.send_raw(&packets::write(id, handle, offset, data));
    }
    pub fn close(&mut self, id: u32, handle: &[u8]) {
        self.send_raw(&packets::close(id, handle));
    }
    pub fn stat(&mut self, id: u32, path: &str) {
        self.send_raw(&packets::stat(id, path));
    }
    /// SYMLINK, OpenSSH's order: the link's target, then the link's path.
    pub fn symlink(&mut self, id: u32, target: &str, link: &str) {
        self.send_raw(&packets::symlink(id, target, link));
    }

    /// The next packet from the server, or `None` after `timeout` or once
    /// the channel has ended and everything was read.
    pub fn recv(&mut self, timeout: Duration) -> Option<Reply> {
        if let Some(reply) = self.held.pop_front() {
            return Some(reply);
        }
        self.replies.recv_timeout(timeout).ok()
    }

    /// The next reply to request `id` (others are kept for [`RawSftp::recv`]).
    pub fn recv_id(&mut self, id: u32, timeout: Duration) -> Option<Reply> {
        if let Some(at) = self.held.iter().position(|r| r.id() == Some(id)) {
            return self.held.remove(at);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let reply = self.replies.recv_timeout(left).ok()?;
            if reply.id() == Some(id) {
                return Some(reply);
            }
            self.held.push_back(reply);
        }
    }

    /// Like [`RawSftp::recv_id`], panicking with ssh's stderr when no reply comes.
    #[track_caller]
    pub fn expect_reply(&mut self, id: u32) -> Reply {
        self.recv_id(id, REPLY_TIMEOUT).unwrap_or_else(|| {
            panic!(
                "no reply to request {id} within {REPLY_TIMEOUT:?} (channel ended: {})\n{}",
                self.closed(),
                self.stderr()
            )
        })
    }

    /// A HANDLE reply's handle, panicking on anything else.
    #[track_caller]
    pub fn expect_handle(&mut self, id: u32) -> Vec<u8> {
        match self.expect_reply(id) {
            Reply::Handle { handle, .. } => handle,
            other => panic!("request {id} was answered with {other:?}, not a HANDLE"),
        }
    }

    /// A STATUS reply's code, panicking on anything else.
    #[track_caller]
    pub fn expect_status(&mut self, id: u32) -> u32 {
        match self.expect_reply(id) {
            Reply::Status { code, .. } => code,
            other => panic!("request {id} was answered with {other:?}, not a STATUS"),
        }
    }

    /// Every packet that arrives until none has for `quiet`.
    pub fn drain(&mut self, quiet: Duration) -> Vec<Reply> {
        let mut all: Vec<Reply> = self.held.drain(..).collect();
        while let Ok(reply) = self.replies.recv_timeout(quiet) {
            all.push(reply);
        }
        all
    }

    /// Whether the channel has ended (ssh's stdout closed).
    pub fn closed(&self) -> bool {
        self.ended.load(Ordering::SeqCst)
    }

    /// Waits up to `timeout` for the channel to end; true when it did.
    pub fn wait_closed(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.closed() {
            if Instant::now() > deadline {
                return false;
            }
            // Packets still arriving are kept for recv.
            if let Ok(reply) = self.replies.recv_timeout(Duration::from_millis(20)) {
                self.held.push_back(reply);
            }
        }
        true
    }

    /// What ssh printed on stderr so far.
    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Ends the session: closes ssh's stdin (EOF on the channel) and waits
    /// a moment for the channel to end.
    pub fn finish(&mut self) {
        self.stdin = None;
        self.wait_closed(Duration::from_secs(5));
    }
}

impl Drop for RawSftp {
    fn drop(&mut self) {
        self.stdin = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
