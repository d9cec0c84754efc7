//! `verify` output names the first bad row, in text and JSON.

use serde_json::Value;

use super::render;
use crate::audit::{Problem, ProblemKind, SessionId, VerifyReport};
use crate::replay::{write_verify, write_verify_json};

fn failed() -> VerifyReport {
    VerifyReport {
        ok: false,
        session: Some(SessionId(3)),
        rows: 40,
        last_seq: Some(40),
        last_hash: Some("ab".repeat(32)),
        first_bad_seq: Some(17),
        problems: vec![Problem {
            seq: Some(17),
            session: Some(SessionId(3)),
            problem: ProblemKind::RowEdited,
            detail: "row 17 (data) was edited: its hash does not match its content".into(),
        }],
    }
}

#[test]
fn a_failed_verify_names_the_first_bad_row() {
    let text = render(|o| write_verify(&failed(), o));
    let mut lines = text.lines();
    let head = lines.next().unwrap();
    assert!(
        head.starts_with("verify: FAILED (session 3): 1 problem(s) in 40 rows, first bad row 17"),
        "{text}"
    );
    assert_eq!(
        lines.next(),
        Some("  row 17: row 17 (data) was edited: its hash does not match its content")
    );
}

#[test]
fn verify_json_is_machine_readable() {
    let v: Value = serde_json::from_str(&render(|o| write_verify_json(&failed(), o))).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["first_bad_seq"], 17);
    assert_eq!(v["session"], 3);
    assert_eq!(v["problems"][0]["problem"], "row_edited");
    assert_eq!(v["problems"][0]["seq"], 17);
}

#[tokio::test]
async fn the_cli_entry_points_read_a_live_store() {
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: crate::replay::SessionsArgs,
    }

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portcullis.db");
    let store = crate::audit::Store::open(&path).unwrap();
    let sid = store.begin_session(super::new_session()).await.unwrap();

    let cli = Cli::try_parse_from([
        "x",
        "--identity",
        "agent-7",
        "--since",
        "2020-01-01T00:00:00Z",
        "--json",
    ])
    .unwrap();
    let v: Value = serde_json::from_str(&render(|o| {
        crate::replay::sessions(&path, &cli.args, o).map_err(std::io::Error::other)
    }))
    .unwrap();
    assert_eq!(v[0]["id"], sid.0);
    let cli = Cli::try_parse_from(["x", "--since", "2999-01-01T00:00:00Z"]).unwrap();
    let table =
        render(|o| crate::replay::sessions(&path, &cli.args, o).map_err(std::io::Error::other));
    assert_eq!(table.lines().count(), 1, "header only: {table}");
    assert!(Cli::try_parse_from(["x", "--since", "last tuesday"]).is_err());

    let shown =
        render(|o| crate::replay::show(&path, sid.0, false, o).map_err(std::io::Error::other));
    assert!(shown.starts_with(&format!("session {sid}\n")));
    let mut sink = Vec::new();
    assert!(matches!(
        crate::replay::show(&path, sid.0 + 1, true, &mut sink),
        Err(crate::replay::ReplayError::NoSuchSession(_))
    ));
    assert!(crate::replay::verify(&path, None, false, &mut sink).unwrap());
    assert!(crate::replay::verify(&path, Some(sid.0), true, &mut sink).unwrap());
    assert!(!crate::replay::verify(&path, Some(sid.0 + 1), false, &mut sink).unwrap());
}
