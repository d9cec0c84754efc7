//! Role confusion: a certificate speaks for one ceiling and no more. A cert
//! the grant flow or `portcullis grant` issued for one role names that role
//! and gets nothing another role of the same identity grants; a plain cert
//! (`ssh-keygen -s`, no portcullis options) gets only the identity's
//! auto-approval roles; a manual role is reachable only by a cert that
//! names it; an explicit cert gets no dimension it does not carry.
mod common;

use std::fs;

use common::*;

const READER: &str = "reader";
const WRITER: &str = "writer";

/// An identity holding `reader` (auto: runs `true`, forwards to its own
/// echo server, so its certs carry permit-port-forwarding) and `writer`
/// (manual: `echo *`, sftp in a directory, an -R listener, a forward).
struct TwoRoles {
    writer_files: tempfile::TempDir,
    writer_listen: u16,
    writer_echo: EchoServer,
    reader_echo: EchoServer,
}

impl TwoRoles {
    fn new() -> TwoRoles {
        TwoRoles {
            writer_files: tempfile::tempdir().unwrap(),
            writer_listen: free_port(),
            writer_echo: EchoServer::start(b""),
            reader_echo: EchoServer::start(b""),
        }
    }

    fn setup(&self) -> Setup {
        let files = self.writer_files.path().to_str().unwrap();
        let reader = Role::on(&[TARGET])
            .exec(&["true"])
            .open(&[&format!("127.0.0.1:{}", self.reader_echo.port)]);
        let writer = Role::on(&[TARGET])
            .exec(&["echo *"])
            .sftp(&[files])
            .listen(&[&format!("127.0.0.1:{}", self.writer_listen)])
            .open(&[&format!("127.0.0.1:{}", self.writer_echo.port)])
            .approval("manual");
        Setup::empty()
            .target(TARGET)
            .role(READER, reader)
            .role(WRITER, writer)
            .identity(AGENT, &[READER, WRITER])
    }
}

/// A reader cert from the grant@ request flow (auto approval).
fn requested_reader<'b>(b: &'b Bastion, id: &IdentityKey) -> Agent<'b> {
    let task = b.new_key();
    let out = id.request(b, &task, "--role reader --ttl 5m");
    assert_eq!(out.code, 0, "the reader request is granted: {out:?}");
    usable(b.agent_with(task))
}

/// A reader cert from `portcullis grant --role reader`.
fn granted_reader(b: &Bastion) -> Agent<'_> {
    let key = b.new_key();
    grant(b, AGENT, READER, "10m", &key, Some("T-1"));
    usable(b.agent_with(key))
}

