//! The list's query string, checked: what `/sessions` and `/api/sessions`
//! show and filter by.
//!
//! Invariant: a value that cannot mean what the reviewer wanted (an unknown
//! outcome or list, a time that does not parse, an overlong value, a filter
//! that does not apply to the list shown) is refused with a reason rather
//! than dropped: a dropped filter would show more than was asked for, and
//! look like an answer.

use serde::Deserialize;

use crate::audit::{EventFilter, Outcome, SessionFilter};
use crate::clock::parse_time;

/// Longest filter or search value accepted (longer cannot name anything).
const MAX_FILTER: usize = 256;
const US_PER_DAY: i64 = 86_400 * 1_000_000;
/// Shortest search text: the trigram index finds three characters and
/// more; shorter would scan every command row (over a second on a large
/// store), and names little anyway.
const MIN_SEARCH: usize = 3;

/// The query string as given; every field optional, empty means absent.
#[derive(Deserialize, Default)]
pub struct ListQuery {
    pub before: Option<i64>,
    pub show: Option<String>,
    pub identity: Option<String>,
    pub task: Option<String>,
    pub target: Option<String>,
    pub from: Option<String>,
    pub until: Option<String>,
    pub outcome: Option<String>,
    pub q: Option<String>,
}

/// Which list a page shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Show {
    Sessions,
    /// Refused authentications.
    Refused,
    /// Grant requests.
    Requests,
}

impl Show {
    pub fn name(self) -> &'static str {
        match self {
            Show::Sessions => "sessions",
            Show::Refused => "refused",
            Show::Requests => "requests",
        }
    }
}

/// A checked query: the list, its filters, and the page's keyset.
#[derive(Debug, Clone)]
pub struct Listing {
    pub show: Show,
    pub sessions: SessionFilter,
    pub before: Option<i64>,
    /// The filter values as typed, for the form and the "older" link.
    pub typed: Vec<(&'static str, String)>,
}

impl Listing {
    /// The filter for event lists (the sessions filter's applicable part).
    pub fn events(&self) -> EventFilter {
        EventFilter {
            identity: self.sessions.identity.clone(),
            since_us: self.sessions.since_us,
            until_us: self.sessions.until_us,
        }
    }

    /// Refuses the filters the cluster's index cannot answer (it has each
    /// session's row, not its commands or an outcome to match).
    pub fn check_index(&self) -> Result<(), BadQuery> {
        for (name, given) in [
            ("outcome", self.sessions.outcome.is_some()),
            ("q", self.sessions.text.is_some()),
        ] {
            if given {
                return Err(BadQuery(format!(
                    "{name} filters this replica's sessions only, not the cluster's index"
                )));
            }
        }
        Ok(())
    }

