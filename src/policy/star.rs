//! The one `*` wildcard matcher of forward hosts and sftp path components.
//!
//! Invariant: `*` matches any run of bytes, every other byte must be equal
//! under the caller's `same`. Iterative (one remembered star, retried one
//! byte further on a mismatch), so no input makes it recurse or backtrack
//! more than linearly per star.

pub(super) fn star_matches(glob: &[u8], text: &[u8], same: impl Fn(u8, u8) -> bool) -> bool {
    let (mut g, mut t) = (0, 0);
    let mut retry: Option<(usize, usize)> = None;
    while t < text.len() {
        match glob.get(g) {
            Some(b'*') => {
                retry = Some((g, t));
                g += 1;
            }
            Some(c) if same(*c, text[t]) => {
                g += 1;
                t += 1;
            }
            _ => match retry {
                // Let the last star swallow one more byte.
                Some((star, from)) => {
                    retry = Some((star, from + 1));
                    g = star + 1;
                    t = from + 1;
                }
                None => return false,
            },
        }
    }
    glob[g..].iter().all(|c| *c == b'*')
}
