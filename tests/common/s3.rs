//! A real S3-compatible server on loopback: moto's server (from PyPI;
//! scripts/test installs it), with one bucket, `portcullis`.

use super::*;

pub const BUCKET: &str = "portcullis";

/// moto wants requests to name a key (it does not check the signature).
const ANY_SIGNATURE: &str = "Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00\r\n";

pub struct S3 {
    pub port: u16,
    daemon: Daemon,
    dir: TempDir,
}

impl S3 {
    pub fn start() -> S3 {
        let dir = tempdir();
        let port = free_port();
        let mut daemon = Daemon::spawn(
            Command::new("python3").args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ]),
            &dir.path().join("moto.log"),
        );
        daemon
            .wait_listening(port)
            .unwrap_or_else(|f| panic!("moto_server did not listen on {port}: {f:?}"));
        let s3 = S3 { port, daemon, dir };
        let created = s3.request("PUT", &format!("/{BUCKET}"), b"");
        assert!(
            created.starts_with("HTTP/1.1 200"),
            "create the bucket: {created}"
        );
        // The secret the bastions read from a 0600 file (moto takes any).
        let secret = s3.secret_file();
        fs::write(&secret, "test-secret\n").expect("write the secret");
        fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).expect("chmod");
        s3
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn secret_file(&self) -> PathBuf {
        self.dir.path().join("s3-secret")
    }

    /// An object's bytes, fetched as any S3 client would (moto does not
    /// ask for signatures).
    pub fn get(&self, key: &str) -> Vec<u8> {
        let answer = self.request_bytes("GET", &format!("/{BUCKET}/{key}"), b"");
        let split = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("an HTTP answer");
        assert!(
            answer.starts_with(b"HTTP/1.1 200"),
            "GET {key}: {}",
            String::from_utf8_lossy(&answer[..split])
        );
        answer[split + 4..].to_vec()
    }

    /// Replaces an object behind the bastions' backs (a tampering test).
    pub fn overwrite(&self, key: &str, bytes: &[u8]) {
        let answer = self.request("PUT", &format!("/{BUCKET}/{key}"), bytes);
        assert!(answer.starts_with("HTTP/1.1 200"), "PUT {key}: {answer}");
    }

    /// Every key in the bucket.
    pub fn keys(&self) -> Vec<String> {
        let listing = self.request("GET", &format!("/{BUCKET}?list-type=2"), b"");
        listing
            .split("<Key>")
            .skip(1)
            .filter_map(|part| part.split("</Key>").next())
            .map(str::to_owned)
            .collect()
    }

    fn request(&self, method: &str, path: &str, body: &[u8]) -> String {
        String::from_utf8_lossy(&self.request_bytes(method, path, body)).into_owned()
    }

    fn request_bytes(&self, method: &str, path: &str, body: &[u8]) -> Vec<u8> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to moto");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\n{ANY_SIGNATURE}Connection: close\r\n\r\n",
            self.port,
            body.len()
        );
        stream.write_all(head.as_bytes()).expect("send");
        stream.write_all(body).expect("send");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).expect("read the answer");
        answer
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        self.daemon.stop();
    }
}
