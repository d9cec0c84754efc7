//! Reading the policy directory and reporting every problem in it.
//!
//! Invariant: `Policy::load` returns a policy only when no problem was
//! found; otherwise it returns all problems it could find, each pinned to
//! `file:line`. A file that does not parse is reported once (at the parse
//! error) and its contents are not used to judge the other files, so one
//! mistake never shows up as a cascade of false ones.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::policy::check::{check_identities, check_roles, check_targets};
use crate::policy::raw::{IdentitiesFile, RolesFile, TargetsFile};
use crate::policy::Policy;

/// One problem in the policy, worded for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub file: PathBuf,
    /// 1-based; `None` for problems with the file as a whole (e.g. missing).
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file.display(), line, self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// Every problem found while loading, in file order, then line order.
/// Display prints one problem per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyErrors {
    pub errors: Vec<PolicyError>,
}

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.errors.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// One policy file's text, for turning byte spans into line numbers.
pub(crate) struct Source {
    pub path: PathBuf,
    text: String,
}

impl Source {
    /// The 1-based line holding byte `offset`.
    fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }
}

/// Collects the problems of one file; they are sorted by line when the file
/// is done so the report reads top to bottom.
pub(crate) struct Problems<'a> {
    source: &'a Source,
    found: Vec<PolicyError>,
}

impl<'a> Problems<'a> {
    pub fn new(source: &'a Source) -> Problems<'a> {
        Problems {
            source,
            found: Vec::new(),
        }
    }

    /// Record a problem at the byte span of the value it is about.
    pub fn at(&mut self, span: Range<usize>, message: String) {
        self.found.push(PolicyError {
            file: self.source.path.clone(),
            line: Some(self.source.line_of(span.start)),
            message,
        });
    }

    fn finish(mut self, into: &mut Vec<PolicyError>) {
        self.found.sort_by_key(|error| error.line);
        into.append(&mut self.found);
    }
}

impl Policy {
    /// Load and check `targets.toml`, `roles.toml` and `identities.toml`
    /// from `dir`. All three are required.
    pub fn load(dir: &Path) -> Result<Policy, PolicyErrors> {
        let mut errors = Vec::new();
        let targets = read(dir, "targets.toml", &mut errors);
        let roles = read(dir, "roles.toml", &mut errors);
        let identities = read(dir, "identities.toml", &mut errors);
        check_sources(dir, [targets, roles, identities], errors)
    }

    /// Check the texts of the three policy files as if read from `dir`:
    /// problems name `dir/targets.toml` etc. and their lines, and key files
    /// resolve against `dir`. The filesystem is not touched; [`Policy::load`]
    /// is this after reading the files.
    pub fn parse(
        dir: &Path,
        targets: &str,
        roles: &str,
        identities: &str,
    ) -> Result<Policy, PolicyErrors> {
        let source = |name: &str, text: &str| {
            Some(Source {
                path: dir.join(name),
                text: text.to_owned(),
            })
        };
        let sources = [
            source("targets.toml", targets),
            source("roles.toml", roles),
            source("identities.toml", identities),
        ];
        check_sources(dir, sources, Vec::new())
    }
}

/// Check the files that could be read (`None` for one that could not, whose
/// problem is already in `errors`), each against the ones before it.
fn check_sources(
    dir: &Path,
    [targets_src, roles_src, identities_src]: [Option<Source>; 3],
    mut errors: Vec<PolicyError>,
) -> Result<Policy, PolicyErrors> {
    let targets = targets_src.as_ref().and_then(|source| {
        let raw: TargetsFile = parse(source, &mut errors)?;
        let mut problems = Problems::new(source);
        let targets = check_targets(raw, dir, &mut problems);
        problems.finish(&mut errors);
        Some(targets)
    });
    let roles = roles_src.as_ref().and_then(|source| {
        let raw: RolesFile = parse(source, &mut errors)?;
        let mut problems = Problems::new(source);
        let roles = check_roles(raw, targets.as_ref(), &mut problems);
        problems.finish(&mut errors);
        Some(roles)
    });
    let identities = identities_src.as_ref().and_then(|source| {
        let raw: IdentitiesFile = parse(source, &mut errors)?;
        let mut problems = Problems::new(source);
        let identities = check_identities(raw, roles.as_ref(), &mut problems);
        problems.finish(&mut errors);
        Some(identities)
    });

    match (targets, roles, identities) {
        (Some(targets), Some(roles), Some(identities)) if errors.is_empty() => Ok(Policy {
            targets,
            roles,
            identities,
        }),
        _ => Err(PolicyErrors { errors }),
    }
}

fn read(dir: &Path, name: &str, errors: &mut Vec<PolicyError>) -> Option<Source> {
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => Some(Source { path, text }),
        Err(error) => {
            let message = if error.kind() == std::io::ErrorKind::NotFound {
                "file is missing (the policy needs targets.toml, roles.toml and identities.toml)"
                    .to_owned()
            } else {
                format!("cannot read: {error}")
            };
            errors.push(PolicyError {
                file: path,
                line: None,
                message,
            });
            None
        }
    }
}

/// Deserialize a whole file. serde stops at the first structural problem
/// (bad TOML, unknown key, wrong type, missing key), so that one problem is
/// reported at the span toml gives for it.
fn parse<T: DeserializeOwned>(source: &Source, errors: &mut Vec<PolicyError>) -> Option<T> {
    match toml::from_str(&source.text) {
        Ok(value) => Some(value),
        Err(error) => {
            errors.push(PolicyError {
                file: source.path.clone(),
                line: error.span().map(|span| source.line_of(span.start)),
                // toml's messages may span lines; the report keeps one
                // problem per line.
                message: one_line(error.message()),
            });
            None
        }
    }
}

fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}
