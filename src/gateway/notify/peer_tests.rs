//! What a receiver answers is the peer's: every answer ends in a success
//! or a short failure, within the timeout, without panicking.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::thread;
use std::time::{Duration, Instant};

use super::post::{Failure, Poster};
use crate::config::{NotifySecret, NotifyTarget};

/// A receiver on 127.0.0.1 that reads what comes (briefly) and writes
/// `answer`, then holds the connection open for `linger`.
fn receiver(answer: Vec<u8>, linger: Duration) -> u16 {
    let listener = match TcpListener::bind("127.0.0.1:0") {
        Ok(listener) => listener,
        Err(e) => panic!("bind: {e}"),
    };
    let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            let _ = stream.set_read_timeout(Some(Duration::from_millis(300)));
            let mut request = vec![0; 64 * 1024];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(&answer);
            thread::sleep(linger);
        }
    });
    port
}

fn post_to(url: String) -> (Result<(), Failure>, Duration) {
    let target = NotifyTarget {
        url,
        secret_file: "/unused".into(),
        timeout: Duration::from_secs(1),
    };
    let poster = Poster::new(&target, NotifySecret::for_tests(b"0123456789abcdef"));
    let started = Instant::now();
    let result = poster.post(br#"{"kind":"grant.requested"}"#);
    (result, started.elapsed())
}

fn answering(answer: &[u8], linger: Duration) -> (Result<(), Failure>, Duration) {
    let port = receiver(answer.to_vec(), linger);
    post_to(format!("http://127.0.0.1:{port}/hook"))
}

#[test]
fn any_2xx_is_a_success_and_its_body_is_not_read() {
    let endless = b"HTTP/1.1 202 Accepted\r\nContent-Length: 999999999\r\n\r\npartial";
    let (result, took) = answering(endless, Duration::from_secs(3));
    assert_eq!(result, Ok(()));
    assert!(took < Duration::from_secs(1), "{took:?}");
}

#[test]
fn redirects_and_errors_are_failures_by_status() {
    let redirect =
        b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(
        answering(redirect, Duration::ZERO).0,
        Err(Failure::Status(302))
    );
    let error = b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(
        answering(error, Duration::ZERO).0,
        Err(Failure::Status(503))
    );
}

#[test]
fn garbage_huge_headers_and_silence_fail_within_the_timeout() {
    let garbage = b"SSH-2.0-not-http\r\n\r\n".to_vec();
    let mut huge = b"HTTP/1.1 200 OK\r\n".to_vec();
    for n in 0..4000 {
        huge.extend_from_slice(format!("X-Filler-{n}: aaaaaaaaaaaaaaaa\r\n").as_bytes());
    }
    for (answer, linger) in [
        (garbage, Duration::ZERO),
        (huge, Duration::ZERO),
        (Vec::new(), Duration::from_secs(3)),
    ] {
        let (result, took) = answering(&answer, linger);
        assert!(result.is_err(), "{result:?}");
        assert!(
            took < Duration::from_millis(2500),
            "{result:?} took {took:?}"
        );
    }
}

#[test]
fn https_to_a_plain_http_receiver_is_a_tls_failure() {
    let port = receiver(b"HTTP/1.1 200 OK\r\n\r\n".to_vec(), Duration::ZERO);
    let (result, _) = post_to(format!("https://127.0.0.1:{port}/hook"));
    assert!(
        matches!(
            result,
            Err(Failure::Tls(_) | Failure::Transport(std::io::ErrorKind::InvalidData, _))
        ),
        "{result:?}"
    );
}
