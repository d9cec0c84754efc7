//! The grant login: an identity key asking for task certificates.

use super::*;

/// An identity key made before the bastion starts (its public line goes
/// into identities.toml through [`Setup::identity_key`]).
pub struct IdentityKey {
    pub key: AgentKey,
    pub line: String,
    _dir: TempDir,
}

impl IdentityKey {
    pub fn generate() -> IdentityKey {
        let dir = tempdir();
        let key = AgentKey::generate(dir.path(), "identity");
        let line = pub_key_line(&key.public);
        IdentityKey {
            key,
            line,
            _dir: dir,
        }
    }

    /// `ssh grant@bastion COMMAND` with this identity key.
    pub fn grant_command(
        &self,
        bastion: &Bastion,
        command: &str,
        stdin: Option<&[u8]>,
    ) -> SshOutput {
        ssh_with_stdin(bastion, "grant", &self.key, None, command, stdin)
    }

    /// `ssh grant@bastion request ARGS < task.pub`; on success writes the
    /// cert beside the task key.
    pub fn request(&self, bastion: &Bastion, task_key: &AgentKey, args: &str) -> SshOutput {
        let public = fs::read(&task_key.public).expect("read task key");
        let out = self.grant_command(bastion, &format!("request {args}"), Some(&public));
        if out.code == 0 {
            fs::write(task_key.cert_path(), &out.stdout).expect("write the cert");
        }
        out
    }
}

impl Bastion {
    /// An agent using `key` and its cert (`KEY-cert.pub`) on the standard target.
    pub fn agent_with(&self, key: AgentKey) -> Agent<'_> {
        let cert = key.cert_path();
        Agent {
            bastion: self,
            key,
            cert: Some(cert),
            login: TARGET.to_string(),
            via_ssh_agent: false,
        }
    }
}

/// Runs `agent.run(command)` on another thread (for sessions that must be
/// ended from outside); join the handle for the outcome.
pub fn run_in_background<'scope>(
    scope: &'scope thread::Scope<'scope, '_>,
    agent: &Agent<'_>,
    command: &str,
) -> thread::ScopedJoinHandle<'scope, (SshOutput, Instant)> {
    let call = AgentCall::of(agent, command);
    scope.spawn(move || {
        let out = call.run();
        (out, Instant::now())
    })
}

/// What [`run_in_background`] needs from an agent, owned.
struct AgentCall {
    port: u16,
    host_key: String,
    login: String,
    key: PathBuf,
    cert: Option<PathBuf>,
    command: String,
}

impl AgentCall {
    fn of(agent: &Agent<'_>, command: &str) -> AgentCall {
        AgentCall {
            port: agent.bastion.port,
            host_key: agent.bastion.host_key(),
            login: agent.login.clone(),
            key: agent.key.private.clone(),
            cert: agent.cert.clone(),
            command: command.to_string(),
        }
    }

    fn run(&self) -> SshOutput {
        SshCall {
            port: self.port,
            host_key: &self.host_key,
            login: &self.login,
            key: &self.key,
            cert: self.cert.as_deref(),
            command: &self.command,
            stdin: None,
            via_ssh_agent: false,
        }
        .run()
    }
}
