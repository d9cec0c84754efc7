//! One grant-state rule, two stores: the same sequence of revocations,
//! suspensions, reinstatements and single-use admissions, run against the
//! SQLite store and against a real PostgreSQL (`[cluster]`), must give the
//! same answers; and revocations made at once from several connections are
//! numbered without gaps, in the order a watcher reads them. The request
//! book (grant requests, held commands, their expiry and rate limit) is
//! run the same way through `Book` on each backend.
mod common;

use std::sync::Arc;
use std::time::Duration;

use portcullis::audit::{Abort, DirectWriter, Event, NewSession, Store};
use portcullis::book::{Book, BookError, HeldRun, Throttled};
use portcullis::cluster::Cluster;
use portcullis::config::{ClusterSettings, Limits, Rate};
use portcullis::grants::db::NewHold;
use portcullis::grants::{
    db, CertFacts, CertState, GrantError, GrantScope, GrantsReader, Issued, NewRequest,
    RevokeSelector,
};

use common::Postgres;

/// What the scenario asks of a store.
trait GrantState {
    fn revoke(&mut self, selector: RevokeSelector) -> Result<i64, String>;
    fn reinstate(&mut self, identity: &str) -> Result<(), String>;
    /// Checks the cert and, when single use, claims it.
    fn admit(&mut self, cert: &CertFacts, single_use: bool) -> Result<(), CertState>;
    fn revocation_ids(&mut self) -> Vec<i64>;
}

fn cert(serial: u64, identity: &str, task: &str, fingerprint: &str) -> CertFacts {
    CertFacts {
        ca_fingerprint: "SHA256:ca".into(),
        serial,
        key_id: identity.into(),
        task: Some(task.into()),
        valid_after: 1_000,
        fingerprint: fingerprint.into(),
        key_fingerprint: format!("{fingerprint}-key"),
        issued_at_us: None,
    }
}

/// Every answer of the scenario, as text, in order.
fn scenario(store: &mut dyn GrantState) -> Vec<String> {
    let mut seen = Vec::new();
    let mut note = |what: &str, answer: String| seen.push(format!("{what}: {answer}"));
    let single = cert(7, "agent-1", "T-1", "SHA256:single");
    note("first use", format!("{:?}", store.admit(&single, true)));
    note("second use", format!("{:?}", store.admit(&single, true)));
    let other = cert(8, "agent-1", "T-2", "SHA256:other");
    note("plain", format!("{:?}", store.admit(&other, false)));
    note(
        "serial 0",
        format!("{:?}", store.revoke(RevokeSelector::Serial(0))),
    );
    note(
        "revoke 8",
        format!("{:?}", store.revoke(RevokeSelector::Serial(8))),
    );
    note("after serial", format!("{:?}", store.admit(&other, false)));
    let task = cert(9, "agent-2", "T-3", "SHA256:task");
    note(
        "revoke task",
        format!("{:?}", store.revoke(RevokeSelector::Task("T-3".into()))),
    );
    note("after task", format!("{:?}", store.admit(&task, false)));
    let by_key = cert(10, "agent-3", "T-4", "SHA256:key");
    let key = RevokeSelector::Fingerprint("SHA256:key-key".into());
    note("revoke key", format!("{:?}", store.revoke(key)));
    note("after key", format!("{:?}", store.admit(&by_key, false)));
    note(
        "revoke identity",
        format!(
            "{:?}",
            store.revoke(RevokeSelector::Identity("agent-4".into()))
        ),
    );
    // Issued after the revocation: not covered by it, but suspended.
    let mut later = cert(11, "agent-4", "T-5", "SHA256:later");
    later.valid_after = u64::MAX / 2_000_000;
    note("suspended", format!("{:?}", store.admit(&later, false)));
    note("reinstate", format!("{:?}", store.reinstate("agent-4")));
    note(
        "reinstate again",
        format!("{:?}", store.reinstate("agent-4")),
    );
    note(
        "after reinstate",
        format!("{:?}", store.admit(&later, false)),
    );
    note("ids", format!("{:?}", store.revocation_ids()));
    seen
}

