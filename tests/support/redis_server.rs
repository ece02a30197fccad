//! A real `redis-server` for tests, on a free loopback port in its own directory, with
//! an append-only file so a restart keeps its data. Never a mock.
//!
//! [`RedisServer::start_replica`] starts a replica of another server,
//! [`RedisServer::start_restartable_with`] a node with any settings (a cluster node, see
//! `redis_cluster.rs`), and
//! [`RedisServer::start_sentinel`] a sentinel (`redis-server <conf> --sentinel`)
//! watching a primary; [`RedisServer::query`] reads any reply (arrays included).
//!
//! The server runs under a small `sh` wrapper that kills it when its stdin closes, so a
//! test binary that exits (or crashes) never leaves a server behind, even one kept in a
//! `static`.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Kills the server when stdin closes; optionally removes the data directory too.
const WRAPPER: &str = r#"
clean="$1"; dir="$2"; shift 2
redis-server "$@" &
pid=$!
echo "$pid"
read _ignored
kill -CONT "$pid" 2>/dev/null
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
if [ "$clean" = 1 ]; then rm -rf "$dir"; fi
"#;

pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    /// The wrapper of the running server; `None` while stopped.
    wrapper: Option<Child>,
    pid: u32,
    /// Whether the wrapper removes the directory (a server that is never restarted).
    clean_on_exit: bool,
    /// Extra `redis-server` arguments, after the defaults (later ones win).
    extra: Vec<String>,
    /// Extra environment of `redis-server` (and its wrapper), kept for restarts.
    env: Vec<(String, String)>,
    /// A sentinel's configuration file (`None`: a data node).
    sentinel_conf: Option<PathBuf>,
}

/// A reply, as RESP says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resp {
    /// `+...`
    Simple(String),
    /// `-...`
    Error(String),
    /// `:...`
    Int(i64),
    /// `$...` (`None`: nil)
    Bulk(Option<Vec<u8>>),
    /// `*...` (`None`: nil)
    Array(Option<Vec<Resp>>),
}

impl Resp {
    /// A bulk or simple string as text.
    pub fn text(&self) -> Option<String> {
        match self {
            Self::Simple(s) => Some(s.clone()),
            Self::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }

    /// The items of an array (empty for anything else).
    pub fn items(&self) -> &[Resp] {
        match self {
            Self::Array(Some(items)) => items,
            _ => &[],
        }
    }
}

fn read_resp(reader: &mut impl BufRead) -> std::io::Result<Resp> {
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line)?;
    let text = String::from_utf8_lossy(&line).trim_end().to_owned();
    let bad = || std::io::Error::other(format!("bad RESP line {text:?}"));
    let (kind, rest) = (text.chars().next().ok_or_else(bad)?, &text[1..]);
    Ok(match kind {
        '+' => Resp::Simple(rest.to_owned()),
        '-' => Resp::Error(rest.to_owned()),
        ':' => Resp::Int(rest.parse().map_err(|_| bad())?),
        '$' => {
            let len: i64 = rest.parse().map_err(|_| bad())?;
            if len < 0 {
                Resp::Bulk(None)
            } else {
                let mut body = vec![0; len as usize + 2];
                reader.read_exact(&mut body)?;
                body.truncate(len as usize);
                Resp::Bulk(Some(body))
            }
        }
        '*' => {
            let len: i64 = rest.parse().map_err(|_| bad())?;
            if len < 0 {
                Resp::Array(None)
            } else {
                let mut items = Vec::with_capacity(len as usize);
                for _ in 0..len {
                    items.push(read_resp(reader)?);
                }
                Resp::Array(Some(items))
            }
        }
        _ => return Err(bad()),
    })
}

/// One request in RESP, its whole reply.
pub fn query_port(port: u16, args: &[&str], timeout: Duration) -> std::io::Result<Resp> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(req.as_bytes())?;
    read_resp(&mut BufReader::new(s))
}

fn require_redis_server() {
    match Command::new("redis-server").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        _ => panic!(
            "redis-server is not installed, and the Redis store tests (feature `redis`) need a \
             real one: install it with `apt-get install -y redis-server` (Debian/Ubuntu) or \
             `brew install redis` (macOS), then run the tests again"
        ),
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

fn fresh_dir() -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "tower-jwt-auth-redis-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the redis data directory");
    dir
}

