//! The example server (`examples/server`, the `server` binary) as a real process, for
//! the tests that need one (fault, soak, start-up): Cargo builds the binary for the test
//! (`CARGO_BIN_EXE_server`), which starts it with its configuration in the environment
//! and kills it when dropped.
//!
//! The server runs under a small `sh` wrapper that kills it when its stdin closes, so a
//! test binary that exits or crashes never leaves a server behind. The wrapper prints
//! the server's pid first and its exit status last (`exit N`) on stdout, between which
//! the server's own stdout passes through (`listening on http://ADDR`).

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

/// Kills the server when stdin closes; reports its pid and, once it ends, its status.
const WRAPPER: &str = r#"
exec 3<&0
"$@" 3<&- &
pid=$!
echo "pid $pid"
{ read _ignored <&3; kill -9 "$pid" 2>/dev/null; } &
exec 3<&-
wait "$pid"
echo "exit $?"
"#;

/// How long one start may take before the test gives up.
const START_LIMIT: Duration = Duration::from_secs(30);

/// The example server's binary, which Cargo builds for this test (a `[[bin]]` target
/// with the test's profile and features).
pub fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_server"))
}

fn log_path(name: &str) -> PathBuf {
    let mut path = super::clock::temp_path(&format!("server-{name}")).into_os_string();
    path.push(".log");
    path.into()
}

/// What the wrapper reports on stdout.
enum Line {
    Listening(SocketAddr),
    Exit(Option<i32>),
    Other,
}

/// A running (or exited) example server process.
pub struct ExampleServer {
    name: String,
    pid: u32,
    wrapper: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<Line>,
    addr: Option<SocketAddr>,
    exit: Option<Option<i32>>,
    log: PathBuf,
}

impl ExampleServer {
    /// Starts the server with `env` (on top of `RUST_LOG=warn`), without waiting for it
    /// to listen. `name` labels its log.
    pub fn spawn(name: &str, env: &[(&str, String)]) -> Self {
        let log = log_path(name);
        let stderr = std::fs::File::create(&log).expect("create the server's log file");
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(WRAPPER)
            .arg("sh")
            .arg(binary())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr);
        for (k, v) in env {
            command.env(k, v);
        }
        let mut wrapper = command.spawn().expect("start sh to run the example server");
        let stdin = wrapper.stdin.take();
        let mut stdout = BufReader::new(wrapper.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        let pid = first
            .trim()
            .strip_prefix("pid ")
            .and_then(|p| p.parse().ok())
            .expect("the wrapper prints the pid");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in stdout.lines() {
                let Ok(line) = line else { break };
                let parsed = if let Some(addr) = line.strip_prefix("listening on http://") {
                    addr.parse().map_or(Line::Other, Line::Listening)
                } else if let Some(code) = line.strip_prefix("exit ") {
                    Line::Exit(code.trim().parse().ok())
                } else {
                    Line::Other
                };
                if tx.send(parsed).is_err() {
                    break;
                }
            }
        });
        Self {
            name: name.to_owned(),
            pid,
            wrapper,
            stdin,
            lines,
            addr: None,
            exit: None,
            log,
        }
    }

    /// Starts the server and waits until it listens.
    ///
    /// # Panics
    ///
    /// When it exits first or does not listen within 30 s (with its log).
    pub fn start(name: &str, env: &[(&str, String)]) -> Self {
        let mut server = Self::spawn(name, env);
        match server.wait_listening(START_LIMIT) {
            Ok(_) => server,
            Err(e) => panic!("{e}"),
        }
    }

    /// Waits for `listening on`, or for the process to exit (an `Err` with the log).
    pub fn wait_listening(&mut self, limit: Duration) -> Result<SocketAddr, String> {
        if let Some(addr) = self.addr {
            return Ok(addr);
        }
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(Line::Listening(addr)) => {
                    self.addr = Some(addr);
                    return Ok(addr);
                }
                Ok(Line::Exit(code)) => {
                    self.exit = Some(code);
                    return Err(format!(
                        "server {} exited ({code:?}) before listening:\n{}",
                        self.name,
                        self.log()
                    ));
                }
                Ok(Line::Other) => {}
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    return Err(format!(
                        "server {} did not listen within {limit:?}:\n{}",
                        self.name,
                        self.log()
                    ));
                }
            }
        }
    }

    /// Waits for the process to exit; `Ok(exit code)` (`None` for a signal), or `Err`
    /// when it is still running after `limit`. Records a `listening on` seen meanwhile.
    pub fn wait_exit(&mut self, limit: Duration) -> Result<Option<i32>, ()> {
        if let Some(code) = self.exit {
            return Ok(code);
        }
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(Line::Exit(code)) => {
                    self.exit = Some(code);
                    return Ok(code);
                }
                Ok(Line::Listening(addr)) => self.addr = Some(addr),
                Ok(Line::Other) => {}
                Err(_) => return Err(()),
            }
        }
    }

    /// The address it listens on.
    ///
    /// # Panics
    ///
    /// Before it listened.
    pub fn addr(&self) -> SocketAddr {
        self.addr.expect("the server listens")
    }

    /// Whether it printed `listening on`.
    pub fn listened(&self) -> bool {
        self.addr.is_some()
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its stderr so far (the log, at `RUST_LOG=warn` unless set otherwise).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its resident set size in KiB (`VmRSS` in `/proc/<pid>/status`), while it runs.
    pub fn rss_kib(&self) -> Option<u64> {
        rss_kib(self.pid)
    }

    /// Sends a signal (`-STOP`, `-CONT`, ...) to the server process.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} {}", self.pid);
    }

    /// Kills it (SIGKILL, which also ends a stopped process) and reaps the wrapper.
    pub fn kill(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.flush();
        }
        let _ = self.wrapper.wait();
    }
}

impl Drop for ExampleServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// The resident set size of a process in KiB, from `/proc/<pid>/status`.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