struct Sqlite {
    writer: DirectWriter,
    _store: Store,
    _dir: tempfile::TempDir,
}

impl GrantState for Sqlite {
    fn revoke(&mut self, selector: RevokeSelector) -> Result<i64, String> {
        let done = self
            .writer
            .transact(|txn| db::revoke(txn, &selector, "test", None));
        done.map_err(|e| e.to_string())
    }

    fn reinstate(&mut self, identity: &str) -> Result<(), String> {
        let done = self
            .writer
            .transact(|txn| db::reinstate(txn, identity, "test"));
        done.map_err(|e| e.to_string())
    }

    fn admit(&mut self, cert: &CertFacts, single_use: bool) -> Result<(), CertState> {
        let done = self.writer.transact(|txn| {
            if let Err(state) = db::cert_state(txn.conn(), cert, single_use).map_err(Abort::from)? {
                return Err(Abort::Refused(state));
            }
            if single_use {
                let id = txn.begin_session(&session_of(cert))?;
                db::claim(txn, cert, id).map_err(Abort::from)?;
            }
            Ok(())
        });
        match done {
            Ok(()) => Ok(()),
            Err(Abort::Refused(state)) => Err(state),
            Err(Abort::Failed(e)) => panic!("the SQLite store failed: {e}"),
        }
    }

    fn revocation_ids(&mut self) -> Vec<i64> {
        let all = db::revocations_after(self.writer.conn(), 0).expect("read revocations");
        all.into_iter().map(|r| r.id).collect()
    }
}

fn session_of(cert: &CertFacts) -> NewSession {
    NewSession {
        identity: cert.key_id.clone(),
        key_id: cert.key_id.clone(),
        task: cert.task.clone(),
        cert_serial: cert.serial,
        ca_fingerprint: cert.ca_fingerprint.clone(),
        cert_fingerprint: Some(cert.fingerprint.clone()),
        role: None,
        client_addr: "127.0.0.1:1".into(),
        target: "web1".into(),
        login: "web1".into(),
    }
}

struct Postgresql {
    cluster: Cluster,
    runtime: tokio::runtime::Runtime,
}

impl Postgresql {
    fn on(pg: &Postgres, replica: &str) -> Postgresql {
        let settings = ClusterSettings {
            database: pg.url(),
            replica: replica.into(),
            dead_after: std::time::Duration::from_secs(10),
            ca_file: None,
        };
        Postgresql {
            cluster: Cluster::new(&settings).expect("cluster settings"),
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime"),
        }
    }
}

impl GrantState for Postgresql {
    fn revoke(&mut self, selector: RevokeSelector) -> Result<i64, String> {
        let done = self
            .runtime
            .block_on(self.cluster.revoke(&selector, "test", None));
        done.expect("the database answers")
            .map_err(|e: GrantError| e.to_string())
    }

    fn reinstate(&mut self, identity: &str) -> Result<(), String> {
        let done = self
            .runtime
            .block_on(self.cluster.reinstate(identity, "test"));
        done.expect("the database answers")
            .map_err(|e| e.to_string())
    }

    fn admit(&mut self, cert: &CertFacts, single_use: bool) -> Result<(), CertState> {
        let done = self.runtime.block_on(self.cluster.admit(cert, single_use));
        done.expect("the database answers").map(|_| ())
    }

    fn revocation_ids(&mut self) -> Vec<i64> {
        let all = self.runtime.block_on(self.cluster.revocations_after(0));
        all.expect("the database answers")
            .into_iter()
            .map(|r| r.id)
            .collect()
    }
}

