//! A throwaway PostgreSQL cluster (Debian's package): `initdb` into a
//! temporary directory, the server on a free loopback port, stopped and
//! removed when the handle drops. As root, the server runs as the
//! `postgres` user the package creates (PostgreSQL refuses to run as root).

use super::*;

pub struct Postgres {
    pub port: u16,
    /// With [`Postgres::start_with_tls`]: the CA that signed its certificate.
    pub ca_file: Option<PathBuf>,
    data: PathBuf,
    log: PathBuf,
    bin: PathBuf,
    dir: TempDir,
}

impl Postgres {
    pub fn start() -> Postgres {
        Postgres::launch(false)
    }

    /// The server with TLS on (`ssl = on`), its certificate for IP
    /// 127.0.0.1 signed by a throwaway CA ([`Postgres::ca_file`]).
    pub fn start_with_tls() -> Postgres {
        Postgres::launch(true)
    }

    fn launch(tls: bool) -> Postgres {
        let bin = server_bin();
        let dir = tempdir();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let data = dir.path().join("data");
        let log = dir.path().join("postgres.log");
        let socket_dir = dir.path().join("sock");
        fs::create_dir(&data).expect("create the data directory");
        fs::create_dir(&socket_dir).expect("create the socket directory");
        fs::write(&log, "").expect("create the log");
        if is_root() {
            for path in [&data, &log, &socket_dir] {
                run_ok(
                    Command::new("chown").arg("postgres:postgres").arg(path),
                    "chown",
                );
            }
        }
        run_ok(
            as_server_user(&bin.join("initdb"))
                .arg("-D")
                .arg(&data)
                .args([
                    "-U",
                    "portcullis",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ]),
            "initdb",
        );
        let ca_file = tls.then(|| make_certificates(dir.path(), &data));
        let pg = Postgres {
            port: free_port(),
            ca_file,
            data,
            log,
            bin,
            dir,
        };
        pg.resume();
        run_ok(
            Command::new(pg.bin.join("createdb"))
                .args(["-h", "127.0.0.1", "-p", &pg.port.to_string()])
                .args(["-U", "portcullis", "portcullis"]),
            "createdb",
        );
        pg
    }

    /// The connection string replicas are configured with.
    pub fn url(&self) -> String {
        format!("postgres://portcullis@127.0.0.1:{}/portcullis", self.port)
    }

    /// Starts the server (again), on the same port and data.
    pub fn resume(&self) {
        // fsync off: an OS crash is not what the tests try, a killed
        // server is, and what it committed is in the OS's cache.
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().join("sock").display()
        );
        if self.ca_file.is_some() {
            options.push_str(" -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key");
        }
        run_ok(
            as_server_user(&self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(&self.data)
                .arg("-l")
                .arg(&self.log)
                .args(["-o", &options, "-w", "-t", "30", "start"]),
            "pg_ctl start",
        );
    }

    /// Stops the server at once, dropping every connection (as a lost
    /// database host would).
    pub fn halt(&self) {
        run_ok(
            as_server_user(&self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(&self.data)
                .args(["-m", "immediate", "-w", "stop"]),
            "pg_ctl stop",
        );
    }

    /// Runs SQL with psql; its output, unaligned and without headers.
    pub fn psql(&self, sql: &str) -> String {
        let out = run_ok(
            Command::new(self.bin.join("psql"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
                .args([
                    "-U",
                    "portcullis",
                    "-d",
                    "portcullis",
                    "-At",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-c",
                    sql,
                ]),
            "psql",
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = as_server_user(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "stop"])
            .output();
        if thread::panicking() {
            eprintln!("--- postgres log\n{}", tail(&self.log, 40));
        }
    }
}

/// A CA and a server certificate for 127.0.0.1 signed by it (the key in
/// the data directory, where PostgreSQL wants it, owned by its user), and
/// a `pg_hba.conf` that takes TCP connections over TLS only.
fn make_certificates(dir: &Path, data: &Path) -> PathBuf {
    let ca = dir.join("ca.pem");
    let openssl = |args: &[&str], what: &str| {
        run_ok(Command::new("openssl").args(args).current_dir(dir), what);
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut args = vec![
        "req",
        "-x509",
        "-days",
        "2",
        "-subj",
        "/CN=portcullis test CA",
    ];
    args.extend(ec);
    args.extend(["-keyout", "ca.key", "-out", "ca.pem"]);
    openssl(&args, "openssl: the CA");
    let mut args = vec![
        "req",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ];
    args.extend(ec);
    openssl(&args, "openssl: the server's request");
    fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write server.ext");
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.crt",
        ],
        "openssl: the server's certificate",
    );
    // TLS or nothing: a plaintext connection is turned away.
    let hba = data.join("pg_hba.conf");
    fs::write(
        &hba,
        "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
    )
    .expect("write pg_hba.conf");
    if is_root() {
        run_ok(
            Command::new("chown").arg("postgres:postgres").arg(&hba),
            "chown",
        );
    }
    for name in ["server.crt", "server.key"] {
        let target = data.join(name);
        fs::copy(dir.join(name), &target).expect("copy into the data directory");
        fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).expect("chmod");
        if is_root() {
            run_ok(
                Command::new("chown").arg("postgres:postgres").arg(&target),
                "chown",
            );
        }
    }
    ca
}

/// The newest installed server's bin directory.
fn server_bin() -> PathBuf {
    let mut found: Vec<PathBuf> = fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed (scripts/test installs Debian's postgresql)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    found.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found
        .pop()
        .expect("an initdb under /usr/lib/postgresql/*/bin")
}

fn is_root() -> bool {
    whoami() == "root"
}

fn as_server_user(program: &Path) -> Command {
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}
