//! Past one machine: replicas sharing their control state in a real
//! PostgreSQL (a throwaway cluster per test), a real HAProxy in front
//! sending PROXY v2, real ssh clients through it.
//!
//! What is shown: sessions spread over replicas are listed together;
//! a revocation in the database ends a session on another replica within a
//! second; a single-use cert used through two replicas at once admits
//! exactly one, 200 times over; a replica killed mid-session has its
//! session marked interrupted by the others; with the database lost, new
//! sessions are refused (one line, on record) until it is back.
mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

#[test]
fn sessions_spread_over_replicas_all_appear_in_one_listing() {
    let c = Rig::start(Setup::standard());
    let agent = c.a.granted_agent();
    let cert = agent.cert.clone().expect("a cert");
    for i in 0..4 {
        let out = ssh_via(
            c.lb.spread,
            &agent.key.private,
            &cert,
            &format!("echo spread-{i}"),
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("spread-{i}\n"),
            "{out:?}\n{}\n{}",
            c.a.log(),
            c.b.log()
        );
    }
    for listing_from in [&c.a, &c.b] {
        let all = eventually("four ended sessions in the index", || {
            let all = cluster_sessions(listing_from);
            let ended = all.iter().filter(|s| !s["ended_at"].is_null()).count();
            (ended == 4)
                .then_some(all.clone())
                .ok_or(format!("{all:#?}"))
        });
        let replicas: BTreeSet<&str> = all.iter().filter_map(|s| s["replica"].as_str()).collect();
        assert_eq!(
            replicas,
            BTreeSet::from(["a", "b"]),
            "round robin: {all:#?}"
        );
        for s in &all {
            assert!(
                s["client_addr"]
                    .as_str()
                    .is_some_and(|a| a.starts_with("[::1]:")),
                "PROXY v2: {s}"
            );
            assert_eq!(s["identity"], AGENT);
            assert_eq!(s["end_reason"], "client disconnected", "{s}");
        }
    }
    // Each replica keeps its own sessions in its own store.
    let local_a = c.a.cli_ok("events", &["--json"]);
    assert!(String::from_utf8_lossy(&local_a.stdout).contains("spread-"));
    let text = String::from_utf8_lossy(&c.a.cli_ok("sessions", &[]).stdout).to_string();
    assert!(text.starts_with("REPLICA"), "{text}");
}

#[test]
fn a_revocation_in_the_database_ends_a_session_on_another_replica_within_a_second() {
    let c = Rig::start(Setup::standard());
    let agent = c.a.granted_agent();
    let mut held = Held::open(c.lb.to[1], &agent);
    let session = c.open_on("b");
    // Revoked through replica a's config: the database is what they share.
    let revoked = Instant::now();
    c.a.cli_ok("revoke", &["--task", "T-1"]);
    let committed = revoked.elapsed();
    let ended = held
        .ended_within(Duration::from_secs(5))
        .expect("the session on b ends");
    eprintln!(
        "revocation: committed by the CLI in {committed:?}; session on b ended {ended:?} after"
    );
    assert!(
        ended < Duration::from_secs(1),
        "ended {ended:?} after the revocation committed"
    );
    let id = session["id"].as_i64().expect("an id");
    eventually("b records the revocation it applied", || {
        let events = all_events(&c.b);
        let applied = events.iter().any(|e| {
            e["kind"] == "revocation.applied"
                && e["sessions_ended"]
                    .as_array()
                    .is_some_and(|s| s.contains(&Value::from(id)))
        });
        applied.then_some(()).ok_or(format!("{events:#?}"))
    });
    eventually("the index says why it ended", || {
        let all = cluster_sessions(&c.a);
        let s = all.iter().find(|s| s["replica"] == "b" && s["id"] == id);
        match s {
            Some(s) if s["end_reason"] == "the grant was revoked" => Ok(()),
            _ => Err(format!("{all:#?}")),
        }
    });
    // And the revoked cert is refused on every replica from now on.
    for port in &c.lb.to {
        let out = ssh_via(
            *port,
            &agent.key.private,
            agent.cert.as_ref().unwrap(),
            "echo no",
        );
        assert_eq!(out.status.code(), Some(255), "{out:?}");
        assert!(out.stdout.is_empty());
    }
    // The KRL for targets: the cluster's revocations, naming the certs the
    // signing node (a) issued.
    let krl = c.a.dir().join("cluster.krl");
    c.a.cli_ok("krl", &["-o", &krl.display().to_string()]);
    assert!(openssh_says_revoked(
        &krl,
        agent.cert.as_ref().expect("a cert")
    ));
    let verify = c.a.cli_ok("verify", &[]);
    assert!(
        String::from_utf8_lossy(&verify.stderr).contains("cluster chain: 1 events, intact"),
        "{verify:?}"
    );
}

