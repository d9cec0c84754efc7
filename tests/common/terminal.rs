//! Interactive terminals: the real `ssh -tt` in a tmux pane of its own,
//! typed at with send-keys and read with capture-pane.

use super::*;

const TERMINAL_TIMEOUT: Duration = Duration::from_secs(30);

/// One tmux server (its own socket) running one `ssh -tt` in one pane,
/// killed on drop.
pub struct Terminal {
    socket: PathBuf,
    _dir: TempDir,
}

impl Terminal {
    /// Starts `argv` in a detached pane of `cols` x `rows`. When it exits the
    /// pane shows `[exited N]` and stays, so its last words can be read.
    pub fn start(argv: &[String], cols: u16, rows: u16) -> Terminal {
        let dir = tempdir();
        let socket = dir.path().join("tmux.sock");
        let quoted: Vec<String> = argv.iter().map(|a| shell_quote(a)).collect();
        let script = format!("{}; echo \"[exited $?]\"; sleep 3600", quoted.join(" "));
        run_ok(
            Command::new("tmux")
                .args(["-f", "/dev/null", "-S"])
                .arg(&socket)
                .args(["new-session", "-d", "-s", "t", "-x"])
                .arg(cols.to_string())
                .arg("-y")
                .arg(rows.to_string())
                .args(["sh", "-c", &script]),
            "tmux new-session",
        );
        Terminal { socket, _dir: dir }
    }

    fn tmux(&self, args: &[&str]) -> Output {
        run_ok(
            Command::new("tmux").arg("-S").arg(&self.socket).args(args),
            "tmux",
        )
    }

    /// Types `text` literally, then Enter.
    pub fn type_line(&self, text: &str) {
        self.tmux(&["send-keys", "-t", "t", "-l", text]);
        self.tmux(&["send-keys", "-t", "t", "Enter"]);
    }

