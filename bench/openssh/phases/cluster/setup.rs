//! The cluster phase's bastions: a throwaway PostgreSQL in the lab, two
//! replicas on it and one more SQLite-only bastion, all sharing the lab's
//! host keys, CAs and policy, all behind one HAProxy.
//!
//! Why a second SQLite bastion: with `trusted_proxies` a bastion requires
//! the PROXY header, so the replicas can only be reached through the
//! balancer; the SQLite side of every ratio goes through the same HAProxy.

use std::fs;
use std::path::{Path, PathBuf};

use crate::balancer::{Balancer, Front};
use crate::lab::{key_line, read, Lab, TARGET};
use crate::postgres::Postgres;
use crate::procs::Daemon;

/// A bastion started for this phase: where its files are, and the process.
pub struct Bastion {
    pub dir: PathBuf,
    _daemon: Daemon,
}

impl Bastion {
    pub fn store(&self) -> PathBuf {
        self.dir.join("portcullis.db")
    }
}

/// The client's names for the bastions (host aliases in `ssh_config`).
pub const SQLITE_DIRECT: &str = "sqlite-direct";
pub const SQLITE: &str = "sqlite";
pub const REPLICA_A: &str = "pg-a";
pub const SPREAD: &str = "pg-spread";

pub struct ClusterLab {
    // Dropped in this order: the balancer, the bastions, then the database.
    _balancer: Balancer,
    pub sqlite: Bastion,
    pub a: Bastion,
    pub b: Bastion,
    pub pg: Postgres,
    pub ssh_config: PathBuf,
}

impl ClusterLab {
    pub fn start(lab: &Lab) -> Result<ClusterLab, String> {
        let pg = Postgres::start(&lab.dir().join("postgres"))?;
        let root = lab.dir().join("cluster");
        let base = with_trusted_proxy(&read(lab.config_path())?)?;
        let cluster = |replica: &str| {
            format!(
                "{base}\n[cluster]\ndatabase = \"{}\"\nreplica = \"{replica}\"\ndead_after = \"10s\"\n",
                pg.url()
            )
        };
        let (sqlite, sqlite_port) = bastion(lab, &root.join("sqlite"), &base)?;
        let (a, a_port) = bastion(lab, &root.join("a"), &cluster("a"))?;
        let (b, b_port) = bastion(lab, &root.join("b"), &cluster("b"))?;
        let balancer = Balancer::start(
            &root,
            &[
                Front {
                    name: SQLITE,
                    backends: vec![sqlite_port],
                },
                Front {
                    name: REPLICA_A,
                    backends: vec![a_port],
                },
                Front {
                    name: SPREAD,
                    backends: vec![a_port, b_port],
                },
            ],
        )?;
        let ssh_config = root.join("ssh_config");
        let hosts = [
            (SQLITE_DIRECT, lab.bastion_port()),
            (SQLITE, balancer.ports[0]),
            (REPLICA_A, balancer.ports[1]),
            (SPREAD, balancer.ports[2]),
        ];
        write_client_config(lab, &root, &ssh_config, &hosts)?;
        Ok(ClusterLab {
            _balancer: balancer,
            sqlite,
            a,
            b,
            pg,
            ssh_config,
        })
    }
}

/// The lab's config, trusting the balancer's PROXY headers (top-level
/// settings go before the first section: after `store`).
fn with_trusted_proxy(config: &str) -> Result<String, String> {
    let store = "store = \"portcullis.db\"\n";
    if !config.contains(store) {
        return Err("the lab's portcullis.toml has no `store = \"portcullis.db\"` line".into());
    }
    Ok(config.replacen(
        store,
        &format!("{store}trusted_proxies = [\"127.0.0.1/32\"]\n"),
        1,
    ))
}

/// A bastion in `dir` on `config`, with the lab's host keys, CAs and
/// policy linked in (the replicas of one cluster share them) and a store
/// of its own.
fn bastion(lab: &Lab, dir: &Path, config: &str) -> Result<(Bastion, u16), String> {
    fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    for shared in ["hostkeys", "ca", "policy"] {
        std::os::unix::fs::symlink(lab.dir().join(shared), dir.join(shared))
            .map_err(|e| format!("link {shared} into {}: {e}", dir.display()))?;
    }
    let path = dir.join("portcullis.toml");
    fs::write(&path, config).map_err(|e| format!("write {}: {e}", path.display()))?;
    let (daemon, port) = lab.start_serve(&path, &dir.join("serve.log"))?;
    Ok((
        Bastion {
            dir: dir.to_path_buf(),
            _daemon: daemon,
        },
        port,
    ))
}

/// An ssh client config with one alias per bastion; every bastion has the
/// lab's host key, so one known_hosts line (by `HostKeyAlias`) serves all.
fn write_client_config(
    lab: &Lab,
    root: &Path,
    path: &Path,
    hosts: &[(&str, u16)],
) -> Result<(), String> {
    let host_key = read(&lab.dir().join("hostkeys/ssh_host_ed25519_key.pub"))?;
    let known_hosts = root.join("known_hosts");
    fs::write(
        &known_hosts,
        format!("portcullis {}\n", key_line(&host_key)),
    )
    .map_err(|e| format!("write {}: {e}", known_hosts.display()))?;
    let agent = lab.agent_key();
    let mut text = String::new();
    for (alias, port) in hosts {
        text.push_str(&format!(
            "Host {alias}\n  HostName 127.0.0.1\n  Port {port}\n\n"
        ));
    }
    text.push_str(&format!(
        "Host *\n  User {TARGET}\n  HostKeyAlias portcullis\n  IdentityFile {agent}\n\
         \x20 CertificateFile {agent}-cert.pub\n  IdentitiesOnly yes\n  IdentityAgent none\n\
         \x20 UserKnownHostsFile {known}\n  GlobalKnownHostsFile /dev/null\n\
         \x20 StrictHostKeyChecking yes\n  BatchMode yes\n  LogLevel ERROR\n\
         \x20 ConnectTimeout 30\n  ControlMaster no\n  ControlPath none\n",
        agent = agent.display(),
        known = known_hosts.display(),
    ));
    fs::write(path, text).map_err(|e| format!("write {}: {e}", path.display()))
}