#[test]
fn a_single_use_cert_used_through_two_replicas_at_once_admits_exactly_one() {
    let setup = Setup::standard()
        .with_role(|r| r.single_session(true))
        .limit("auth_failures_exempt", "[\"::1/128\"]");
    let c = Rig::start(setup);
    const TRIALS: usize = 200;
    // Four races at a time (each its own cert), so 200 fit in the suite.
    const AT_ONCE: usize = 4;
    let mut admitted_on = [0usize; 2];
    for round in 0..TRIALS / AT_ONCE {
        let entrants: Vec<(AgentKey, PathBuf)> = (0..AT_ONCE)
            .map(|i| {
                let key = c.a.new_key();
                let task = format!("race-{round}-{i}");
                let cert = grant(&c.a, AGENT, ROLE, "10m", &key, Some(&task));
                (key, cert)
            })
            .collect();
        let results: Vec<Vec<std::process::Output>> = std::thread::scope(|s| {
            let races: Vec<Vec<_>> = entrants
                .iter()
                .map(|(key, cert)| {
                    c.lb.to
                        .iter()
                        .map(|port| s.spawn(|| ssh_via(*port, &key.private, cert, "echo won")))
                        .collect()
                })
                .collect();
            races
                .into_iter()
                .map(|runs| {
                    runs.into_iter()
                        .map(|r| r.join().expect("ssh thread"))
                        .collect()
                })
                .collect()
        });
        for outs in results {
            let won: Vec<usize> = (0..2).filter(|i| outs[*i].stdout == b"won\n").collect();
            assert_eq!(won.len(), 1, "round {round}: {outs:?}");
            admitted_on[won[0]] += 1;
            let lost = &outs[1 - won[0]];
            assert_eq!(lost.status.code(), Some(255), "round {round}: {lost:?}");
        }
    }
    eprintln!(
        "single-use race: {TRIALS} trials, won on a {} times, on b {} times",
        admitted_on[0], admitted_on[1]
    );
    let claims =
        c.pg.psql("SELECT count(*) FROM claims WHERE local_id IS NOT NULL");
    assert_eq!(claims, TRIALS.to_string());
    let sessions = cluster_sessions(&c.a);
    assert_eq!(sessions.len(), TRIALS, "one session per cert");
}

#[test]
fn a_replica_killed_mid_session_has_its_session_marked_interrupted_by_the_others() {
    let c = Rig::start(Setup::standard());
    let agent = c.a.granted_agent();
    let _held = Held::open(c.lb.to[1], &agent);
    let session = c.open_on("b");
    c.b.kill9();
    let killed = Instant::now();
    let marked = eventually("a marks b's session interrupted", || {
        let all = cluster_sessions(&c.a);
        let s = all
            .iter()
            .find(|s| s["replica"] == "b" && s["id"] == session["id"]);
        match s.and_then(|s| s["end_reason"].as_str()) {
            Some(reason) if reason.starts_with("interrupted") => Ok(reason.to_owned()),
            _ => Err(format!("{all:#?}")),
        }
    });
    eprintln!(
        "b killed; its session marked {marked:?} after {:?}",
        killed.elapsed()
    );
    assert_eq!(marked, "interrupted: replica b stopped answering");
    // a goes on admitting.
    let out = ssh_via(
        c.lb.to[0],
        &agent.key.private,
        agent.cert.as_ref().unwrap(),
        "echo alive",
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "alive\n", "{out:?}");
}

#[test]
fn with_the_database_lost_new_sessions_are_refused_until_it_is_back() {
    let c = Rig::start(Setup::standard());
    let agent = c.a.granted_agent();
    let cert = agent.cert.clone().expect("a cert");
    let out = ssh_via(c.lb.to[0], &agent.key.private, &cert, "echo before");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "before\n", "{out:?}");
    let mut held = Held::open(c.lb.to[0], &agent);
    let open = c.open_on("a");
    c.pg.halt();
    // A live session goes on without the database, and ends on record.
    held.child.stdin.take();
    assert!(held.ended_within(Duration::from_secs(5)).is_some());
    let checked = c.a.cli("check", &[]);
    assert_eq!(checked.status.code(), Some(1), "{checked:?}");
    assert!(String::from_utf8_lossy(&checked.stdout).contains("[cluster] database:"));
    let out = ssh_via(c.lb.to[0], &agent.key.private, &cert, "echo during");
    assert_eq!(out.status.code(), Some(255), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    eventually("the refusal on a's record", || {
        let refused = refused_json(&c.a);
        let found = refused.as_array().into_iter().flatten().any(|e| {
            e["kind"] == "auth.refused"
                && e["reason"] == "the cluster database cannot be reached, so no session is opened"
        });
        found.then_some(()).ok_or(format!("{refused:#}"))
    });
    c.pg.resume();
    eventually("a admits again once the database is back", || {
        let out = ssh_via(c.lb.to[0], &agent.key.private, &cert, "echo after");
        (out.stdout == b"after\n")
            .then_some(())
            .ok_or(format!("{out:?}"))
    });
    // The end the database missed is put into the index from a's store.
    eventually("the index has the end a recorded while it was lost", || {
        let all = cluster_sessions(&c.a);
        let s = all
            .iter()
            .find(|s| s["replica"] == "a" && s["id"] == open["id"]);
        match s {
            Some(s) if s["end_reason"] == "client disconnected" => Ok(()),
            _ => Err(format!("{all:#?}")),
        }
    });
}