/// One request in RESP, one reply line (enough for PING and INFO-style checks).
fn raw_command(port: u16, args: &[&str], timeout: Duration) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(req.as_bytes())?;
    let mut reader = BufReader::new(s);
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line)?;
    if line.first() == Some(&b'$') {
        let len: i64 = std::str::from_utf8(&line[1..])
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        if len < 0 {
            return Ok(Vec::new());
        }
        let mut body = vec![0; len as usize + 2];
        reader.read_exact(&mut body)?;
        body.truncate(len as usize);
        return Ok(body);
    }
    Ok(line)
}

impl RedisServer {
    /// Starts a server that is never restarted (its directory goes with it).
    pub fn start() -> Self {
        Self::launch(free_port(), fresh_dir(), true, &[])
    }

    /// Like [`start`](Self::start), with extra `redis-server` arguments such as
    /// `["--appendfsync", "everysec"]`.
    pub fn start_with(extra: &[&str]) -> Self {
        Self::launch(free_port(), fresh_dir(), true, extra)
    }

    /// Starts a server that tests may stop and restart on the same port and data.
    pub fn start_restartable() -> Self {
        Self::launch(free_port(), fresh_dir(), false, &[])
    }

    /// Like [`start_restartable`](Self::start_restartable), with extra `redis-server`
    /// arguments, which every restart keeps.
    pub fn start_restartable_with(extra: &[&str]) -> Self {
        Self::launch(free_port(), fresh_dir(), false, extra)
    }

    /// Whether the server is running (started, and not stopped since).
    pub fn is_running(&self) -> bool {
        self.wrapper.is_some()
    }

    /// A cluster node's id (`CLUSTER MYID`).
    pub fn cluster_id(&self) -> String {
        self.query(&["CLUSTER", "MYID"])
            .text()
            .expect("CLUSTER MYID answers an id")
    }

    /// The id of the primary a cluster replica replicates (`CLUSTER NODES`, its own
    /// line); `None` for a primary.
    pub fn replica_of(&self) -> Option<String> {
        let nodes = query_port(self.port, &["CLUSTER", "NODES"], Duration::from_secs(2))
            .ok()?
            .text()?;
        let line = nodes.lines().find(|l| l.contains("myself"))?;
        let fields: Vec<&str> = line.split(' ').collect();
        let flags = fields.get(2)?;
        (flags.contains("slave") || flags.contains("replica"))
            .then(|| fields.get(3).map(|s| (*s).to_owned()))
            .flatten()
    }

    /// Like [`start`](Self::start), with extra environment for `redis-server`, such as
    /// a [`ShiftedClock`](super::shifted_clock::ShiftedClock)'s `LD_PRELOAD`.
    pub fn start_with_env(env: &[(&str, String)]) -> Self {
        Self::launch_with_env(free_port(), fresh_dir(), true, &[], env)
    }

    /// Like [`start_restartable`](Self::start_restartable), with extra environment for
    /// `redis-server`, which every restart keeps.
    pub fn start_restartable_with_env(env: &[(&str, String)]) -> Self {
        Self::launch_with_env(free_port(), fresh_dir(), false, &[], env)
    }

