//! The sftp gate against a client that crafts its own packets: request ids
//! reused while in flight, handles it was never given, relative symlink
//! targets, packets out of the protocol's order, and the channel-level
//! scope (force-command, a cert that narrows commands). Each test makes
//! the request through the bastion with the real `ssh -s ... sftp` as
//! transport, then looks at the target's filesystem (the target is this
//! machine) and at the store: nothing reached the target, and the bastion
//! recorded why.
mod common;

use std::fs;
use std::path::{Component, Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// A directory of the test's own on the target, by its canonical path (the
/// target answers REALPATH with canonical paths).
struct Dir {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Dir {
    fn new() -> Dir {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = fs::canonicalize(dir.path()).expect("canonical temporary directory");
        Dir { _dir: dir, path }
    }
    fn path(&self) -> &str {
        text_of(&self.path)
    }
    fn join(&self, relative: &str) -> PathBuf {
        self.path.join(relative)
    }
    /// Writes `relative` (creating its directories) and returns its path.
    fn file(&self, relative: &str, contents: &str) -> PathBuf {
        let path = self.join(relative);
        fs::create_dir_all(path.parent().expect("a parent")).expect("create directories");
        fs::write(&path, contents).expect("write a file");
        path
    }
    /// The names in the directory, sorted.
    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&self.path)
            .expect("list the directory")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

fn text_of(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// The standard setup with sftp allowed within `scope`.
fn bastion_with_sftp_in(scope: &str) -> Bastion {
    Bastion::start(Setup::standard().with_role(|r| r.sftp(&[scope])))
}

/// The login user's home on the target (this machine), as sshd sees it.
fn login_home() -> PathBuf {
    let user = whoami();
    let out = run_ok(
        std::process::Command::new("getent").args(["passwd", &user]),
        "getent passwd",
    );
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    let home = line
        .trim()
        .split(':')
        .nth(5)
        .unwrap_or_else(|| panic!("no home directory in {line:?}"));
    PathBuf::from(home)
}

/// How many names deep an absolute path is (`/` is 0, `/root` is 1).
fn depth(path: &Path) -> usize {
    path.components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .count()
}

/// `levels` times `../`, then `absolute` without its leading slash: from a
/// directory at most `levels` deep, that is `absolute` itself.
fn climb_to(levels: usize, absolute: &Path) -> String {
    let rest = absolute.strip_prefix("/").expect("an absolute path");
    format!("{}{}", "../".repeat(levels), text_of(rest))
}

/// Every event of this kind, over every transcript.
fn events(b: &Bastion, kind: &str) -> Vec<Value> {
    all_transcripts(b)
        .iter()
        .flat_map(|show| events_of_kind(show, kind).into_iter().cloned())
        .collect()
}

/// Waits until at least `n` `sftp.refused` rows are in the store.
#[track_caller]
fn wait_for_refusals(b: &Bastion, n: usize) -> Vec<Value> {
    eventually(&format!("{n} sftp.refused rows"), || {
        let refused = events(b, "sftp.refused");
        if refused.len() >= n {
            Ok(refused)
        } else {
            Err(format!(
                "{} sftp.refused rows; transcripts: {:#}",
                refused.len(),
                Value::from(all_transcripts(b))
            ))
        }
    })
}

/// Waits for an `sftp.refused` row whose JSON mentions `needle`.
#[track_caller]
fn wait_for_refusal_mentioning(b: &Bastion, needle: &str) -> Value {
    let (_, event) = wait_for_event(b, "sftp.refused", |e| e.to_string().contains(needle));
    event
}

/// A refusal's or failure's status: the bastion answers permission denied
/// for a path out of scope and failure for a broken request.
#[track_caller]
fn assert_denied(reply: &Reply, what: &str) {
    assert!(
        matches!(
            reply.status(),
            Some(FX_PERMISSION_DENIED) | Some(FX_FAILURE)
        ),
        "{what} must be answered with permission denied or failure, got {reply:?}"
    );
}

/// The `sftp.op` rows name only paths under `scope` (a client `REALPATH
/// "."` may be recorded as `.` or as the home it reveals).
#[track_caller]
fn assert_ops_within(b: &Bastion, scope: &Path, home: &Path) {
    for op in events(b, "sftp.op") {
        let home_probe = op["op"] == "realpath"
            && (op["path"] == "." || op["path"] == text_of(home) || op["path"] == "");
        if home_probe {
            continue;
        }
        for field in ["path", "to"] {
            if let Some(path) = op[field].as_str() {
                assert!(
                    Path::new(path).starts_with(scope),
                    "an sftp.op row names {path}, outside the scope {}: {op}",
                    scope.display()
                );
            }
        }
    }
}

/// `sftp -b BATCH` (stops at the first failure).
fn sftp_batch(agent: &Agent<'_>, batch: &str) -> Output {
    let scratch = tempfile::tempdir().expect("scratch directory");
    let batch_file = scratch.path().join("batch");
    fs::write(&batch_file, batch).expect("write the batch");
    let mut cmd = file_client("sftp", agent, scratch.path());
    cmd.arg("-b")
        .arg(&batch_file)
        .arg(format!("{}@127.0.0.1", agent.login));
    run_bounded(&mut cmd)
}

fn shown(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Reads a handle the target should never have given: what came back.
fn read_escaped(sftp: &mut RawSftp, id: u32, handle: &[u8]) -> Option<Reply> {
    sftp.read(id, handle, 0, 4096);
    sftp.recv_id(id, REPLY_TIMEOUT)
}

const SECRET: &str = "the secret outside the scope\n";

#[test]
fn duplicate_request_id_cannot_poison_the_home() {
    // Today's gate takes the answer to the request with id 7 that it
    // tracks as REALPATH "." for the home: answering the REALPATH of a deep
    // directory first, that directory becomes the home, and a relative path
    // that climbs out of it "stays" in scope for the gate while the target,
    // resolving against the real home, lands outside.
    let home = login_home();
    let scope = Dir::new();
    let outside = Dir::new();
    let secret = outside.file("secret.txt", SECRET);
    let planted = outside.join("planted.txt");
    let levels = depth(&home).max(3);
    let names: Vec<String> = (0..levels).map(|i| format!("d{i}")).collect();
    let deep = scope.join(&names.join("/"));
    fs::create_dir_all(&deep).expect("create the deep directory");
    let b = bastion_with_sftp_in(scope.path());
    let mut sftp = RawSftp::connect(&b.granted_agent());
    sftp.init();

    sftp.send_raw(
        &[
            packets::realpath(7, text_of(&deep)),
            packets::realpath(7, "."),
        ]
        .concat(),
    );
    sftp.expect_reply(7);
    sftp.expect_reply(7);
    let steal = climb_to(levels, &secret);
    sftp.open(8, &steal, FXF_READ);
    let read = sftp.expect_reply(8);
    let leaked = match &read {
        Reply::Handle { handle, .. } => read_escaped(&mut sftp, 9, handle),
        _ => None,
    };
    let plant = climb_to(levels, &planted);
    sftp.open(10, &plant, FXF_WRITE | FXF_CREAT | FXF_TRUNC);
    let write = sftp.expect_reply(10);

    assert!(
        leaked.is_none(),
        "OPEN {steal:?} reached {}: the target gave a handle and reading it returned {leaked:?}",
        secret.display()
    );
    assert_denied(&read, "the OPEN for read outside the scope");
    assert!(
        !planted.exists(),
        "OPEN {plant:?} for write created {} outside the scope (reply {write:?})",
        planted.display()
    );
    assert_denied(&write, "the OPEN for write outside the scope");
    wait_for_refusal_mentioning(&b, "secret.txt");
    wait_for_refusal_mentioning(&b, "planted.txt");
    assert_ops_within(&b, &scope.path, &home);
}

#[test]
fn duplicate_in_flight_id_is_refused() {
    let scope = Dir::new();
    let first = scope.file("first.txt", "first\n");
    let second = scope.join("second.txt");
    let b = bastion_with_sftp_in(scope.path());
    let mut sftp = RawSftp::connect(&b.granted_agent());
    sftp.init();

    // Both before any answer: the second id 3 is in flight already.
    sftp.send_raw(
        &[
            packets::open(3, text_of(&first), FXF_READ),
            packets::open(3, text_of(&second), FXF_WRITE | FXF_CREAT | FXF_TRUNC),
        ]
        .concat(),
    );
    let replies = [sftp.expect_reply(3), sftp.expect_reply(3)];

    let handles = replies
        .iter()
        .filter(|r| matches!(r, Reply::Handle { .. }))
        .count();
    let failures = replies
        .iter()
        .filter(|r| r.status() == Some(FX_FAILURE))
        .count();
    assert_eq!(
        (handles, failures),
        (1, 1),
        "one open is answered by the target, the duplicate with SSH_FX_FAILURE: {replies:?}"
    );
    assert!(
        !second.exists(),
        "the duplicate OPEN reached the target and created {}",
        second.display()
    );
    let refused = wait_for_refusals(&b, 1);
    assert!(
        refused.iter().any(|e| {
            let reason = e["reason"].as_str().unwrap_or("").to_lowercase();
            reason.contains("id") || reason.contains('3')
        }),
        "a refusal's reason names the request id: {refused:?}"
    );
    let opens: Vec<Value> = events(&b, "sftp.op")
        .into_iter()
        .filter(|e| e["op"] == "open")
        .collect();
    assert_eq!(opens.len(), 1, "only the first OPEN is recorded: {opens:?}");
    assert_eq!(opens[0]["path"], text_of(&first), "{opens:?}");
}

#[test]
fn forged_handle_is_refused() {
    let scope = Dir::new();
    let file = scope.file("in-scope.txt", "in scope\n");
    let b = bastion_with_sftp_in(scope.path());
    let mut sftp = RawSftp::connect(&b.granted_agent());
    sftp.init();

    // Handles never issued on this channel (OpenSSH's are 4-byte indexes).
    let forged: [(u32, Vec<u8>); 5] = [
        (10, packets::read(10, b"\0\0\0\0", 0, 4096)),
        (11, packets::write(11, b"0", 0, b"forged write\n")),
        (12, packets::close(12, b"1")),
        (13, packets::fstat(13, b"\0\0\0\0")),
        (14, packets::readdir(14, b"\0\0\0\x01")),
    ];
    let mut replies = Vec::new();
    for (id, packet) in &forged {
        sftp.send_raw(packet);
        replies.push(sftp.expect_reply(*id));
    }
    // The bastion answers them itself (the target would answer too, with
    // its own failure or "No such file").
    wait_for_refusals(&b, forged.len());
    for reply in &replies {
        assert_denied(reply, "a request on a forged handle");
    }

    // A handle the target did issue, once closed, is no handle any more.
    sftp.open(20, text_of(&file), FXF_READ);
    let handle = sftp.expect_handle(20);
    sftp.close(21, &handle);
    assert_eq!(sftp.expect_status(21), FX_OK, "the in-scope close");
    sftp.read(22, &handle, 0, 4096);
    assert_denied(&sftp.expect_reply(22), "READ on a closed handle");
    sftp.write(23, &handle, 0, b"written after close\n");
    assert_denied(&sftp.expect_reply(23), "WRITE on a closed handle");

    wait_for_refusals(&b, forged.len() + 2);
    assert_eq!(fs::read_to_string(&file).unwrap(), "in scope\n");
    assert_eq!(scope.names(), ["in-scope.txt"], "nothing new was written");
}

/// The layout for symlink targets: the scope is `levels - 1` directories
/// below a parent of the test's own, the link goes into `SCOPE/sub`, so
/// `levels` times `..` from the link's directory is that parent.
struct LinkLayout {
    parent: Dir,
    scope: PathBuf,
    sub: PathBuf,
    levels: usize,
}

impl LinkLayout {
    fn new(home: &Path) -> LinkLayout {
        // At least as many `..` as the home is deep, so that against the
        // home they climb to `/`.
        let levels = depth(home).max(2);
        let parent = Dir::new();
        let names: Vec<String> = (1..levels).map(|i| format!("scope{i}")).collect();
        let scope = parent.join(&names.join("/"));
        let sub = scope.join("sub");
        fs::create_dir_all(&sub).expect("create SCOPE/sub");
        LinkLayout {
            parent,
            scope,
            sub,
            levels,
        }
    }
}

#[test]
fn relative_symlink_target_resolves_against_the_link_directory() {
    let home = login_home();
    let layout = LinkLayout::new(&home);
    let scope = text_of(&layout.scope).to_string();
    let b = bastion_with_sftp_in(&scope);
    let mut sftp = RawSftp::connect(&b.granted_agent());
    sftp.init();
    sftp.realpath(1, ".");
    sftp.expect_reply(1);

    // Out of the scope from the link's directory (and from the home too).
    layout.parent.file("outside-secret", SECRET);
    let plain = format!("{}outside-secret", "../".repeat(layout.levels));
    let link = layout.sub.join("link");
    sftp.symlink(2, &plain, text_of(&link));
    let reply = sftp.expect_reply(2);
    assert!(
        fs::symlink_metadata(&link).is_err(),
        "the link {} -> {plain} was created ({reply:?})",
        link.display()
    );
    assert_denied(
        &reply,
        "a symlink whose relative target climbs out of the scope",
    );

    // In the scope when resolved against the home (where `..` climbs to
    // `/`), outside it when resolved against the link's directory: the
    // link would lead to a file the scope does not hold.
    let crafted = climb_to(layout.levels, &layout.scope.join("secret"));
    let stolen = layout.parent.file(
        &format!(
            "{}/secret",
            text_of(layout.scope.strip_prefix("/").unwrap())
        ),
        SECRET,
    );
    let crafted_link = layout.sub.join("link-crafted");
    sftp.symlink(3, &crafted, text_of(&crafted_link));
    let reply = sftp.expect_reply(3);
    assert!(
        fs::symlink_metadata(&crafted_link).is_err(),
        "the link {} -> {crafted} was created: it leads to {} ({reply:?})",
        crafted_link.display(),
        stolen.display()
    );
    assert_denied(
        &reply,
        "a symlink resolved against the home instead of its directory",
    );

    let refused = wait_for_refusals(&b, 2);
    assert!(
        refused.iter().all(|e| e.to_string().contains("link")),
        "the refusals are the symlinks': {refused:?}"
    );
    assert!(
        events(&b, "sftp.op").iter().all(|e| e["op"] != "symlink"),
        "no symlink was recorded as made"
    );
}

#[test]
fn relative_symlink_target_inside_the_scope_is_allowed() {
    let home = login_home();
    let layout = LinkLayout::new(&home);
    fs::write(layout.sub.join("x.txt"), "x\n").unwrap();
    let b = bastion_with_sftp_in(text_of(&layout.scope));
    let mut sftp = RawSftp::connect(&b.granted_agent());
    sftp.init();
    sftp.realpath(1, ".");
    sftp.expect_reply(1);

    // `x.txt` from SCOPE/sub is SCOPE/sub/x.txt: in scope, wherever the home is.
    let link = layout.sub.join("link2");
    sftp.symlink(2, "x.txt", text_of(&link));
    let reply = sftp.expect_reply(2);

    assert_eq!(
        reply.status(),
        Some(FX_OK),
        "a link to a file beside it is made: {reply:?}"
    );
    assert_eq!(fs::read_link(&link).unwrap(), Path::new("x.txt"));
    assert_eq!(fs::read_to_string(&link).unwrap(), "x\n");
    wait_for_event(&b, "sftp.op", |e| e["op"] == "symlink");
}

/// The channel ended, nothing was recorded as sent to the target, and the
/// bastion recorded a refusal (an `sftp.refused` or `request.refused` row).
#[track_caller]
fn assert_channel_ended_unforwarded(b: &Bastion, sftp: &mut RawSftp, what: &str) {
    assert!(
        sftp.wait_closed(REPLY_TIMEOUT),
        "{what}: the channel did not end; replies {:?}",
        sftp.drain(Duration::from_millis(200))
    );
    let ops = events(b, "sftp.op");
    assert!(
        ops.iter().all(|e| e["op"] != "open"),
        "{what}: an OPEN was recorded as forwarded to the target: {ops:?}"
    );
    eventually(&format!("{what}: a recorded refusal"), || {
        let refusals: Vec<Value> = ["sftp.refused", "request.refused"]
            .iter()
            .flat_map(|kind| events(b, kind))
            .collect();
        if refusals.is_empty() {
            Err(format!("{:#}", Value::from(all_transcripts(b))))
        } else {
            Ok(())
        }
    });
}

#[test]
fn request_before_init_ends_the_channel() {
    let scope = Dir::new();
    let early = scope.join("early.txt");
    let b = bastion_with_sftp_in(scope.path());
    let mut sftp = RawSftp::connect(&b.granted_agent());

    sftp.open(1, text_of(&early), FXF_WRITE | FXF_CREAT | FXF_TRUNC);

    let reply = sftp.recv(Duration::from_secs(2));
    assert!(
        !matches!(reply, Some(Reply::Handle { .. })),
        "an OPEN before INIT was answered with a handle: {reply:?}"
    );
    assert_channel_ended_unforwarded(&b, &mut sftp, "OPEN before INIT");
    assert!(!early.exists(), "{} was created", early.display());
}

#[test]
fn second_init_ends_the_channel() {
    let scope = Dir::new();
    let late = scope.join("late.txt");
    let b = bastion_with_sftp_in(scope.path());
    let mut sftp = RawSftp::connect(&b.granted_agent());
    sftp.init();

    sftp.send_raw(
        &[
            packets::init(),
            packets::open(2, text_of(&late), FXF_WRITE | FXF_CREAT | FXF_TRUNC),
        ]
        .concat(),
    );

    assert_channel_ended_unforwarded(&b, &mut sftp, "a second INIT");
    assert!(!late.exists(), "{} was created", late.display());
}

#[test]
fn forced_command_replaces_the_sftp_subsystem() {
    let scope = Dir::new();
    scope.file("listed.txt", "x\n");
    let b =
        Bastion::start(Setup::standard().with_role(|r| r.sftp(&[scope.path()]).exec(&["uptime"])));
    let agent = b.signed_agent(
        &b.task_ca(),
        &CertSpec::standard()
            .option("force-command=uptime")
            .exec(&["uptime"]),
    );

    let out = sftp_batch(&agent, &format!("ls {}\n", scope.path()));

    assert!(
        !out.status.success() && !String::from_utf8_lossy(&out.stdout).contains("listed.txt"),
        "sftp got a working session despite the cert's force-command: {}",
        shown(&out)
    );
    wait_for_event(&b, "exec.allowed", |e| e["forced_command"] == "uptime");
    let started = events(&b, "sftp.started");
    assert!(started.is_empty(), "no sftp subsystem started: {started:?}");
}

#[test]
fn cert_narrowing_commands_gets_no_sftp() {
    let scope = Dir::new();
    scope.file("listed.txt", "x\n");
    let b = bastion_with_sftp_in(scope.path());
    let agent = b.signed_agent(&b.task_ca(), &CertSpec::standard().exec(&["true"]));
    assert_output(&agent.run("true"), 0, "");

    let out = sftp_batch(&agent, &format!("ls {}\n", scope.path()));

    assert!(
        !out.status.success() && !String::from_utf8_lossy(&out.stdout).contains("listed.txt"),
        "a cert without sftp@portcullis got an sftp session: {}",
        shown(&out)
    );
    wait_for_event(&b, "request.refused", |e| {
        e["request"].as_str().unwrap_or("").contains("sftp")
    });
    let started = events(&b, "sftp.started");
    assert!(started.is_empty(), "no sftp subsystem started: {started:?}");
}

#[test]
fn sftp_after_home_probe_works_normally() {
    let scope = Dir::new();
    let b = bastion_with_sftp_in(scope.path());
    let agent = b.granted_agent();
    let local = b.dir().join("put.txt");
    fs::write(&local, "put me\n").unwrap();
    let got = b.dir().join("got.txt");
    let batch = format!(
        "cd {up}\nput {local} f.txt\nget f.txt {got}\nls {up}\n",
        up = scope.path(),
        local = local.display(),
        got = got.display()
    );

    let out = sftp_batch(&agent, &batch);

    assert!(out.status.success(), "{}", shown(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("f.txt"),
        "ls lists the file: {}",
        shown(&out)
    );
    assert_eq!(fs::read_to_string(scope.join("f.txt")).unwrap(), "put me\n");
    assert_eq!(fs::read_to_string(&got).unwrap(), "put me\n");
    let f = scope.join("f.txt");
    wait_for_event(&b, "sftp.op", |e| {
        e["op"] == "open" && e["path"] == text_of(&f) && e["flags"] == "read"
    });
    wait_for_event(&b, "sftp.closed", |e| {
        e["path"] == text_of(&f) && e["bytes_written"] == 7
    });
    // (`ls` also asks for users-groups-by-id@openssh.com, which the bastion
    // may refuse: the names are cosmetic.)
    let refused = events(&b, "sftp.refused");
    assert!(
        refused
            .iter()
            .all(|e| !e.to_string().contains(scope.path())),
        "no operation on the scope is refused: {refused:?}"
    );
}

#[test]
fn client_realpath_dot_is_answered_with_the_home_and_nothing_else() {
    let home = login_home();
    let scope = Dir::new();
    let b = bastion_with_sftp_in(scope.path());
    let mut sftp = RawSftp::connect(&b.granted_agent());
    sftp.init();

    sftp.realpath(1, ".");

    match sftp.expect_reply(1) {
        Reply::Name { names, .. } => assert_eq!(names, [text_of(&home)]),
        other => panic!("REALPATH \".\" was answered with {other:?}"),
    }
    let extra = sftp.drain(Duration::from_millis(500));
    assert!(
        extra.is_empty(),
        "the bastion's own home probe is never answered to the client: {extra:?}"
    );
}

#[test]
fn reused_id_of_an_unanswered_close_cannot_open_unrecorded() {
    // Today's gate keeps one pending request per id: an OPEN reusing the id
    // of a CLOSE in flight takes its slot, the CLOSE's answer consumes it,
    // and the handle the OPEN gets is never followed (its reads go to no
    // file's totals, or to the closed file's).
    let scope = Dir::new();
    let report = scope.file("report.txt", "report\n");
    let other = scope.file("other.txt", "other contents\n");
    let b = bastion_with_sftp_in(scope.path());
    let mut sftp = RawSftp::connect(&b.granted_agent());
    sftp.init();
    sftp.open(1, text_of(&report), FXF_READ);
    let handle = sftp.expect_handle(1);

    sftp.send_raw(
        &[
            packets::close(5, &handle),
            packets::open(5, text_of(&other), FXF_READ),
        ]
        .concat(),
    );
    let replies = [sftp.expect_reply(5), sftp.expect_reply(5)];

    let reopened = replies.iter().find_map(|r| match r {
        Reply::Handle { handle, .. } => Some(handle.clone()),
        _ => None,
    });
    if let Some(reopened) = reopened {
        let read = read_escaped(&mut sftp, 6, &reopened);
        panic!(
            "the OPEN reusing the CLOSE's id 5 reached the target: {replies:?}; reading it gave {read:?}"
        );
    }
    assert!(
        replies.iter().any(|r| r.status() == Some(FX_OK)),
        "the CLOSE is answered: {replies:?}"
    );
    assert!(
        replies.iter().any(|r| r.status() == Some(FX_FAILURE)),
        "the OPEN with an id in flight gets SSH_FX_FAILURE: {replies:?}"
    );
    wait_for_refusals(&b, 1);
    let opens = events(&b, "sftp.op");
    assert!(
        opens.iter().all(|e| e["path"] != text_of(&other)),
        "the refused OPEN is not recorded as forwarded: {opens:?}"
    );
}

#[test]
fn copy_data_with_a_forged_handle_is_refused() {
    let scope = Dir::new();
    let source = scope.file("source.txt", "source\n");
    let destination = scope.join("destination.txt");
    let b = bastion_with_sftp_in(scope.path());
    let mut sftp = RawSftp::connect(&b.granted_agent());
    sftp.init();
    sftp.open(1, text_of(&destination), FXF_WRITE | FXF_CREAT | FXF_TRUNC);
    let write_handle = sftp.expect_handle(1);
    sftp.open(2, text_of(&source), FXF_READ);
    let read_handle = sftp.expect_handle(2);

    // copy-data: read handle, offset, length (0: to the end), write handle, offset.
    let copy = |id: u32, from: &[u8], to: &[u8]| {
        packets::extended(
            id,
            "copy-data",
            &[
                Field::Str(from),
                Field::U64(0),
                Field::U64(0),
                Field::Str(to),
                Field::U64(0),
            ],
        )
    };
    sftp.send_raw(&copy(3, b"\0\0\0\x09", &write_handle));
    let from_forged = sftp.expect_reply(3);
    sftp.send_raw(&copy(4, &read_handle, b"\0\0\0\x08"));
    let into_forged = sftp.expect_reply(4);

    wait_for_refusals(&b, 2);
    // A bastion that does not pass copy-data at all may say so instead.
    for reply in [&from_forged, &into_forged] {
        assert!(
            matches!(
                reply.status(),
                Some(FX_PERMISSION_DENIED | FX_FAILURE | FX_OP_UNSUPPORTED)
            ),
            "copy-data with a forged handle is refused: {reply:?}"
        );
    }
    assert_eq!(fs::read_to_string(&destination).unwrap(), "");
    assert_eq!(scope.names(), ["destination.txt", "source.txt"]);
}

#[test]
fn hardlink_to_a_file_outside_is_refused() {
    let home = login_home();
    let scope = Dir::new();
    let outside = Dir::new();
    let secret = outside.file("secret.txt", SECRET);
    let b = bastion_with_sftp_in(scope.path());
    let mut sftp = RawSftp::connect(&b.granted_agent());
    sftp.init();
    sftp.realpath(1, ".");
    sftp.expect_reply(1);

    let hardlink = |id: u32, old: &str, new: &Path| {
        packets::extended(
            id,
            "hardlink@openssh.com",
            &[
                Field::Str(old.as_bytes()),
                Field::Str(text_of(new).as_bytes()),
            ],
        )
    };
    let absolute = scope.join("stolen");
    sftp.send_raw(&hardlink(2, text_of(&secret), &absolute));
    assert_denied(
        &sftp.expect_reply(2),
        "a hardlink to an absolute path outside",
    );
    // The same file named relative to the home.
    let relative = scope.join("stolen-relative");
    sftp.send_raw(&hardlink(3, &climb_to(depth(&home), &secret), &relative));
    assert_denied(
        &sftp.expect_reply(3),
        "a hardlink to a relative path outside",
    );

    assert!(!absolute.exists() && !relative.exists(), "no link was made");
    assert!(scope.names().is_empty(), "the scope is still empty");
    wait_for_refusals(&b, 2);
    assert!(
        events(&b, "sftp.op").iter().all(|e| e["op"] != "hardlink"),
        "no hardlink was recorded as made"
    );
}