#[test]
fn a_replica_without_the_ca_key_admits_certs_but_issues_none() {
    let id = IdentityKey::generate();
    let c = Rig::start(Setup::standard().identity_key(AGENT, &id.line));
    let task = c.a.new_key();
    let public = std::fs::read(&task.public).expect("read the task key");
    let request = |port: u16| grant_via(port, &id, "request --role ops --ttl 5m", &public);
    // b's config names only ca/task_ca.pub: it verifies, it does not sign.
    let refused = request(c.lb.to[1]);
    assert_ne!(refused.status.code(), Some(0), "{refused:?}");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("holds no task CA key"),
        "{refused:?}"
    );
    let issued = request(c.lb.to[0]);
    assert_eq!(issued.status.code(), Some(0), "{issued:?}");
    std::fs::write(task.cert_path(), &issued.stdout).expect("write the cert");
    let out = ssh_via(
        c.lb.to[1],
        &task.private,
        &task.cert_path(),
        "echo signed-on-a",
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "signed-on-a\n",
        "{out:?}"
    );
}

#[test]
fn with_ca_file_the_replicas_speak_tls_to_the_database_and_check_its_certificate() {
    let c = Rig::over_tls(Setup::standard());
    let agent = c.a.granted_agent();
    let out = ssh_via(
        c.lb.to[1],
        &agent.key.private,
        agent.cert.as_ref().unwrap(),
        "echo over-tls",
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "over-tls\n",
        "{out:?}"
    );
    // The database takes TCP over TLS only; both replicas are connected.
    let encrypted = c.pg.psql(
        "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid)
         WHERE ssl AND application_name LIKE 'portcullis %'",
    );
    assert!(encrypted.parse::<u32>().unwrap_or(0) >= 2, "{encrypted}");
    // A CA that did not sign the server's certificate: refused, in one line.
    let config = std::fs::read_to_string(&c.a.config).expect("read the config");
    let ca = c.pg.ca_file.as_ref().expect("a CA").display().to_string();
    let wrong_ca = c.a.dir().join("wrong-ca.pem");
    run_ok(
        std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-days",
                "1",
                "-subj",
                "/CN=another CA",
                "-nodes",
            ])
            .args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
            .arg("-keyout")
            .arg(c.a.dir().join("wrong-ca.key"))
            .arg("-out")
            .arg(&wrong_ca),
        "openssl: another CA",
    );
    let other = c.a.dir().join("wrong-ca.toml");
    std::fs::write(&other, config.replace(&ca, &wrong_ca.display().to_string())).expect("write");
    let out = std::process::Command::new(bin())
        .args(["sessions", "--config"])
        .arg(&other)
        .output()
        .expect("run portcullis");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("ca_file") || said.contains("certificate"),
        "{said}"
    );
}

#[test]
fn a_second_replica_under_a_live_replicas_name_is_refused() {
    let c = Rig::start(Setup::standard());
    let (_dir, config) = c.a.replica_setup("a");
    let started = Instant::now();
    let out = std::process::Command::new(bin())
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "--config",
        ])
        .arg(&config)
        .output()
        .expect("run portcullis serve");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("replica name \"a\" is in use"), "{said}");
    // It waited out dead_after (2s) for a heartbeat that stayed fresh.
    assert!(started.elapsed() >= Duration::from_secs(2));
    // And the live one still admits.
    let agent = c.a.granted_agent();
    let out = ssh_via(
        c.lb.to[0],
        &agent.key.private,
        agent.cert.as_ref().unwrap(),
        "echo a",
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a\n", "{out:?}");
}

#[test]
fn the_written_krl_follows_revocations_and_reinstatements_made_through_another_replica() {
    let c = Rig::start(Setup::standard().ca_setting("write_krl", "\"revoked.krl\""));
    let krl = c.a.dir().join("revoked.krl");
    let old = c.a.granted_agent();
    let old_cert = old.cert.clone().expect("a cert");
    assert!(!openssh_says_revoked(&krl, &old_cert));
    c.b.cli_ok("revoke", &["--identity", AGENT]);
    eventually("a's KRL lists the suspended identity's cert", || {
        openssh_says_revoked(&krl, &old_cert)
            .then_some(())
            .ok_or_else(|| "not yet".to_owned())
    });
    c.b.cli_ok("reinstate", &[AGENT]);
    // A cert issued after the reinstatement is no longer covered: the KRL
    // drops the identity (the revoked cert stays listed).
    let new = c.a.granted_agent();
    let new_cert = new.cert.clone().expect("a cert");
    eventually("a's KRL drops the reinstated identity", || {
        (!openssh_says_revoked(&krl, &new_cert))
            .then_some(())
            .ok_or_else(|| "still listed".to_owned())
    });
    assert!(openssh_says_revoked(&krl, &old_cert));
}
