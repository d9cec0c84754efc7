//! The sftp path scope (`sftp_paths`): which paths on the target an sftp
//! session may touch.
//!
//! Invariant: matching happens on normalised absolute paths only. A path is
//! first made absolute (relative paths against the login's home directory,
//! which must be known) and `.`/`..` are folded away lexically; a path that
//! cannot be made absolute that way is refused, never guessed. A path is in
//! scope when a pattern's components are a prefix of its components (so a
//! pattern allows a directory and everything below it); `*` inside a
//! pattern component matches any run of characters except `/`.
//!
//! What this cannot see: symlinks on the target. `/srv/upload/link` may
//! point anywhere; the target's own permissions are the only guard there.

/// One `sftp_paths` entry, e.g. `/srv/upload` or `/home/*/reports`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    source: String,
    components: Vec<String>,
}

impl PathPattern {
    pub fn parse(pattern: &str) -> Result<PathPattern, String> {
        let bad = |why: &str| format!("sftp path {pattern:?} {why} (e.g. /srv/upload)");
        if !pattern.starts_with('/') {
            return Err(bad("is not absolute"));
        }
        if pattern.chars().any(|c| c.is_control()) {
            return Err(bad("contains a control character"));
        }
        let mut components = Vec::new();
        for part in pattern.split('/').filter(|p| !p.is_empty()) {
            if part == "." || part == ".." {
                return Err(bad("must not contain . or .."));
            }
            components.push(part.to_owned());
        }
        Ok(PathPattern {
            source: pattern.to_owned(),
            components,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    fn covers(&self, path: &[&str]) -> bool {
        self.components.len() <= path.len()
            && self
                .components
                .iter()
                .zip(path)
                .all(|(pattern, part)| component_matches(pattern.as_bytes(), part.as_bytes()))
    }
}

/// `*` matches any run of bytes (a component holds no `/`).
fn component_matches(glob: &[u8], text: &[u8]) -> bool {
    super::star::star_matches(glob, text, |a, b| a == b)
}

/// The union of a session's path patterns. Empty allows nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathScope {
    patterns: Vec<PathPattern>,
}

impl PathScope {
    pub fn new(patterns: Vec<PathPattern>) -> PathScope {
        PathScope { patterns }
    }

    pub fn patterns(&self) -> &[PathPattern] {
        &self.patterns
    }

    /// True when no path at all is allowed.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The patterns as written, e.g. for an `sftp@portcullis` JSON array.
    pub fn to_strings(&self) -> Vec<String> {
        self.patterns.iter().map(|p| p.source.clone()).collect()
    }

    pub fn extend(&mut self, other: &PathScope) {
        for p in &other.patterns {
            if !self.patterns.contains(p) {
                self.patterns.push(p.clone());
            }
        }
    }

    /// Whether the normalised absolute `path` (from [`normalize`]) is in scope.
    pub fn allows(&self, path: &str) -> bool {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        self.patterns.iter().any(|p| p.covers(&parts))
    }
}

/// Why a path could not be made absolute.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("relative path {0:?} before the home directory is known")]
    HomeUnknown(String),
    #[error("path {0:?} names another user's home directory")]
    OtherHome(String),
    #[error("path is not valid UTF-8")]
    NotUtf8,
    #[error("path contains a NUL or control character")]
    ControlCharacter,
}

/// Makes `path` absolute and folds `.` and `..` lexically: relative paths
/// (and `~`, `~/...`, as `expand-path@openssh.com` sends them) are taken
/// against `home`; `..` at the root stays at the root, as on POSIX.
pub fn normalize(path: &[u8], home: Option<&str>) -> Result<String, PathError> {
    let path = std::str::from_utf8(path).map_err(|_| PathError::NotUtf8)?;
    if path.chars().any(|c| c.is_control()) {
        return Err(PathError::ControlCharacter);
    }
    let relative = if path.starts_with('/') {
        None
    } else if path == "~" || path.starts_with("~/") {
        Some(&path[1..])
    } else if path.starts_with('~') {
        return Err(PathError::OtherHome(path.to_owned()));
    } else {
        Some(path)
    };
    let joined = match relative {
        None => path.to_owned(),
        Some(rest) => {
            let home = home.ok_or_else(|| PathError::HomeUnknown(path.to_owned()))?;
            format!("{home}/{rest}")
        }
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}
