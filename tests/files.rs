//! File transfer through the bastion: `scp` (OpenSSH 9 speaks SFTP) and
//! `sftp` run only when a role grants `sftp` and only within its
//! `sftp_paths`; every operation is in the store with its path, and one
//! outside the path scope is answered by the bastion with SFTP's
//! "permission denied" and never reaches the target. Legacy `scp -O` runs
//! `scp -t`/`scp -f`, which the exec scope decides like any command.
mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;
use serde_json::Value;

/// A directory on the target (the same machine) that the role may use.
struct Remote {
    dir: tempfile::TempDir,
}

impl Remote {
    fn new() -> Remote {
        Remote {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn path(&self) -> &str {
        self.dir.path().to_str().unwrap()
    }
    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn bastion_with_sftp(remote: &Remote) -> Bastion {
    let up = remote.path().to_string();
    Bastion::start(Setup::standard().with_role(|r| {
        r.sftp(&[&up])
            .exec(&[&format!("scp -t {up}/*"), &format!("scp -f {up}/*")])
    }))
}

fn run(mut cmd: std::process::Command) -> Output {
    run_bounded(&mut cmd)
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn scp(agent: &Agent<'_>, legacy: bool, from: &str, to: &str) -> Output {
    let scratch = tempfile::tempdir().unwrap();
    let mut cmd = file_client("scp", agent, scratch.path());
    if legacy {
        cmd.arg("-O");
    }
    cmd.args([from, to]);
    run(cmd)
}

/// `sftp -b BATCH`: one command a line; stops at the first failure.
fn sftp(agent: &Agent<'_>, batch: &str) -> Output {
    let scratch = tempfile::tempdir().unwrap();
    let batch_file = scratch.path().join("batch");
    fs::write(&batch_file, batch).unwrap();
    let mut cmd = file_client("sftp", agent, scratch.path());
    cmd.arg("-b")
        .arg(&batch_file)
        .arg(format!("{}@127.0.0.1", agent.login));
    run(cmd)
}

fn remote_arg(agent: &Agent<'_>, path: &Path) -> String {
    format!("{}@127.0.0.1:{}", agent.login, path.display())
}

/// The `sftp.op` events with this op, over every transcript.
fn ops(b: &Bastion, op: &str) -> Vec<Value> {
    all_transcripts(b)
        .iter()
        .flat_map(|show| events_of_kind(show, "sftp.op").into_iter().cloned())
        .filter(|e| e["op"] == op)
        .collect()
}

#[test]
fn scp_upload_and_download_through_the_bastion() {
    let remote = Remote::new();
    let b = bastion_with_sftp(&remote);
    let agent = b.granted_agent();
    let local = b.dir().join("local.bin");
    let data = noise(200_000);
    fs::write(&local, &data).unwrap();

    let out = scp(
        &agent,
        false,
        local.to_str().unwrap(),
        &remote_arg(&agent, &remote.file("up.bin")),
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        fs::read(remote.file("up.bin")).unwrap(),
        data,
        "uploaded intact"
    );

    let back = b.dir().join("back.bin");
    let out = scp(
        &agent,
        false,
        &remote_arg(&agent, &remote.file("up.bin")),
        back.to_str().unwrap(),
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(fs::read(&back).unwrap(), data, "downloaded intact");

    let path = remote.file("up.bin").display().to_string();
    let (_, written) = wait_for_event(&b, "sftp.closed", |e| {
        e["path"] == path.as_str() && e["bytes_written"] != 0
    });
    assert_eq!(written["bytes_written"], data.len(), "{written}");
    let (_, read) = wait_for_event(&b, "sftp.closed", |e| {
        e["path"] == path.as_str() && e["bytes_read"] != 0
    });
    assert_eq!(read["bytes_read"], data.len(), "{read}");
}

#[test]
fn legacy_scp_runs_under_the_exec_scope() {
    let remote = Remote::new();
    let b = bastion_with_sftp(&remote);
    let agent = b.granted_agent();
    let local = b.dir().join("legacy.txt");
    fs::write(&local, "legacy bytes\n").unwrap();

    let out = scp(
        &agent,
        true,
        local.to_str().unwrap(),
        &remote_arg(&agent, &remote.file("legacy.txt")),
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        fs::read_to_string(remote.file("legacy.txt")).unwrap(),
        "legacy bytes\n"
    );
    let back = b.dir().join("legacy-back.txt");
    let out = scp(
        &agent,
        true,
        &remote_arg(&agent, &remote.file("legacy.txt")),
        back.to_str().unwrap(),
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(fs::read_to_string(&back).unwrap(), "legacy bytes\n");
    let command = format!("scp -t {}", remote.file("legacy.txt").display());
    wait_for_event(&b, "exec.allowed", |e| e["command"] == command.as_str());

    // Outside the exec scope: refused like any command.
    let out = scp(
        &agent,
        true,
        local.to_str().unwrap(),
        &remote_arg(&agent, Path::new("/tmp/elsewhere.txt")),
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(!Path::new("/tmp/elsewhere.txt").exists());
    wait_for_event(&b, "exec.refused", |e| {
        e["command"] == "scp -t /tmp/elsewhere.txt"
    });
}

#[test]
fn sftp_put_get_ls_rm_are_each_recorded() {
    let remote = Remote::new();
    let b = bastion_with_sftp(&remote);
    let agent = b.granted_agent();
    let local = b.dir().join("put.txt");
    fs::write(&local, "put me\n").unwrap();
    let got = b.dir().join("got.txt");
    let batch = format!(
        "cd {up}\nput {local} f.txt\nget f.txt {got}\nls {up}\nrm {up}/f.txt\n",
        up = remote.path(),
        local = local.display(),
        got = got.display()
    );

    let out = sftp(&agent, &batch);

    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("f.txt"),
        "ls lists the file: {}",
        text(&out)
    );
    assert_eq!(fs::read_to_string(&got).unwrap(), "put me\n");
    assert!(!remote.file("f.txt").exists(), "rm removed it");
    let f = remote.file("f.txt").display().to_string();
    eventually("every sftp operation in the store", || {
        let opens = ops(&b, "open");
        let put = opens.iter().any(|e| {
            e["path"] == f.as_str() && e["flags"].as_str().unwrap_or("").contains("write")
        });
        let get = opens
            .iter()
            .any(|e| e["path"] == f.as_str() && e["flags"] == "read");
        let ls = ops(&b, "opendir")
            .iter()
            .any(|e| e["path"] == remote.path());
        let rm = ops(&b, "remove").iter().any(|e| e["path"] == f.as_str());
        if put && get && ls && rm {
            Ok(())
        } else {
            Err(format!(
                "put {put} get {get} ls {ls} rm {rm}: {:#}",
                Value::from(all_transcripts(&b))
            ))
        }
    });
}

#[test]
fn sftp_operation_outside_the_path_scope_is_refused_with_permission_denied() {
    let remote = Remote::new();
    let outside = Remote::new();
    fs::write(outside.file("secret.txt"), "secret\n").unwrap();
    let b = bastion_with_sftp(&remote);
    let agent = b.granted_agent();
    let got = b.dir().join("stolen.txt");

    // `-`: go on after a failure, so both requests are made.
    let batch = format!(
        "-get {} {}\nmkdir {}\n",
        outside.file("secret.txt").display(),
        got.display(),
        outside.file("new-dir").display()
    );
    let out = sftp(&agent, &batch);

    assert!(!out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("mkdir") && stderr.contains(": Permission denied"),
        "the SFTP status is permission denied: {}",
        text(&out)
    );
    assert!(
        !outside.file("new-dir").exists(),
        "the mkdir never reached the target"
    );
    assert!(!got.exists(), "nothing was transferred");
    let secret = outside.file("secret.txt").display().to_string();
    let (_, refused) = wait_for_event(&b, "sftp.refused", |e| e["path"] == secret.as_str());
    assert!(
        refused["reason"]
            .as_str()
            .unwrap_or("")
            .contains("outside the sftp path scope"),
        "{refused}"
    );

    // `..` is folded before matching: it cannot climb out of the scope.
    let sneaky = format!(
        "{}/../{}",
        remote.path(),
        outside.dir.path().file_name().unwrap().to_str().unwrap()
    );
    let out = sftp(&agent, &format!("rm {sneaky}/secret.txt\n"));
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        outside.file("secret.txt").exists(),
        "the file outside the scope is still there"
    );
}

#[test]
fn sftp_without_a_role_granting_it_is_refused() {
    let b = Bastion::start(Setup::standard());
    let out = sftp(&b.granted_agent(), "ls /\n");

    assert!(!out.status.success(), "{}", text(&out));
    wait_for_event(&b, "request.refused", |e| {
        e["request"] == "subsystem sftp"
            && e["reason"]
                .as_str()
                .unwrap_or("")
                .contains("sftp is not allowed")
    });
}
