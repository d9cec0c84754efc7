//! Forwards: the real `ssh -L`/`-J`/`-R`, and small TCP destinations.

use super::*;

use std::net::Shutdown;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// `ssh` with the agent's key and cert and the bastion's pinned host key,
/// no config file, no agent; the caller adds options and the destination.
/// The known_hosts file lives in `scratch`.
pub fn ssh_base(agent: &Agent<'_>, scratch: &Path) -> Command {
    let mut cmd = Command::new("ssh");
    cmd.args(["-p", &agent.bastion.port.to_string()])
        .args(client_options(agent, scratch));
    cmd
}

/// The same for `scp` and `sftp` (whose port option is `-P`).
pub fn file_client(program: &str, agent: &Agent<'_>, scratch: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(["-P", &agent.bastion.port.to_string()])
        .args(client_options(agent, scratch));
    cmd
}

fn client_options(agent: &Agent<'_>, scratch: &Path) -> Vec<String> {
    let known_hosts = scratch.join("known_hosts");
    fs::write(
        &known_hosts,
        format!(
            "[127.0.0.1]:{} {}\n",
            agent.bastion.port,
            agent.bastion.host_key()
        ),
    )
    .expect("write known_hosts");
    let mut options = vec![
        "-F".to_string(),
        "/dev/null".to_string(),
        format!("-oIdentityFile={}", agent.key.private.display()),
        format!("-oUserKnownHostsFile={}", known_hosts.display()),
    ];
    if let Some(cert) = &agent.cert {
        options.push(format!("-oCertificateFile={}", cert.display()));
    }
    for option in [
        "BatchMode=yes",
        "IdentitiesOnly=yes",
        "IdentityAgent=none",
        "GlobalKnownHostsFile=/dev/null",
        "StrictHostKeyChecking=yes",
        "LogLevel=ERROR",
        "ConnectTimeout=10",
    ] {
        options.push(format!("-o{option}"));
    }
    options
}

/// Whether something listens on 127.0.0.1:`port`, read from /proc so that
/// probing opens no connection (which would be a forward of its own).
pub fn is_listening(port: u16) -> bool {
    let wanted = format!(":{port:04X} ");
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|file| {
        fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .any(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                fields.len() > 3
                    && format!("{} ", fields[1]).ends_with(&wanted)
                    && fields[3] == "0A"
            })
    })
}

/// Every local address something listens on at `port` (any address
/// family), read from /proc like [`is_listening`].
pub fn listening_addresses(port: u16) -> Vec<SocketAddr> {
    let mut found = Vec::new();
    for (file, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        let text = fs::read_to_string(file).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() <= 3 || fields[3] != "0A" {
                continue;
            }
            let Some((addr, p)) = fields[1].split_once(':') else {
                continue;
            };
            if u16::from_str_radix(p, 16).ok() != Some(port) {
                continue;
            }
            if let Some(ip) = proc_net_address(addr, v6) {
                found.push(SocketAddr::new(ip, port));
            }
        }
    }
    found
}

/// An address as /proc/net/tcp{,6} prints it: 32-bit words in host
/// (little-endian) order, as hex.
fn proc_net_address(hex: &str, v6: bool) -> Option<std::net::IpAddr> {
    let words: Vec<u32> = hex
        .as_bytes()
        .chunks(8)
        .map(|w| u32::from_str_radix(std::str::from_utf8(w).ok()?, 16).ok())
        .collect::<Option<_>>()?;
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    if v6 {
        let octets: [u8; 16] = bytes.try_into().ok()?;
        Some(std::net::Ipv6Addr::from(octets).into())
    } else {
        let octets: [u8; 4] = bytes.try_into().ok()?;
        Some(std::net::Ipv4Addr::from(octets).into())
    }
}

/// This host's addresses other than loopback and link-local (from `ip -o
/// addr show`): where a bastion on this host could reach itself.
pub fn own_interface_addresses() -> Vec<std::net::IpAddr> {
    let Ok(out) = Command::new("ip").args(["-o", "addr", "show"]).output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            words.find(|w| *w == "inet" || *w == "inet6")?;
            let cidr = words.next()?;
            cidr.split('/').next()?.parse::<std::net::IpAddr>().ok()
        })
        .filter(|ip| match ip {
            std::net::IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_link_local(),
            std::net::IpAddr::V6(v6) => !v6.is_loopback() && (v6.segments()[0] & 0xffc0) != 0xfe80,
        })
        .collect()
}