    /// One server shared by every test of the binary; stopped when the binary exits.
    pub fn shared() -> &'static RedisServer {
        static SERVER: OnceLock<RedisServer> = OnceLock::new();
        SERVER.get_or_init(Self::start)
    }

    fn launch(port: u16, dir: PathBuf, clean_on_exit: bool, extra: &[&str]) -> Self {
        Self::launch_with_env(port, dir, clean_on_exit, extra, &[])
    }

    fn launch_with_env(
        port: u16,
        dir: PathBuf,
        clean_on_exit: bool,
        extra: &[&str],
        env: &[(&str, String)],
    ) -> Self {
        if let Err(missing) = std::panic::catch_unwind(require_redis_server) {
            let _ = std::fs::remove_dir_all(&dir);
            std::panic::resume_unwind(missing);
        }
        let mut server = Self {
            port,
            dir,
            wrapper: None,
            pid: 0,
            clean_on_exit,
            extra: extra.iter().map(|&a| a.to_owned()).collect(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
            sentinel_conf: None,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        require_redis_server();
        let dir = self.dir.to_str().unwrap().to_owned();
        let port = self.port.to_string();
        let log = self.dir.join("redis.log");
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(WRAPPER)
            .arg("sh")
            .arg(if self.clean_on_exit { "1" } else { "0" })
            .arg(&dir);
        if let Some(conf) = &self.sentinel_conf {
            command.arg(conf).arg("--sentinel");
        } else {
            command
                .args(["--port", &port, "--bind", "127.0.0.1", "--dir", &dir])
                .args([
                    "--save",
                    "",
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "always",
                ])
                .args(["--daemonize", "no", "--logfile", log.to_str().unwrap()]);
        }
        let mut child = command
            .args(&self.extra)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sh to run redis-server");
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        self.pid = first.trim().parse().expect("the wrapper prints the pid");
        self.wrapper = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(reply) = raw_command(self.port, &["PING"], Duration::from_millis(500))
                && reply.starts_with(b"+PONG")
            {
                return;
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
                panic!("redis-server on port {} did not start:\n{log}", self.port);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `redis-server` process id (of the current run).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Sends one command; returns its whole reply.
    pub fn query(&self, args: &[&str]) -> Resp {
        query_port(self.port, args, Duration::from_secs(5)).expect("redis command")
    }

    /// `host:port` on loopback.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts a replica of `primary` (`--replicaof`), restartable, and waits until its
    /// link to the primary is up.
    pub fn start_replica(primary: &RedisServer) -> Self {
        let port = primary.port.to_string();
        let replica = Self::launch(
            free_port(),
            fresh_dir(),
            false,
            &["--replicaof", "127.0.0.1", &port],
        );
        replica.wait_replicating();
        replica
    }

    /// Waits until this replica's link to its primary is up (`master_link_status:up`).
    pub fn wait_replicating(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let info = self.command(&["INFO", "replication"]);
            if String::from_utf8_lossy(&info).contains("master_link_status:up") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "replica on {} not linked to its primary: {}",
                self.port,
                String::from_utf8_lossy(&info)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the node says it is a master (`ROLE`).
    pub fn is_master(&self) -> bool {
        query_port(self.port, &["ROLE"], Duration::from_secs(2))
            .ok()
            .and_then(|r| r.items().first().and_then(Resp::text))
            .is_some_and(|role| role == "master")
    }

    /// From now on, this node restarts as a replica of `primary` (its data then comes
    /// from it), as an operator brings a failed primary back.
    pub fn become_replica_on_restart(&mut self, primary: &RedisServer) {
        let mut kept = Vec::new();
        let mut skip = 0;
        for a in std::mem::take(&mut self.extra) {
            if skip > 0 {
                skip -= 1;
                continue;
            }
            if a == "--replicaof" {
                skip = 2;
                continue;
            }
            kept.push(a);
        }
        kept.extend([
            "--replicaof".to_owned(),
            "127.0.0.1".to_owned(),
            primary.port.to_string(),
        ]);
        self.extra = kept;
    }

    /// Starts a sentinel (`redis-server <conf> --sentinel`) that watches `primary`
    /// under `master`, with a quorum of `quorum`, declaring it down after
    /// `down_after_ms` without an answer.
    pub fn start_sentinel(
        primary: &RedisServer,
        master: &str,
        quorum: u32,
        down_after_ms: u64,
        failover_timeout_ms: u64,
    ) -> Self {
        let port = free_port();
        let dir = fresh_dir();
        let conf = dir.join("sentinel.conf");
        let log = dir.join("redis.log");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndaemonize no\ndir {dir}\nlogfile {log}\n\
                 sentinel monitor {master} 127.0.0.1 {primary} {quorum}\n\
                 sentinel down-after-milliseconds {master} {down_after_ms}\n\
                 sentinel failover-timeout {master} {failover_timeout_ms}\n\
                 sentinel parallel-syncs {master} 1\n",
                dir = dir.display(),
                log = log.display(),
                primary = primary.port,
            ),
        )
        .expect("write the sentinel's configuration");
        let mut sentinel = Self {
            port,
            dir,
            wrapper: None,
            pid: 0,
            clean_on_exit: true,
            extra: Vec::new(),
            env: Vec::new(),
            sentinel_conf: Some(conf),
        };
        sentinel.spawn();
        sentinel
    }

    /// A sentinel's answer to `SENTINEL get-master-addr-by-name`, as `host:port`.
    pub fn sentinel_master_addr(&self, master: &str) -> Option<String> {
        let reply = query_port(
            self.port,
            &["SENTINEL", "get-master-addr-by-name", master],
            Duration::from_secs(2),
        )
        .ok()?;
        let items = reply.items();
        Some(format!(
            "{}:{}",
            items.first()?.text()?,
            items.get(1)?.text()?
        ))
    }

    /// How many replicas and other sentinels this sentinel knows for `master`.
    pub fn sentinel_knows(&self, master: &str) -> (usize, usize) {
        let count = |what: &str| {
            query_port(
                self.port,
                &["SENTINEL", what, master],
                Duration::from_secs(2),
            )
            .map(|r| r.items().len())
            .unwrap_or(0)
        };
        (count("replicas"), count("sentinels"))
    }

    /// Sends one command; returns the first reply line (or a bulk string's body).
    pub fn command(&self, args: &[&str]) -> Vec<u8> {
        raw_command(self.port, args, Duration::from_secs(5)).expect("redis command")
    }

    /// Redis's own clock (`TIME`), in microseconds since the Unix epoch.
    pub fn time_micros(&self) -> u64 {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to redis");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"*1\r\n$4\r\nTIME\r\n").expect("send TIME");
        let mut reader = BufReader::new(s);
        let mut line = String::new();
        reader.read_line(&mut line).expect("read TIME");
        assert_eq!(line.trim(), "*2", "TIME answers two bulk strings");
        let mut parts = [0_u64; 2];
        for part in &mut parts {
            line.clear();
            reader.read_line(&mut line).expect("read TIME");
            assert!(line.starts_with('$'), "a bulk string: {line:?}");
            line.clear();
            reader.read_line(&mut line).expect("read TIME");
            *part = line.trim().parse().expect("a number");
        }
        parts[0] * 1_000_000 + parts[1]
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.pid.to_string()])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill {sig} {}", self.pid);
    }

    /// Kills the server outright (SIGKILL, like a crash). With `appendfsync always`,
    /// every acknowledged write is already in the append-only file.
    pub fn stop(&mut self) {
        if let Some(mut wrapper) = self.wrapper.take() {
            drop(wrapper.stdin.take());
            let _ = wrapper.wait();
        }
    }

    /// Starts the server again on the same port and data directory.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Starts the server again on the same port with its data gone, as a failover to a
    /// replica that never had it would look to a client.
    pub fn restart_empty(&mut self) {
        self.stop();
        for entry in std::fs::read_dir(&self.dir).expect("the data directory") {
            let path = entry.expect("a data directory entry").path();
            if path.is_dir() {
                std::fs::remove_dir_all(&path).expect("remove the append-only files");
            } else if path.extension().is_some_and(|e| e == "rdb") {
                std::fs::remove_file(&path).expect("remove the snapshot");
            }
        }
        self.spawn();
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing is answered.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Resumes a frozen server (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        if !self.clean_on_exit {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A `RedisStore` on `server` under `prefix`, with the default settings.
pub async fn connect(server: &RedisServer, prefix: &str) -> tower_jwt_auth::RedisStore {
    tower_jwt_auth::RedisStore::connect(
        tower_jwt_auth::RedisConfig::new(server.url()).prefix(prefix),
    )
    .await
    .expect("connect to the test redis-server")
}

/// The store's answer for `t`, which a Redis store must give synchronously.
pub fn ready(
    store: &tower_jwt_auth::RedisStore,
    t: &tower_jwt_auth::TokenInfo,
) -> tower_jwt_auth::RevocationStatus {
    use tower_jwt_auth::RevocationStore;
    match store.check(t) {
        tower_jwt_auth::Check::Ready(result) => result.expect("check failed"),
        tower_jwt_auth::Check::Pending(_) => {
            panic!("the Redis store must answer checks synchronously")
        }
    }
}

/// Polls `done` every 5 ms until it holds, for at most `limit` (then fails the test,
/// naming `what`); returns how long it took. For what a background task or another
/// process does in its own time (a feed catching up, a failover).
pub async fn eventually(limit: Duration, what: &str, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    start.elapsed()
}
