//! Transcripts past one machine: each replica seals its ended sessions
//! into a real S3-compatible bucket (moto's server), with the seal chained
//! in the shared PostgreSQL, so a session recorded on one replica is
//! shown, replayed, exported and verified from another; a replica killed
//! mid-session ships what it had committed once it is back, exactly once;
//! an object changed in the bucket is refused.
mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::*;

fn ended_on(rig: &Rig, replica: &str, id: i64) -> serde_json::Value {
    eventually(
        &format!("session {replica}/{id} ended in the index"),
        || {
            let all = cluster_sessions(&rig.a);
            all.iter()
                .find(|s| s["replica"] == replica && s["id"] == id && !s["ended_at"].is_null())
                .cloned()
                .ok_or_else(|| format!("{all:#?}"))
        },
    )
}

/// Waits until `from` can read `replica`'s session `id` from the archive.
fn archived_show(from: &Bastion, replica: &str, id: i64) -> serde_json::Value {
    eventually(&format!("session {replica}/{id} in the archive"), || {
        let out = from.cli("show", &[&id.to_string(), "--replica", replica, "--json"]);
        match out.status.success() {
            true => serde_json::from_slice(&out.stdout).map_err(|e| e.to_string()),
            false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
        }
    })
}

#[test]
fn a_session_recorded_on_one_replica_is_read_from_another_and_a_changed_object_is_refused() {
    let rig = Rig::with_archive(Setup::standard());
    let agent = rig.a.granted_agent();
    let cert = agent.cert.clone().expect("a cert");
    let out = ssh_via(
        rig.lb.to[0],
        &agent.key.private,
        &cert,
        "echo recorded-on-a",
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "recorded-on-a\n",
        "{out:?}"
    );
    let id = cluster_sessions(&rig.a)[0]["id"].as_i64().expect("an id");
    ended_on(&rig, "a", id);
    let shown = archived_show(&rig.b, "a", id);
    assert_eq!(shown, show_json(&rig.a, id), "b shows what a recorded");

    let id_text = id.to_string();
    let local = rig
        .a
        .cli_ok("export", &[&id_text, "--format", "json"])
        .stdout;
    let remote = rig
        .b
        .cli_ok("export", &[&id_text, "--format", "json", "--replica", "a"])
        .stdout;
    assert_eq!(
        local, remote,
        "the export is the same bytes from either replica"
    );
    let cast = rig
        .b
        .cli_ok(
            "export",
            &[&id_text, "--format", "asciicast", "--replica", "a"],
        )
        .stdout;
    assert!(String::from_utf8_lossy(&cast).starts_with("{\"version\":2"));
    let replayed = rig
        .b
        .cli_ok("replay", &[&id_text, "--replica", "a", "--speed", "1000"]);
    assert!(
        String::from_utf8_lossy(&replayed.stdout).contains("recorded-on-a"),
        "{replayed:?}"
    );

    let verified = rig.b.cli_ok("verify", &[&id_text, "--replica", "a"]);
    let text = String::from_utf8_lossy(&verified.stdout);
    assert!(
        text.contains("matches its seal") && text.contains("intact"),
        "{text}"
    );

    // The bucket is not trusted: a changed object no longer matches its seal.
    let s3 = rig.s3.as_ref().expect("the archive");
    let key = format!("cluster/sessions/a/{id}.json");
    let original = s3.get(&key);
    let forged = String::from_utf8_lossy(&original).replace("recorded-on-a", "recorded-on-X");
    s3.overwrite(&key, forged.as_bytes());
    let refused = rig.b.cli("verify", &[&id_text, "--replica", "a"]);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    assert!(String::from_utf8_lossy(&refused.stdout).contains("does not match its seal"));
    let refused = rig.b.cli("show", &[&id_text, "--replica", "a"]);
    assert!(!refused.status.success());
    assert!(
        refused.stdout.is_empty(),
        "nothing of a forged object is shown"
    );
    // One of another size is refused before its bytes are read.
    let mut longer = original.clone();
    longer.extend_from_slice(&vec![b' '; 1 << 20]);
    s3.overwrite(&key, &longer);
    let refused = rig.b.cli("show", &[&id_text, "--replica", "a"]);
    assert!(refused.stdout.is_empty());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("its seal says"), "{said}");
}

#[test]
fn a_replica_killed_mid_session_ships_what_it_committed_once_back_and_only_once() {
    let rig = Rig::with_archive(Setup::standard());
    let agent = rig.a.granted_agent();
    let mut held = Held::open(rig.lb.to[1], &agent);
    let session = rig.open_on("b");
    let id = session["id"].as_i64().expect("an id");
    let mut stdin = held.child.stdin.take().expect("stdin");
    stdin.write_all(b"committed-before-kill\n").expect("write");
    stdin.flush().expect("flush");
    // cat echoes it back only after the bastion recorded it (write-ahead).
    let mut stdout = held.child.stdout.take().expect("stdout");
    let mut echoed = [0u8; 22];
    stdout.read_exact(&mut echoed).expect("the echo");
    assert_eq!(&echoed, b"committed-before-kill\n");
    // Stream bytes are committed in batches: kill once they are in.
    eventually("the bytes committed on b", || {
        let text = show_json(&rig.b, id).to_string();
        text.contains("committed-before-kill")
            .then_some(())
            .ok_or(text)
    });

    rig.b.kill9();
    let marked = ended_on(&rig, "b", id);
    assert_eq!(
        marked["end_reason"],
        "interrupted: replica b stopped answering"
    );
    // Back on its own store: it finds the session it left open and ships it.
    rig.b.restart();
    let shown = archived_show(&rig.a, "b", id);
    let text = shown.to_string();
    assert!(text.contains("committed-before-kill"), "{shown:#}");
    let verified = rig.a.cli_ok("verify", &[&id.to_string(), "--replica", "b"]);
    assert!(String::from_utf8_lossy(&verified.stdout).contains("matches its seal"));

    // Restarted again, it ships nothing twice.
    rig.b.restart();
    std::thread::sleep(Duration::from_secs(3));
    let pg = &rig.pg;
    assert_eq!(
        pg.psql("SELECT count(*) FROM archived WHERE replica = 'b'"),
        "1"
    );
    assert_eq!(
        pg.psql("SELECT count(*) FROM events WHERE kind = 'archive.sealed'"),
        pg.psql("SELECT count(*) FROM archived")
    );
    let keys = rig.s3.as_ref().expect("the archive").keys();
    assert_eq!(
        keys.iter().filter(|k| k.contains("/sessions/b/")).count(),
        1,
        "{keys:?}"
    );
}

#[test]
fn sessions_ending_out_of_order_are_all_archived() {
    let rig = Rig::with_archive(Setup::standard());
    let agent = rig.a.granted_agent();
    let cert = agent.cert.clone().expect("a cert");
    // The first session stays open while later ones end and are shipped.
    let mut long = Held::open(rig.lb.to[0], &agent);
    rig.open_on("a");
    for i in 0..3 {
        let out = ssh_via(
            rig.lb.to[0],
            &agent.key.private,
            &cert,
            &format!("echo short-{i}"),
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("short-{i}\n"));
    }
    let sealed = |n: &str| {
        eventually(&format!("{n} sessions sealed"), || {
            let count = rig
                .pg
                .psql("SELECT count(*) FROM archived WHERE replica = 'a'");
            (count == n).then_some(()).ok_or(count)
        })
    };
    sealed("3");
    long.child.stdin.take();
    assert!(long.ended_within(Duration::from_secs(5)).is_some());
    sealed("4");
}