/// `ssh -W DESTINATION` with stdin at EOF: an allowed forward connects,
/// half-closes and returns what the destination sent; a refused one fails.
pub fn stdio_forward_once(agent: &Agent<'_>, destination: &str) -> Output {
    let scratch = tempdir();
    let mut cmd = ssh_base(agent, scratch.path());
    cmd.args(["-W", destination])
        .arg(format!("{}@127.0.0.1", agent.login));
    run_bounded(&mut cmd)
}

/// What an `ssh -N -R SPEC` attempt came to.
#[derive(Debug)]
pub struct RemoteForwardAttempt {
    /// Something listened on the remote port while ssh ran.
    pub bound: bool,
    /// ssh's exit status when it gave up by itself (`None`: it kept running).
    pub status: Option<ExitStatus>,
    pub stderr: String,
}

/// `ssh -N -o ExitOnForwardFailure=yes -R SPEC`: waits until ssh gives up
/// or `port` is listening (then ends ssh), 10 s at most.
pub fn try_remote_forward(agent: &Agent<'_>, spec: &str, port: u16) -> RemoteForwardAttempt {
    let scratch = tempdir();
    let log = scratch.path().join("ssh.log");
    let mut cmd = ssh_base(agent, scratch.path());
    cmd.args(["-N", "-o", "ExitOnForwardFailure=yes", "-R", spec])
        .arg(format!("{}@127.0.0.1", agent.login))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).expect("ssh log"));
    let mut child = cmd.spawn().expect("run ssh -R");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut bound = false;
    let status = loop {
        bound |= is_listening(port);
        if let Some(status) = child.try_wait().expect("wait for ssh -R") {
            break Some(status);
        }
        if bound || Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    RemoteForwardAttempt {
        bound,
        status,
        stderr: fs::read_to_string(&log).unwrap_or_default(),
    }
}

/// `sftp -b BATCH` (one command a line; stops at the first failure).
pub fn sftp_batch(agent: &Agent<'_>, batch: &str) -> Output {
    let scratch = tempdir();
    let batch_file = scratch.path().join("batch");
    fs::write(&batch_file, batch).expect("write sftp batch");
    let mut cmd = file_client("sftp", agent, scratch.path());
    cmd.arg("-b")
        .arg(&batch_file)
        .arg(format!("{}@127.0.0.1", agent.login));
    run_bounded(&mut cmd)
}

/// Legacy `scp -O LOCAL LOGIN@bastion:REMOTE` (the remote runs `scp -t REMOTE`).
pub fn legacy_scp_upload(agent: &Agent<'_>, local: &Path, remote: &str) -> Output {
    let scratch = tempdir();
    let mut cmd = file_client("scp", agent, scratch.path());
    cmd.arg("-O")
        .arg(local)
        .arg(format!("{}@127.0.0.1:{remote}", agent.login));
    run_bounded(&mut cmd)
}

/// A running `ssh -N` holding forwards (and a control socket for further
/// sessions over the same connection); killed on drop.
pub struct Tunnel {
    child: Child,
    control: PathBuf,
    login: String,
    port: u16,
    _scratch: TempDir,
}

