//! SHA-1 is not accepted: a user signature made with `ssh-rsa` (SHA-1) and
//! a cert whose CA signed it with `ssh-rsa` are refused and recorded; the
//! same RSA keys with SHA-2 (`rsa-sha2-512`) work.
mod common;

use common::*;

/// The reason of a SHA-1 refusal names it one way or another.
const SHA1_WORDS: &[&str] = &["sha-1", "sha1", "ssh-rsa"];

/// An agent with an RSA task key and a cert from `portcullis grant`.
fn rsa_agent(b: &Bastion) -> Agent<'_> {
    let key = b.new_rsa_key();
    grant(b, AGENT, ROLE, "10m", &key, Some("T-1"));
    b.agent_with(key)
}

/// ssh offering the cert with only this signature algorithm (`ssh-rsa`:
/// SHA-1, `rsa-sha2-512`); the plain key's algorithm is listed too, or ssh
/// would not find the cert's private key.
fn with_algorithm(agent: &Agent<'_>, algorithm: &str) -> SshOutput {
    let option = format!("PubkeyAcceptedAlgorithms={algorithm}-cert-v01@openssh.com,{algorithm}");
    agent.run_ssh(Tty::Never, &["-o", &option], Some("echo hello"))
}

#[test]
fn user_signature_with_sha1_is_refused() {
    let b = Bastion::start(Setup::standard());
    let agent = rsa_agent(&b);
    assert_auth_refused(&agent, SHA1_WORDS, || with_algorithm(&agent, "ssh-rsa"));
}

#[test]
fn user_signature_with_sha2_works() {
    let b = Bastion::start(Setup::standard());
    let agent = rsa_agent(&b);

    assert_output(&agent.run("echo hello"), 0, "hello\n");
    let out = with_algorithm(&agent, "rsa-sha2-512");
    assert_output(&out, 0, "hello\n");
}

#[test]
fn cert_signed_by_a_ca_with_sha1_is_refused() {
    let ca = CaKey::generate_rsa("rsa_ca");
    let b = Bastion::start(Setup::standard().trusted_ca_file(&ca.public));
    let agent = b.signed_agent(&ca.private, &CertSpec::standard().ca_signature("ssh-rsa"));
    assert_auth_refused(&agent, SHA1_WORDS, || agent.run("echo hello"));
}

#[test]
fn cert_signed_by_a_ca_with_sha2_works() {
    let ca = CaKey::generate_rsa("rsa_ca");
    let b = Bastion::start(Setup::standard().trusted_ca_file(&ca.public));
    let spec = CertSpec::standard().ca_signature("rsa-sha2-512");
    let agent = b.signed_agent(&ca.private, &spec);

    assert_output(&agent.run("echo hello"), 0, "hello\n");
}