#[test]
fn sqlite_and_postgresql_answer_the_grant_state_alike() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("portcullis.db");
    let store = Store::open(&path).expect("the store");
    let mut sqlite = Sqlite {
        writer: DirectWriter::open(&path).expect("a writer"),
        _store: store,
        _dir: dir,
    };
    let pg = Postgres::start();
    let mut postgresql = Postgresql::on(&pg, "a");
    let on_sqlite = scenario(&mut sqlite);
    let on_postgresql = scenario(&mut postgresql);
    assert_eq!(on_sqlite, on_postgresql);
    let expected_refusals = [
        ("second use", "Spent"),
        ("serial 0", "serial 0"),
        ("after serial", "Revoked"),
        ("after task", "Revoked"),
        ("after key", "Revoked"),
        ("suspended", "Suspended"),
        ("reinstate again", "not suspended"),
    ];
    assert_says(&on_sqlite, &expected_refusals);
    for what in ["first use", "plain", "after reinstate"] {
        assert!(
            on_sqlite.contains(&format!("{what}: Ok(())")),
            "{what}: {on_sqlite:#?}"
        );
    }
}

#[test]
fn revocations_made_at_once_are_numbered_without_gaps() {
    let pg = Postgres::start();
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let handles: Vec<Cluster> = (0..4)
        .map(|i| {
            let settings = ClusterSettings {
                database: pg.url(),
                replica: format!("r{i}"),
                dead_after: std::time::Duration::from_secs(10),
                ca_file: None,
            };
            Cluster::new(&settings).expect("cluster settings")
        })
        .collect();
    let ids: Vec<i64> = runtime.block_on(async {
        let revokes = handles.iter().enumerate().flat_map(|(i, cluster)| {
            (0..10).map(move |n| async move {
                let selector = RevokeSelector::Task(format!("T-{i}-{n}"));
                cluster.revoke(&selector, "test", None).await
            })
        });
        let done = futures_util::future::join_all(revokes).await;
        done.into_iter()
            .map(|r| r.expect("the database answers").expect("revoked"))
            .collect()
    });
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        (1..=40).collect::<Vec<i64>>(),
        "one id each, no gaps"
    );
    let read = runtime
        .block_on(handles[0].revocations_after(0))
        .expect("the database answers");
    let read: Vec<i64> = read.into_iter().map(|r| r.id).collect();
    assert_eq!(read, sorted);
    let chain = runtime
        .block_on(handles[1].verify_chain())
        .expect("the database answers");
    assert_eq!((chain.events, chain.broken), (40, None));
}

/// An operator's decision of a request (its answer as text).
type Decide = Box<dyn Fn(i64, bool) -> String>;
/// An operator's revocation of an identity.
type Revoke = Box<dyn Fn(&str)>;

/// The request book of one backend, and what the scenario needs beside
/// it: the operator's decision and revocation, as each backend takes them.
struct Booked {
    book: Book,
    store: Store,
    decide: Decide,
    revoke: Revoke,
    _dir: tempfile::TempDir,
}

impl Booked {
    /// The book on a fresh store, and on `cluster` when given.
    fn open(runtime: &tokio::runtime::Runtime, cluster: Option<Arc<Cluster>>) -> Booked {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("portcullis.db");
        let store = runtime
            .block_on(async { Store::open(&path) })
            .expect("the store");
        let reader = GrantsReader::open(&path).expect("a reader");
        let limits = Limits {
            grant_requests: Rate {
                burst: 2,
                every: Duration::from_secs(3600),
            },
            ..Limits::default()
        };
        let book = Book::new(store.clone(), reader, cluster.clone(), &limits);
        let expiry = Duration::from_secs(60);
        let (decide, revoke): (Decide, Revoke) = match cluster {
            Some(cluster) => {
                let handle = runtime.handle().clone();
                let (c, h) = (cluster.clone(), handle.clone());
                let decide = move |id, approve| {
                    let done = h.block_on(c.decide(id, approve, "op", None, expiry));
                    format!(
                        "{:?}",
                        done.expect("the database answers")
                            .map_err(|e| e.to_string())
                    )
                };
                let revoke = move |identity: &str| {
                    let selector = RevokeSelector::Identity(identity.into());
                    let done = handle.block_on(cluster.revoke(&selector, "op", None));
                    done.expect("the database answers").expect("revoked");
                };
                (Box::new(decide), Box::new(revoke))
            }
            None => {
                let writer = std::sync::Mutex::new(DirectWriter::open(&path).expect("a writer"));
                let writer = Arc::new(writer);
                let w = writer.clone();
                let decide = move |id, approve| {
                    let mut w = w.lock().expect("the writer");
                    let done = w.transact(|txn| db::decide(txn, id, approve, "op", None, expiry));
                    format!("{:?}", done.map_err(|e| e.to_string()))
                };
                let revoke = move |identity: &str| {
                    let selector = RevokeSelector::Identity(identity.into());
                    let mut w = writer.lock().expect("the writer");
                    w.transact(|txn| db::revoke(txn, &selector, "op", None))
                        .expect("revoked");
                };
                (Box::new(decide), Box::new(revoke))
            }
        };
        Booked {
            book,
            store,
            decide,
            revoke,
            _dir: dir,
        }
    }
}