    pub fn typed(&self, name: &str) -> &str {
        self.typed
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// A start time: RFC 3339, unix seconds, or a date (its midnight UTC).
fn parse_from(text: &str) -> Option<i64> {
    match date_midnight(text) {
        Some(midnight) => Some(midnight),
        None => parse_time(text),
    }
}

/// An end time (exclusive): a date means through that whole day.
fn parse_until(text: &str) -> Option<i64> {
    match date_midnight(text) {
        Some(midnight) => midnight.checked_add(US_PER_DAY),
        None => parse_time(text),
    }
}

/// `YYYY-MM-DD` at 00:00 UTC, through the RFC 3339 parser.
fn date_midnight(text: &str) -> Option<i64> {
    let text = text.trim();
    let b = text.as_bytes();
    let shaped = b.len() == 10
        && b.get(4) == Some(&b'-')
        && b.get(7) == Some(&b'-')
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shaped {
        return None;
    }
    parse_time(&format!("{text}T00:00:00Z"))
}

/// Why a query cannot be answered (shown to the reviewer as is).
#[derive(Debug, PartialEq, Eq)]
pub struct BadQuery(pub String);

impl ListQuery {
    pub fn check(self) -> Result<Listing, BadQuery> {
        let mut typed = Vec::new();
        let mut take =
            |name: &'static str, value: Option<String>| match value.filter(|v| !v.is_empty()) {
                None => Ok(None),
                Some(v) if v.len() > MAX_FILTER => Err(BadQuery(format!(
                    "{name} is longer than {MAX_FILTER} bytes"
                ))),
                Some(v) => {
                    typed.push((name, v.clone()));
                    Ok(Some(v))
                }
            };
        let show = take("show", self.show)?;
        let identity = take("identity", self.identity)?;
        let task = take("task", self.task)?;
        let target = take("target", self.target)?;
        let from = take("from", self.from)?;
        let until = take("until", self.until)?;
        let outcome = take("outcome", self.outcome)?;
        let text = take("q", self.q)?;
        if text
            .as_ref()
            .is_some_and(|t| t.chars().count() < MIN_SEARCH)
        {
            return Err(BadQuery(format!(
                "q needs at least {MIN_SEARCH} characters"
            )));
        }
        let show = match show.as_deref() {
            None | Some("sessions") => Show::Sessions,
            Some("refused") => Show::Refused,
            Some("requests") => Show::Requests,
            Some(_) => {
                return Err(BadQuery(
                    "show is one of sessions, refused, requests".into(),
                ))
            }
        };
        let since_us = match from.as_deref() {
            None => None,
            Some(t) => Some(parse_from(t).ok_or_else(|| bad_time("from"))?),
        };
        let until_us = match until.as_deref() {
            None => None,
            Some(t) => Some(parse_until(t).ok_or_else(|| bad_time("until"))?),
        };
        let outcome = match outcome.as_deref() {
            None => None,
            Some(name) => Some(Outcome::parse(name).ok_or_else(|| {
                let names: Vec<&str> = Outcome::ALL.iter().map(|(n, _)| *n).collect();
                BadQuery(format!("outcome is one of {}", names.join(", ")))
            })?),
        };
        if show != Show::Sessions {
            for (name, given) in [
                ("task", task.is_some()),
                ("target", target.is_some()),
                ("outcome", outcome.is_some()),
                ("q", text.is_some()),
            ] {
                if given {
                    return Err(BadQuery(format!(
                        "{name} filters sessions only, not show={}",
                        show.name()
                    )));
                }
            }
        }
        let sessions = SessionFilter {
            identity,
            task,
            target,
            since_us,
            until_us,
            outcome,
            text,
        };
        Ok(Listing {
            show,
            sessions,
            before: self.before,
            typed,
        })
    }
}

fn bad_time(name: &str) -> BadQuery {
    BadQuery(format!(
        "{name} is a date (2026-11-28), an RFC 3339 time (2026-11-28T07:40:00Z) or unix seconds"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> Result<Listing, BadQuery> {
        let mut q = ListQuery::default();
        for (name, value) in pairs {
            let value = Some((*value).to_owned());
            match *name {
                "show" => q.show = value,
                "identity" => q.identity = value,
                "task" => q.task = value,
                "from" => q.from = value,
                "until" => q.until = value,
                "outcome" => q.outcome = value,
                "q" => q.q = value,
                _ => unreachable!(),
            }
        }
        q.check()
    }

    #[test]
    fn dates_cover_whole_days_and_times_are_exact() {
        let day = query(&[("from", "2026-11-28"), ("until", "2026-11-28")]).unwrap();
        let midnight = parse_time("2026-11-28T00:00:00Z").unwrap();
        assert_eq!(day.sessions.since_us, Some(midnight));
        assert_eq!(day.sessions.until_us, Some(midnight + US_PER_DAY));
        let exact = query(&[("until", "2026-11-28T07:40:00Z")]).unwrap();
        assert_eq!(exact.sessions.until_us, parse_time("2026-11-28T07:40:00Z"));
        for bad in ["2026-13-01", "2026-11-2x", "yesterday", "2026-11-28T07:40"] {
            assert!(query(&[("from", bad)]).is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_values_and_misapplied_filters_are_refused() {
        assert!(query(&[("outcome", "revoked")]).is_ok());
        assert!(query(&[("outcome", "revoked' OR 1=1")]).is_err());
        assert!(query(&[("show", "everything")]).is_err());
        assert!(query(&[("show", "refused"), ("q", "cat")]).is_err());
        assert!(query(&[("q", "ls")]).is_err());
        assert!(query(&[("q", "\"*\"")]).is_ok());
        assert!(query(&[("show", "requests"), ("identity", "a")]).is_ok());
        assert!(query(&[("identity", &"a".repeat(MAX_FILTER + 1))]).is_err());
        assert!(query(&[("identity", "a")]).unwrap().check_index().is_ok());
        assert!(query(&[("q", "cat")]).unwrap().check_index().is_err());
        assert!(query(&[("outcome", "open")])
            .unwrap()
            .check_index()
            .is_err());
        let empty = query(&[("identity", ""), ("outcome", "")]).unwrap();
        assert!(empty.sessions.identity.is_none() && empty.sessions.outcome.is_none());
        assert!(empty.typed.is_empty());
    }
}
