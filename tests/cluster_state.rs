//! One grant-state rule, two stores: the same sequence of revocations,
//! suspensions, reinstatements and single-use admissions, run against the
//! SQLite store and against a real PostgreSQL (`[cluster]`), must give the
//! same answers; and revocations made at once from several connections are
//! numbered without gaps, in the order a watcher reads them.
mod common;

use portcullis::audit::{Abort, DirectWriter, NewSession, Store};
use portcullis::cluster::Cluster;
use portcullis::config::ClusterSettings;
use portcullis::grants::{db, CertFacts, CertState, GrantError, RevokeSelector};

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
    for (what, says) in expected_refusals {
        let line = on_sqlite
            .iter()
            .find(|l| l.starts_with(&format!("{what}:")));
        assert!(
            line.is_some_and(|l| l.contains(says)),
            "{what}: {on_sqlite:#?}"
        );
    }
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