fn new_request(identity: &str) -> NewRequest {
    NewRequest {
        identity: identity.into(),
        role: "ops".into(),
        task: Some("T-1".into()),
        reason: None,
        scope: GrantScope {
            targets: vec!["web1".into()],
            exec: vec!["uptime".into()],
            open: Vec::new(),
            listen: Vec::new(),
            sftp: Vec::new(),
            capture: false,
            pty: false,
            ttl_secs: 300,
        },
        pubkey: "ssh-ed25519 AAAA task".into(),
    }
}

/// Every answer of the request book's scenario, as text, in order.
fn book_scenario(runtime: &tokio::runtime::Runtime, b: &Booked) -> Vec<String> {
    let mut seen = Vec::new();
    let mut note = |what: &str, answer: String| seen.push(format!("{what}: {answer}"));
    let book = &b.book;
    let said = |r: Result<_, BookError>| format!("{:?}", r.map_err(|e| e.to_string()));
    let status = |id| {
        let held = runtime.block_on(book.hold(id)).expect("read the hold");
        held.map(|h| h.status.to_string())
    };

    let id = runtime
        .block_on(book.create_request(new_request("agent-1"), "c".into()))
        .expect("a request");
    note("request", id.to_string());
    note("approve", (b.decide)(id, true));
    note("deny after", (b.decide)(id, false));
    note("unknown", (b.decide)(999, true));
    let record = runtime
        .block_on(book.request(id))
        .expect("read the request");
    note("status", format!("{:?}", record.map(|r| r.status)));

    let session = runtime
        .block_on(
            b.store
                .begin_session(session_of(&cert(1, "agent-1", "T-1", "SHA256:c"))),
        )
        .expect("a session");
    let hold = |command: &str, expires_at_us: i64| NewHold {
        session,
        channel: Some(0),
        identity: "agent-1".into(),
        role: Some("ops".into()),
        task: Some("T-1".into()),
        target: "web1".into(),
        cert_fingerprint: "SHA256:c".into(),
        command: command.into(),
        expires_at_us,
    };
    let later = portcullis::clock::now_us() + 60_000_000;
    let held = runtime
        .block_on(book.create_hold(hold("printf x", later)))
        .expect("a hold");
    note("held", held.to_string());
    let retry =
        runtime.block_on(book.hold_for_retry("SHA256:c".into(), "web1".into(), "printf x".into()));
    note(
        "retry finds",
        format!("{:?}", retry.expect("read").map(|h| h.id)),
    );
    let run = |fingerprint: &str| HeldRun {
        id: held,
        cert_fingerprint: fingerprint.into(),
        target: "web1".into(),
        command: "printf x".into(),
        session,
        channel: 0,
    };
    let allowed = || Event::ExecRefused {
        command: "printf x".into(),
        reason: "stands in for exec.allowed".into(),
    };
    note(
        "run pending",
        said(runtime.block_on(book.run_approved(run("SHA256:c"), allowed()))),
    );
    note("approve hold", (b.decide)(held, true));
    note(
        "run other cert",
        said(runtime.block_on(book.run_approved(run("SHA256:d"), allowed()))),
    );
    note(
        "run",
        said(runtime.block_on(book.run_approved(run("SHA256:c"), allowed()))),
    );
    note(
        "run again",
        said(runtime.block_on(book.run_approved(run("SHA256:c"), allowed()))),
    );
    note("after run", format!("{:?}", status(held)));

    let stale = runtime
        .block_on(book.create_hold(hold("printf y", 1)))
        .expect("a hold");
    let pending = runtime
        .block_on(book.create_request(new_request("agent-1"), "c".into()))
        .expect("a request");
    note(
        "expired",
        format!(
            "{:?}",
            runtime
                .block_on(book.expire(Duration::ZERO))
                .map_err(|e| e.to_string())
        ),
    );
    note("stale", format!("{:?}", status(stale)));
    note("decide stale", (b.decide)(stale, true));
    note("decide expired request", (b.decide)(pending, true));

    for n in 0..3 {
        note(
            &format!("token {n}"),
            // Whole minutes: the two waits differ by the time between.
            match runtime.block_on(book.requests.take("agent-9")) {
                Ok(()) => "Ok(())".to_owned(),
                Err(Throttled::Wait(wait)) => format!("Wait({}min)", wait.as_secs() / 60),
                Err(other) => format!("{other:?}"),
            },
        );
    }
    (b.revoke)("agent-2");
    let refused = runtime.block_on(book.create_request(new_request("agent-2"), "c".into()));
    note("suspended", said(refused.map(|_| ())));
    seen
}