impl Tunnel {
    /// `ssh -N -M -S CTL ARGS... LOGIN@bastion`; waits until `listening`
    /// (a local forward's port) accepts, if given, and the control socket exists.
    pub fn open(agent: &Agent<'_>, args: &[&str], listening: Option<u16>) -> Tunnel {
        let scratch = tempdir();
        let control = scratch.path().join("ctl");
        let mut cmd = ssh_base(agent, scratch.path());
        cmd.args(["-N", "-M", "-o", "ExitOnForwardFailure=yes", "-S"])
            .arg(&control)
            .args(args)
            .arg(format!("{}@127.0.0.1", agent.login))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(scratch.path().join("ssh.log")).expect("ssh log"));
        let mut child = cmd.spawn().expect("run ssh -N");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !(control.exists() && listening.is_none_or(is_listening)) {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "ssh {args:?} exited {status}: {}",
                    tail(&scratch.path().join("ssh.log"), 20)
                );
            }
            assert!(Instant::now() < deadline, "ssh {args:?} did not come up");
            thread::sleep(Duration::from_millis(20));
        }
        Tunnel {
            child,
            control,
            login: agent.login.clone(),
            port: agent.bastion.port,
            _scratch: scratch,
        }
    }

    /// `ssh -W DESTINATION` over the same SSH connection, its stdin piped
    /// (a pipe holds 64 KiB, so what the bastion absorbs is what moves).
    pub fn stdio_forward(&self, destination: &str) -> Child {
        Command::new("ssh")
            .args(["-F", "/dev/null", "-o", "ControlMaster=no", "-S"])
            .arg(&self.control)
            .args(["-p", &self.port.to_string(), "-W", destination])
            .arg(format!("{}@127.0.0.1", self.login))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run ssh -W")
    }

    /// Runs `command` in a new session channel of the same SSH connection.
    pub fn exec(&self, command: &str, timeout: Duration) -> Option<Output> {
        let mut child = Command::new("ssh")
            .args(["-F", "/dev/null", "-o", "ControlMaster=no", "-S"])
            .arg(&self.control)
            .args(["-p", &self.port.to_string()])
            .arg(format!("{}@127.0.0.1", self.login))
            .arg(command)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run ssh -S");
        let deadline = Instant::now() + timeout;
        while child.try_wait().expect("wait for ssh -S").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
        Some(child.wait_with_output().expect("ssh -S output"))
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP server on 127.0.0.1 that echoes what it reads and, when the
/// client half-closes, writes `trailer` and closes. Counts connections.
pub struct EchoServer {
    pub port: u16,
    accepted: Arc<AtomicUsize>,
}

impl EchoServer {
    pub fn start(trailer: &'static [u8]) -> EchoServer {
        EchoServer::start_on([127, 0, 0, 1].into(), trailer)
    }

    /// The same on another address of this host (port chosen by the kernel).
    pub fn start_on(ip: std::net::IpAddr, trailer: &'static [u8]) -> EchoServer {
        let listener = TcpListener::bind((ip, 0)).expect("bind echo server");
        let port = listener.local_addr().expect("echo addr").port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                count.fetch_add(1, Ordering::SeqCst);
                thread::spawn(move || echo(stream, trailer));
            }
        });
        EchoServer { port, accepted }
    }

    /// Connections the destination has seen.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

fn echo(mut stream: TcpStream, trailer: &[u8]) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if stream.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(_) => return,
        }
    }
    let _ = stream.write_all(trailer);
    let _ = stream.shutdown(Shutdown::Write);
}

/// Sends `data` to 127.0.0.1:`port`, half-closes, and returns everything
/// read back until the other side closes (30 s at most).
pub fn roundtrip(port: u16, data: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the forward");
    stream
        .set_read_timeout(Some(SSH_TIMEOUT))
        .expect("read timeout");
    let mut writer = stream.try_clone().expect("clone stream");
    let data = data.to_vec();
    let sending = thread::spawn(move || {
        let _ = writer.write_all(&data);
        let _ = writer.shutdown(Shutdown::Write);
    });
    let mut got = Vec::new();
    let _ = stream.read_to_end(&mut got);
    let _ = sending.join();
    got
}

/// A TCP server on 127.0.0.1 that accepts and never reads, with a tiny
/// receive buffer so the kernel absorbs almost nothing: a stuck destination.
pub struct SinkServer {
    pub port: u16,
    held: Arc<std::sync::Mutex<Vec<TcpStream>>>,
}

impl SinkServer {
    pub fn start() -> SinkServer {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .expect("runtime for the sink socket");
        let listener = runtime.block_on(async {
            let socket = tokio::net::TcpSocket::new_v4().expect("sink socket");
            socket.set_recv_buffer_size(4096).expect("small SO_RCVBUF");
            socket
                .bind("127.0.0.1:0".parse().expect("addr"))
                .expect("bind sink");
            socket
                .listen(8)
                .expect("listen sink")
                .into_std()
                .expect("std sink")
        });
        listener.set_nonblocking(false).expect("blocking sink");
        let port = listener.local_addr().expect("sink addr").port();
        let held = Arc::new(std::sync::Mutex::new(Vec::new()));
        let keep = held.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                if let Ok(mut streams) = keep.lock() {
                    streams.push(stream);
                }
            }
        });
        SinkServer { port, held }
    }

    pub fn connections(&self) -> usize {
        self.held.lock().map(|s| s.len()).unwrap_or(0)
    }
}

/// Runs `cmd` to completion; kills it after 60 s.
pub fn run_bounded(cmd: &mut Command) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ssh");
    let stdout = reader(child.stdout.take().expect("stdout"));
    let stderr = reader(child.stderr.take().expect("stderr"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for ssh") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{cmd:?} did not finish within 60 s");
        }
        thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: stdout.join().expect("stdout"),
        stderr: stderr.join().expect("stderr"),
    }
}