/// The cert logs in and runs what its own role allows.
fn usable(agent: Agent<'_>) -> Agent<'_> {
    assert_output(&agent.run("true"), 0, "");
    agent
}

/// sftp (the writer's) is refused: the upload fails, the file is not
/// created, and the refusal is recorded.
#[track_caller]
fn assert_no_sftp(agent: &Agent<'_>, world: &TwoRoles) {
    let local = agent.bastion.dir().join("payload.txt");
    fs::write(&local, "not for readers\n").unwrap();
    let stolen = world.writer_files.path().join("stolen.txt");

    let out = sftp_batch(
        agent,
        &format!("put {} {}\n", local.display(), stolen.display()),
    );

    assert!(!out.status.success(), "the upload succeeded: {out:?}");
    assert!(!stolen.exists(), "the file reached the target");
    wait_for_any_event(agent.bastion, &["request.refused", "sftp.refused"], |e| {
        e["kind"] == "sftp.refused"
            || e["request"].as_str().unwrap_or_default().contains("sftp")
            || reason_of(e).contains("sftp")
    });
}

/// An -R listener on 127.0.0.1:`port` is refused: nothing binds, ssh
/// gives up, and the refusal is recorded.
#[track_caller]
fn assert_no_listener(agent: &Agent<'_>, port: u16) {
    // The client-side end is never dialled: nothing may connect.
    let spec = format!("127.0.0.1:{port}:127.0.0.1:1");

    let attempt = try_remote_forward(agent, &spec, port);

    assert!(!attempt.bound, "the listener was bound: {attempt:?}");
    assert!(
        attempt.status.is_some_and(|s| !s.success()),
        "ssh kept the forward: {attempt:?}"
    );
    assert!(!is_listening(port), "something listens on {port}");
    wait_for_event(agent.bastion, "request.refused", |e| {
        let reason = reason_of(e);
        reason.contains("listen") || reason.contains("remote forward")
    });
}

/// A forward to `echo` is refused: the destination sees no connection and
/// a forward.refused row says why.
#[track_caller]
fn assert_no_forward(agent: &Agent<'_>, echo: &EchoServer) {
    let out = stdio_forward_once(agent, &format!("127.0.0.1:{}", echo.port));

    assert!(!out.status.success(), "the forward worked: {out:?}");
    let (_, refused) = wait_for_event(agent.bastion, "forward.refused", |e| e["port"] == echo.port);
    let reason = reason_of(&refused);
    assert!(
        reason.contains(&echo.port.to_string()) || reason.contains("open"),
        "the reason names the destination or the missing open scope: {refused}"
    );
    assert_eq!(echo.accepted(), 0, "the destination was reached: {refused}");
}

fn with_identity_key(world: &TwoRoles) -> (Bastion, IdentityKey) {
    let id = IdentityKey::generate();
    let b = Bastion::start(world.setup().identity_key(AGENT, &id.line));
    (b, id)
}

#[test]
fn requested_reader_cert_cannot_use_the_writers_sftp() {
    let world = TwoRoles::new();
    let (b, id) = with_identity_key(&world);
    assert_no_sftp(&requested_reader(&b, &id), &world);
}

#[test]
fn requested_reader_cert_cannot_open_the_writers_listener() {
    let world = TwoRoles::new();
    let (b, id) = with_identity_key(&world);
    assert_no_listener(&requested_reader(&b, &id), world.writer_listen);
}

#[test]
fn requested_reader_cert_cannot_use_the_writers_forward() {
    let world = TwoRoles::new();
    let (b, id) = with_identity_key(&world);
    assert_no_forward(&requested_reader(&b, &id), &world.writer_echo);
}

#[test]
fn granted_reader_cert_cannot_use_the_writers_sftp() {
    let world = TwoRoles::new();
    let b = Bastion::start(world.setup());
    assert_no_sftp(&granted_reader(&b), &world);
}

#[test]
fn granted_reader_cert_cannot_open_the_writers_listener() {
    let world = TwoRoles::new();
    let b = Bastion::start(world.setup());
    assert_no_listener(&granted_reader(&b), world.writer_listen);
}

#[test]
fn granted_reader_cert_cannot_use_the_writers_forward() {
    let world = TwoRoles::new();
    let b = Bastion::start(world.setup());
    assert_no_forward(&granted_reader(&b), &world.writer_echo);
}

/// `checker` (auto) runs `true`; `writer` (manual) runs `echo *`.
fn auto_and_manual() -> Setup {
    Setup::empty()
        .target(TARGET)
        .role("checker", Role::on(&[TARGET]).exec(&["true"]))
        .role(
            WRITER,
            Role::on(&[TARGET]).exec(&["echo *"]).approval("manual"),
        )
        .identity(AGENT, &["checker", WRITER])
}

/// A certificate as an outside operator signs it: every grant extension,
/// no portcullis options.
fn plain_cert() -> CertSpec {
    CertSpec::standard()
        .option("extension:permit-pty")
        .option("extension:permit-port-forwarding")
}

#[test]
fn plain_cert_cannot_reach_a_manual_roles_commands() {
    let b = Bastion::start(auto_and_manual());
    let agent = b.signed_agent(&b.task_ca(), &plain_cert());

    assert_output(&agent.run("true"), 0, "");
    assert_command_refused(&agent, "echo hi");
}

#[test]
fn cert_naming_the_manual_role_speaks_for_that_role_only() {
    let b = Bastion::start(auto_and_manual());
    let agent = b.signed_agent(&b.task_ca(), &plain_cert().role(WRITER));

    assert_output(&agent.run("echo hi"), 0, "hi\n");
    assert_command_refused(&agent, "true");
}

#[test]
fn plain_cert_of_an_identity_with_only_manual_roles_is_refused() {
    let b = Bastion::start(Setup::standard().with_role(|r| r.approval("manual")));
    let agent = b.signed_agent(&b.task_ca(), &plain_cert());
    assert_cert_refused(&agent, "manual");
}

#[test]
fn cert_naming_a_role_the_identity_does_not_hold_is_refused() {
    let b = Bastion::start(Setup::standard().role("admin", Role::on(&[TARGET]).exec(&["*"])));
    let agent = b.signed_agent(&b.task_ca(), &plain_cert().role("admin"));
    assert_cert_refused(&agent, "admin");
}

#[test]
fn cert_naming_a_role_that_does_not_reach_the_target_is_refused() {
    let b = Bastion::start(
        Setup::standard()
            .target("db1")
            .role("dbadmin", Role::on(&["db1"]).exec(&["*"]))
            .identity(AGENT, &[ROLE, "dbadmin"]),
    );
    let agent = b.signed_agent(&b.task_ca(), &plain_cert().role("dbadmin"));
    assert_cert_refused(&agent, "dbadmin");
}

#[test]
fn cert_outliving_the_named_roles_max_ttl_is_refused() {
    let b = Bastion::start(
        Setup::empty()
            .target(TARGET)
            .role("brief", Role::on(&[TARGET]).exec(&["true"]).max_ttl("5m"))
            .role("lasting", Role::on(&[TARGET]).exec(&["true"]).max_ttl("1h"))
            .identity(AGENT, &["brief", "lasting"]),
    );
    // 31 minutes: within `lasting`'s max_ttl, beyond `brief`'s.
    let spec = plain_cert().role("brief").validity("-1m:+30m");
    let agent = b.signed_agent(&b.task_ca(), &spec);
    assert_cert_refused(&agent, "max_ttl");
}

/// An explicit cert: `exec@portcullis` and permit-port-forwarding, but no
/// `open@portcullis` or `listen@portcullis`.
fn explicit_exec_only() -> CertSpec {
    CertSpec::standard()
        .exec(&["true"])
        .option("extension:permit-port-forwarding")
}

#[test]
fn explicit_cert_without_open_option_has_no_forwards() {
    let echo = EchoServer::start(b"");
    let b = Bastion::start(
        Setup::standard().with_role(|r| r.open(&[&format!("127.0.0.1:{}", echo.port)])),
    );
    let agent = usable(b.signed_agent(&b.task_ca(), &explicit_exec_only()));
    assert_no_forward(&agent, &echo);
}

#[test]
fn explicit_cert_without_listen_option_has_no_remote_forwards() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let b = Bastion::start(Setup::standard().with_role(|r| r.listen(&[&listen])));
    let agent = usable(b.signed_agent(&b.task_ca(), &explicit_exec_only()));
    assert_no_listener(&agent, port);
}