    /// Sends tmux key names (`BSpace`, `C-c`, `Enter`) or literal text.
    pub fn send_keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend_from_slice(keys);
        self.tmux(&args);
    }

    /// What the pane shows now (joined wrapped lines, with its history).
    pub fn screen(&self) -> String {
        let out = self.tmux(&["capture-pane", "-p", "-J", "-S", "-200", "-t", "t"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the pane shows `needle`; panics with the screen after 30 s.
    #[track_caller]
    pub fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + TERMINAL_TIMEOUT;
        loop {
            let screen = self.screen();
            if screen.contains(needle) {
                return screen;
            }
            if Instant::now() > deadline {
                panic!("the terminal never showed {needle:?}; it shows:\n{screen}");
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the pane shows `needle` and, on a later line, the shell's
    /// prompt (`#` or `$` ending the last line): keys sent after this land
    /// on the prompt, not in the kernel's type-ahead echo.
    #[track_caller]
    pub fn wait_for_prompt_after(&self, needle: &str) {
        let deadline = Instant::now() + TERMINAL_TIMEOUT;
        loop {
            let screen = self.screen();
            let later_lines = screen
                .rsplit_once(needle)
                .and_then(|(_, after)| after.split_once('\n'))
                .map(|(_, later)| later);
            let prompt_follows = later_lines
                .and_then(|later| later.lines().map(str::trim_end).rfind(|l| !l.is_empty()))
                .is_some_and(|last| last.ends_with('#') || last.ends_with('$'));
            if prompt_follows {
                return;
            }
            if Instant::now() > deadline {
                panic!("the terminal never showed a prompt after {needle:?}; it shows:\n{screen}");
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the program to exit; returns its exit status and the screen.
    #[track_caller]
    pub fn wait_exit(&self) -> (i32, String) {
        let screen = self.wait_for("[exited ");
        let code = screen
            .rsplit("[exited ")
            .next()
            .and_then(|rest| rest.split(']').next())
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no exit status on the screen:\n{screen}"));
        (code, screen)
    }

    /// Resizes the pane's window: the program gets SIGWINCH.
    pub fn resize(&self, cols: u16, rows: u16) {
        self.tmux(&[
            "resize-window",
            "-t",
            "t",
            "-x",
            &cols.to_string(),
            "-y",
            &rows.to_string(),
        ]);
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}

/// `'text'` for sh, with embedded single quotes escaped.
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Whether `ssh` asks the bastion for a terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tty {
    /// `-tt`: always, and a refused terminal makes ssh give up.
    Forced,
    /// No flag: when ssh runs in a terminal and there is no command; a
    /// refused terminal is only a warning.
    Auto,
    /// `-T`: never.
    Never,
}

impl Agent<'_> {
    /// The `ssh` command line of this agent: the terminal flag, then
    /// `options` (`-o` pairs and the like), then the command, if any.
    pub fn ssh_argv(&self, tty: Tty, options: &[&str], command: Option<&str>) -> Vec<String> {
        let known_hosts = self.bastion.dir().join("agents/known_hosts");
        fs::write(
            &known_hosts,
            format!(
                "[127.0.0.1]:{} {}\n",
                self.bastion.port,
                self.bastion.host_key()
            ),
        )
        .expect("write known_hosts");
        let mut argv: Vec<String> = vec!["ssh".into(), "-F".into(), "/dev/null".into()];
        match tty {
            Tty::Forced => argv.push("-tt".into()),
            Tty::Never => argv.push("-T".into()),
            Tty::Auto => {}
        }
        argv.extend(["-p".into(), self.bastion.port.to_string()]);
        let mut opts = vec![
            "BatchMode=yes".to_string(),
            "IdentitiesOnly=yes".to_string(),
            "IdentityAgent=none".to_string(),
            format!("IdentityFile={}", self.key.private.display()),
            format!("UserKnownHostsFile={}", known_hosts.display()),
            "GlobalKnownHostsFile=/dev/null".to_string(),
            "StrictHostKeyChecking=yes".to_string(),
            "LogLevel=ERROR".to_string(),
        ];
        if let Some(cert) = &self.cert {
            opts.push(format!("CertificateFile={}", cert.display()));
        }
        for opt in opts {
            argv.extend(["-o".into(), opt]);
        }
        argv.extend(options.iter().map(|o| o.to_string()));
        argv.push(format!("{}@127.0.0.1", self.login));
        if let Some(command) = command {
            argv.extend(["--".into(), command.into()]);
        }
        argv
    }

    /// `ssh -tt` in a tmux pane of 80x24: an interactive session.
    pub fn interactive(&self, command: Option<&str>) -> Terminal {
        Terminal::start(&self.ssh_argv(Tty::Forced, &[], command), 80, 24)
    }

    /// `ssh [-tt] OPTIONS LOGIN@bastion [COMMAND]` with stdin from /dev/null,
    /// run to completion (killed after 30 s).
    pub fn run_ssh(&self, tty: Tty, options: &[&str], command: Option<&str>) -> SshOutput {
        let argv = self.ssh_argv(tty, options, command);
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run ssh");
        let stdout = reader(child.stdout.take().expect("ssh stdout"));
        let stderr = reader(child.stderr.take().expect("ssh stderr"));
        let deadline = Instant::now() + SSH_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for ssh") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("ssh {argv:?} did not finish in {SSH_TIMEOUT:?}");
            }
            thread::sleep(Duration::from_millis(5));
        };
        SshOutput {
            code: status.code().unwrap_or(-1),
            stdout: stdout.join().unwrap_or_default(),
            stderr: String::from_utf8_lossy(&stderr.join().unwrap_or_default()).into_owned(),
        }
    }
}

/// The standard world, with a role that may open shells: `pty = true` and
/// any command (`"*"`); `portcullis grant` gives its certs permit-pty.
pub fn shell_setup() -> Setup {
    Setup::standard().role(ROLE, Role::on(&[TARGET]).exec(&["*"]).pty(true))
}

/// Waits for a shell's prompt by running something whose output differs
/// from what was typed.
pub fn wait_ready(term: &Terminal) {
    term.type_line("echo ready-$((20+22))");
    term.wait_for("ready-42");
}

/// Resizes the terminal and waits until the bastion has recorded the
/// window-change (so later keys reach the target after it).
pub fn resize_and_wait(b: &Bastion, term: &Terminal, cols: u16, rows: u16) {
    term.resize(cols, rows);
    eventually("the resize to be recorded", || {
        let recorded = all_transcripts(b).iter().any(|show| {
            events_of_kind(show, "pty.resize")
                .iter()
                .any(|e| e["cols"] == cols && e["rows"] == rows)
        });
        recorded
            .then_some(())
            .ok_or_else(|| "no such pty.resize yet".to_string())
    });
}