#[test]
fn the_request_book_answers_alike_on_sqlite_and_postgresql() {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let pg = Postgres::start();
    let cluster = Postgresql::on(&pg, "a").cluster;
    let local = Booked::open(&runtime, None);
    let shared = Booked::open(&runtime, Some(Arc::new(cluster)));
    let on_sqlite = book_scenario(&runtime, &local);
    let on_postgresql = book_scenario(&runtime, &shared);
    assert_eq!(on_sqlite, on_postgresql);
    let expected = [
        ("approve", "Ok(())"),
        ("deny after", "approved"),
        ("unknown", "no request 999"),
        ("run pending", "pending"),
        ("run other cert", "approved"),
        ("run", "Ok(())"),
        ("run again", "ran"),
        ("after run", "ran"),
        ("expired", "Ok(2)"),
        ("stale", "expired"),
        ("decide stale", "expired"),
        ("decide expired request", "expired"),
        ("token 1", "Ok(())"),
        ("token 2", "Wait"),
        ("suspended", "suspended"),
    ];
    assert_says(&on_sqlite, &expected);
}

/// Each `(what, says)`: the answer noted as `what` contains `says`.
fn assert_says(answers: &[String], expected: &[(&str, &str)]) {
    for (what, says) in expected {
        let line = answers.iter().find(|l| l.starts_with(&format!("{what}:")));
        assert!(
            line.is_some_and(|l| l.contains(says)),
            "{what}: {answers:#?}"
        );
    }
}

#[test]
fn a_replica_that_did_not_sign_a_cert_judges_it_by_when_it_was_issued() {
    let pg = Postgres::start();
    let mut verifier = Postgresql::on(&pg, "b");
    verifier
        .revoke(RevokeSelector::Task("T-9".into()))
        .expect("revoked");
    // Valid from long before the revocation, but issued after it by the
    // signing node, which put it on record in the cluster.
    let after = cert(12, "agent-5", "T-9", "SHA256:after");
    let issued = Issued {
        serial: 12,
        fingerprint: after.fingerprint.clone(),
        valid_before: 4_000_000_000,
        cert: "ssh-ed25519-cert-v01@openssh.com AAAA".into(),
    };
    let recorded = verifier
        .runtime
        .block_on(verifier.cluster.record_grant("agent-5", &issued));
    recorded.expect("the database answers");
    assert_eq!(verifier.admit(&after, false), Ok(()));
    // Not on record: only its validity says, and that is covered.
    let unknown = cert(13, "agent-5", "T-9", "SHA256:unknown");
    assert!(
        matches!(
            verifier.admit(&unknown, false),
            Err(CertState::Revoked { .. })
        ),
        "covered by the task revocation"
    );
}
