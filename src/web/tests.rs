//! The viewer's pure parts: escaping, cookies, same-origin checks.

use axum::http::{HeaderMap, HeaderValue};

use super::auth::{is_secret_text, same_origin_post, session_cookie};
use super::html::escape;
use crate::grants::review::Reviewer;

const SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, HeaderValue::from_str(value).unwrap());
    }
    map
}

#[test]
fn markup_is_escaped() {
    assert_eq!(
        escape("<script>alert('1')</script> & \"x\""),
        "&lt;script&gt;alert(&#39;1&#39;)&lt;/script&gt; &amp; &quot;x&quot;"
    );
}

#[test]
fn only_a_well_formed_cookie_is_read() {
    let cookie = format!("a=b; portcullis_session={SECRET}; c=d");
    assert_eq!(
        session_cookie(&headers(&[("cookie", &cookie)])).as_deref(),
        Some(SECRET)
    );
    assert_eq!(
        session_cookie(&headers(&[("cookie", "portcullis_session=x' OR 1")])),
        None
    );
    assert_eq!(session_cookie(&headers(&[])), None);
    assert!(!is_secret_text(&SECRET[1..]));
}

#[test]
fn a_post_must_be_same_origin_with_the_csrf_value() {
    let reviewer = Reviewer {
        identity: "alice".into(),
        csrf: SECRET.into(),
    };
    let host = ("host", "127.0.0.1:2280");
    let ours = headers(&[host, ("origin", "http://127.0.0.1:2280")]);
    assert!(same_origin_post(&ours, &reviewer, SECRET));
    assert!(same_origin_post(&headers(&[host]), &reviewer, SECRET));
    assert!(!same_origin_post(&ours, &reviewer, "wrong"));
    assert!(!same_origin_post(&ours, &reviewer, ""));
    let evil = headers(&[host, ("origin", "http://evil.example")]);
    assert!(!same_origin_post(&evil, &reviewer, SECRET));
    let cross = headers(&[host, ("sec-fetch-site", "cross-site")]);
    assert!(!same_origin_post(&cross, &reviewer, SECRET));
}

#[test]
fn an_https_origin_of_this_host_is_same_origin() {
    let reviewer = Reviewer {
        identity: "alice".into(),
        csrf: SECRET.into(),
    };
    let host = ("host", "bastion.example:2280");
    let ours = headers(&[host, ("origin", "https://bastion.example:2280")]);
    assert!(same_origin_post(&ours, &reviewer, SECRET));
    for other in [
        "https://bastion.example",
        "https://bastion.example:2281",
        "https://evil.example:2280",
        "null",
    ] {
        let theirs = headers(&[host, ("origin", other)]);
        assert!(!same_origin_post(&theirs, &reviewer, SECRET), "{other}");
    }
}
