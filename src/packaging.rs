//! Man pages and shell completions, generated from the CLI's own clap
//! definitions (so they cannot drift from `--help`), for the Debian
//! package: `portcullis generate-docs DIR` writes
//! `DIR/man/portcullis.1`, `DIR/man/portcullis-SUBCOMMAND.1` for every
//! subcommand, and `DIR/completions/{portcullis.bash,_portcullis,portcullis.fish}`.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Command;
use clap_complete::Shell;

/// Writes every page and completion for `cli`; returns the files written.
pub fn generate(cli: Command, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let man = dir.join("man");
    let completions = dir.join("completions");
    for sub in [&man, &completions] {
        fs::create_dir_all(sub).with_context(|| format!("creating {}", sub.display()))?;
    }
    let mut written = Vec::new();
    let mut cli = cli;
    cli.build();
    written.push(page(&cli, &man.join("portcullis.1"))?);
    for sub in cli
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        let name = format!("portcullis-{}", sub.get_name());
        let sub = sub.clone().name(name.clone()).display_name(name.clone());
        written.push(page(&sub, &man.join(format!("{name}.1")))?);
    }
    for (shell, file) in [
        (Shell::Bash, "portcullis.bash"),
        (Shell::Zsh, "_portcullis"),
        (Shell::Fish, "portcullis.fish"),
    ] {
        let path = completions.join(file);
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut cli.clone(), "portcullis", &mut out);
        fs::write(&path, out).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

fn page(cmd: &Command, path: &Path) -> anyhow::Result<PathBuf> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut out)
        .with_context(|| format!("rendering {}", path.display()))?;
    fs::write(path, out).with_context(|| format!("writing {}", path.display()))?;
    Ok(path.to_path_buf())
}
