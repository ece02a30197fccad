//! Keeping the local mirror current: the start-up load, the change feed, catch-up after a
//! reconnect, the full resync, and the periodic sweep.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ::redis::aio::MultiplexedConnection;
use ::redis::{AsyncConnectionConfig, Client, Value};

use super::error::{RedisStoreError, RedisStoreErrorKind};
use super::keys::{self, Keys};
use super::scripts;
use crate::clock;
use crate::store::memory::MemoryStore;
use crate::store::{RevokedToken, SubjectCutoff};

/// How many feed entries one read returns at most.
const FEED_BATCH: usize = 1_000;
/// About how many members one read of the start-up load returns.
const LOAD_WINDOW: usize = 10_000;
/// How many such reads go in one round trip.
const LOAD_WINDOWS_PER_TRIP: usize = 8;
/// How often expired entries are swept from Redis (by every instance).
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// How many expired entries one sweep step removes at most (keeps each script short).
const SWEEP_LIMIT: usize = 1_000;
/// First reconnect delay; doubled per failure up to the configured maximum.
const MIN_BACKOFF: Duration = Duration::from_millis(50);
/// Longest time kept in Redis, whatever an entry asks for.
const MAX_KEEP_SECS: u64 = 100 * 365 * 24 * 3600;

/// The state shared by the store's handles and its background task.
pub(super) struct Shared {
    pub(super) mirror: MemoryStore,
    epoch: Instant,
    /// When the mirror was last known to hold everything in Redis (µs after `epoch`).
    synced_at: AtomicU64,
}

impl Shared {
    pub(super) fn new() -> Self {
        Self {
            mirror: MemoryStore::new(),
            epoch: Instant::now(),
            synced_at: AtomicU64::new(0),
        }
    }

    fn mark_synced(&self) {
        let now = u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.synced_at.fetch_max(now, Ordering::Release);
    }

    /// How long ago the mirror was last known to be current.
    pub(super) fn age(&self) -> Duration {
        let synced = Duration::from_micros(self.synced_at.load(Ordering::Acquire));
        self.epoch.elapsed().saturating_sub(synced)
    }
}

/// The timings the background task and the writers work with.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timing {
    pub(super) command: Duration,
    /// Bounds each read of a (re)load, which may carry tens of thousands of entries.
    pub(super) load: Duration,
    pub(super) connect: Duration,
    /// How long a feed read blocks in Redis when nothing happens: the heartbeat.
    pub(super) block: Duration,
    pub(super) max_backoff: Duration,
    pub(super) retention_ms: u64,
}

/// A `keep_until` clamped to what Redis (and a Lua double) can hold.
pub(super) fn clamp_keep(keep_until: u64) -> u64 {
    keep_until.min(clock::now_secs().saturating_add(MAX_KEEP_SECS))
}

/// Runs `fut` with a time limit, mapping both failures to a store error.
pub(super) async fn bounded<T>(
    limit: Duration,
    fut: impl Future<Output = ::redis::RedisResult<T>>,
) -> Result<T, RedisStoreError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(result) => result.map_err(RedisStoreError::from),
        Err(_) => Err(RedisStoreError::timeout()),
    }
}

fn unexpected() -> RedisStoreError {
    RedisStoreError::new(RedisStoreErrorKind::UnexpectedReply)
}

/// Reconnect delays: exponential with jitter, reset once a session has caught up.
struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    fn new(max: Duration) -> Self {
        Self {
            next: MIN_BACKOFF.min(max),
            max,
        }
    }

    fn reset(&mut self) {
        self.next = MIN_BACKOFF.min(self.max);
    }

    /// The delay before the next attempt: uniformly in [d/2, d], d doubling up to max.
    fn step(&mut self) -> Duration {
        let d = self.next;
        self.next = (d * 2).min(self.max);
        let half = d / 2;
        let jitter = f64::from(getrandom::u32().unwrap_or(u32::MAX / 2)) / f64::from(u32::MAX);
        half + half.mul_f64(jitter)
    }
}

/// The background follower: owns its own connection (a blocking read would stall any
/// other command sharing it) and the last feed id applied to the mirror.
pub(super) struct Feed {
    shared: Arc<Shared>,
    client: Client,
    keys: Arc<Keys>,
    timing: Timing,
    /// The id of the last feed entry applied (`0-0`: none).
    last: String,
}

impl Feed {
    pub(super) fn new(
        shared: Arc<Shared>,
        client: Client,
        keys: Arc<Keys>,
        timing: Timing,
    ) -> Self {
        Self {
            shared,
            client,
            keys,
            timing,
            last: "0-0".to_owned(),
        }
    }

    /// Opens the follower's connection. No response timeout at the client level: a feed
    /// read blocks on purpose; every call is bounded here instead.
    pub(super) async fn connect(&self) -> Result<MultiplexedConnection, RedisStoreError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timing.connect))
            .set_response_timeout(None);
        bounded(
            self.timing.connect + self.timing.command,
            self.client
                .get_multiplexed_async_connection_with_config(&config),
        )
        .await
    }

    /// Follows the feed forever: reconnects with backoff after any failure, catches up,
    /// and carries on. Dropping the future stops it.
    pub(super) async fn run(mut self, mut conn: Option<MultiplexedConnection>) {
        let mut backoff = Backoff::new(self.timing.max_backoff);
        loop {
            let mut c = match conn.take() {
                Some(c) => c,
                None => match self.connect().await {
                    Ok(c) => c,
                    Err(_) => {
                        tokio::time::sleep(backoff.step()).await;
                        continue;
                    }
                },
            };
            // `follow` only returns on failure; the connection is then dropped.
            let Err(_) = self.follow(&mut c, &mut backoff).await;
            drop(c);
            tokio::time::sleep(backoff.step()).await;
        }
    }

    async fn follow(
        &mut self,
        c: &mut MultiplexedConnection,
        backoff: &mut Backoff,
    ) -> Result<Infallible, RedisStoreError> {
        self.catch_up(c).await?;
        backoff.reset();
        let mut next_sweep = Instant::now();
        loop {
            if Instant::now() >= next_sweep {
                match self.sweep(c).await {
                    // A Redis that refuses writes (out of memory, a replica) must not stop
                    // the feed; the sweep only frees memory.
                    Err(e) if e.kind() != RedisStoreErrorKind::Server => return Err(e),
                    _ => {}
                }
                next_sweep = Instant::now() + SWEEP_INTERVAL;
            }
            let n = self.read_blocking(c).await?;
            if n == FEED_BATCH {
                // Behind: read on without blocking, with the trim check.
                self.catch_up(c).await?;
            } else {
                self.shared.mark_synced();
            }
        }
    }

    /// Reads everything after the last id; resyncs from the sets if some of it was
    /// trimmed away or lost. Marks the mirror synced once nothing is left.
    ///
    /// Trimming only ever removes the oldest entries, so a read after the last id is
    /// complete exactly when the stream's first entry is at or before that id; both are
    /// read in one `MULTI` so nothing is trimmed in between. An empty or missing stream
    /// is complete only for a reader that has seen nothing (`0-0`). Only reads: this
    /// works on a Redis that refuses writes (out of memory, say).
    pub(super) async fn catch_up(
        &mut self,
        c: &mut MultiplexedConnection,
    ) -> Result<(), RedisStoreError> {
        loop {
            let mut read = ::redis::pipe();
            read.atomic()
                .cmd("XRANGE")
                .arg(&self.keys.feed)
                .arg("-")
                .arg("+")
                .arg("COUNT")
                .arg(1)
                .cmd("XRANGE")
                .arg(&self.keys.feed)
                .arg(format!("({}", self.last))
                .arg("+")
                .arg("COUNT")
                .arg(FEED_BATCH);
            let (first, entries): (Value, Value) =
                bounded(self.timing.command, read.query_async(c)).await?;
            let (Value::Array(first), Value::Array(entries)) = (first, entries) else {
                return Err(unexpected());
            };
            let complete = match first.first() {
                None => self.last == "0-0",
                Some(entry) => parse_id(entry_id(entry)?) <= parse_id(&self.last),
            };
            if !complete {
                self.resync(c).await?;
                continue;
            }
            let n = entries.len();
            self.apply_entries(entries)?;
            if n < FEED_BATCH {
                self.shared.mark_synced();
                return Ok(());
            }
        }
    }

    /// Loads every current entry from the sets, and sets the last id to the feed's
    /// newest entry as it was *before* the load: anything written during the load is
    /// either seen by the load or read from the feed afterwards (or both; applying an
    /// entry twice changes nothing).
    pub(super) async fn resync(
        &mut self,
        c: &mut MultiplexedConnection,
    ) -> Result<(), RedisStoreError> {
        let newest: Value = bounded(
            self.timing.command,
            ::redis::cmd("XREVRANGE")
                .arg(&self.keys.feed)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1)
                .query_async(c),
        )
        .await?;
        let start = match newest {
            Value::Array(mut entries) => match entries.pop() {
                Some(entry) => entry_id(&entry)?.to_owned(),
                None => "0-0".to_owned(),
            },
            _ => return Err(unexpected()),
        };
        // Replies are parsed here while another thread fills the mirror (a million
        // entries take seconds to insert; the reads overlap with that).
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Batch>(4);
        let shared = Arc::clone(&self.shared);
        let filler = tokio::task::spawn_blocking(move || {
            while let Some(batch) = rx.blocking_recv() {
                batch.apply(&shared);
            }
        });
        let loaded = async {
            self.load_denylist(c, &tx).await?;
            self.load_cutoffs(c, &tx).await
        }
        .await;
        drop(tx);
        // The filler ends once it has applied every batch sent.
        filler.await.map_err(|_| unexpected())?;
        loaded?;
        self.last = start;
        Ok(())
    }

    /// Reads the denylist in windows of scores (`keep_until`), each window one atomic
    /// `ZRANGEBYSCORE` of about `LOAD_WINDOW` members, several windows per round trip.
    ///
    /// The windows are bounded by the scores found at every `LOAD_WINDOW`-th rank and
    /// together cover every score, so each member present for the whole load is read
    /// (scores only grow, and windows are read in ascending order). Members added or
    /// moved during the load are in the feed after the load's starting id; members
    /// removed during it had expired. (`ZSCAN` would give the same guarantee, but is
    /// several times slower on the server.)
    async fn load_denylist(
        &self,
        c: &mut MultiplexedConnection,
        tx: &tokio::sync::mpsc::Sender<Batch>,
    ) -> Result<(), RedisStoreError> {
        let key = &self.keys.denylist;
        let len: usize = bounded(
            self.timing.load,
            ::redis::cmd("ZCARD").arg(key).query_async(c),
        )
        .await?;
        let mut bounds: Vec<u64> = Vec::new();
        if len > LOAD_WINDOW {
            let mut probes = ::redis::pipe();
            for rank in (LOAD_WINDOW..len).step_by(LOAD_WINDOW) {
                probes
                    .cmd("ZRANGE")
                    .arg(key)
                    .arg(rank)
                    .arg(rank)
                    .arg("WITHSCORES");
            }
            let replies: Vec<Value> = bounded(self.timing.load, probes.query_async(c)).await?;
            for reply in replies {
                // [member, score], or empty if the set shrank meanwhile.
                if let Some(score) = flat_pairs(reply)?.get(1).and_then(score)
                    && bounds.last().is_none_or(|&last| last < score)
                {
                    bounds.push(score);
                }
            }
        }
        // (-inf, b1), [b1, b2), ..., [bk, +inf)
        let mut windows = Vec::with_capacity(bounds.len() + 1);
        let mut low = "-inf".to_owned();
        for bound in bounds {
            windows.push((low, format!("({bound}")));
            low = bound.to_string();
        }
        windows.push((low, "+inf".to_owned()));

        for group in windows.chunks(LOAD_WINDOWS_PER_TRIP) {
            let mut pipe = ::redis::pipe();
            for (low, high) in group {
                pipe.cmd("ZRANGEBYSCORE")
                    .arg(key)
                    .arg(low)
                    .arg(high)
                    .arg("WITHSCORES");
            }
            let replies: Vec<Value> = bounded(self.timing.load, pipe.query_async(c)).await?;
            for reply in replies {
                let items = flat_pairs(reply)?;
                tx.send(Batch::Tokens(items))
                    .await
                    .map_err(|_| unexpected())?;
            }
        }
        Ok(())
    }

    /// Reads every cutoff: with one atomic `HGETALL` when there are not too many (the
    /// usual case: one per subject that logged out everywhere within a token lifetime),
    /// else with `HSCAN`, which returns every field present for the whole scan.
    async fn load_cutoffs(
        &self,
        c: &mut MultiplexedConnection,
        tx: &tokio::sync::mpsc::Sender<Batch>,
    ) -> Result<(), RedisStoreError> {
        let key = &self.keys.cutoffs;
        let len: usize = bounded(
            self.timing.load,
            ::redis::cmd("HLEN").arg(key).query_async(c),
        )
        .await?;
        if len <= 5 * LOAD_WINDOW {
            let reply: Value = bounded(
                self.timing.load,
                ::redis::cmd("HGETALL").arg(key).query_async(c),
            )
            .await?;
            let items = flat_pairs(reply)?;
            return tx
                .send(Batch::Cutoffs(items))
                .await
                .map_err(|_| unexpected());
        }
        let mut cursor = b"0".to_vec();
        loop {
            let reply: Value = bounded(
                self.timing.load,
                ::redis::cmd("HSCAN")
                    .arg(key)
                    .arg(&cursor)
                    .arg("COUNT")
                    .arg(LOAD_WINDOW)
                    .query_async(c),
            )
            .await?;
            let Value::Array(mut parts) = reply else {
                return Err(unexpected());
            };
            let (Some(items), Some(Value::BulkString(next))) = (parts.pop(), parts.pop()) else {
                return Err(unexpected());
            };
            tx.send(Batch::Cutoffs(flat_pairs(items)?))
                .await
                .map_err(|_| unexpected())?;
            if next == b"0" {
                return Ok(());
            }
            cursor = next;
        }
    }

    /// One blocking feed read; returns how many entries it applied. The block time is
    /// the heartbeat: an idle but healthy link still answers every `block`.
    async fn read_blocking(
        &mut self,
        c: &mut MultiplexedConnection,
    ) -> Result<usize, RedisStoreError> {
        let block_ms = u64::try_from(self.timing.block.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let reply: Value = bounded(
            self.timing.block + self.timing.command,
            ::redis::cmd("XREAD")
                .arg("COUNT")
                .arg(FEED_BATCH)
                .arg("BLOCK")
                .arg(block_ms)
                .arg("STREAMS")
                .arg(&self.keys.feed)
                .arg(&self.last)
                .query_async(c),
        )
        .await?;
        let entries = match reply {
            Value::Nil => return Ok(0),
            // RESP2: [[key, entries]]; RESP3: {key: entries}.
            Value::Array(mut streams) => match streams.pop() {
                Some(Value::Array(mut pair)) if pair.len() == 2 => pair.pop(),
                _ => None,
            },
            Value::Map(mut streams) => streams.pop().map(|(_, v)| v),
            _ => None,
        };
        let Some(Value::Array(entries)) = entries else {
            return Err(unexpected());
        };
        let n = entries.len();
        self.apply_entries(entries)?;
        Ok(n)
    }

    /// Applies feed entries to the mirror in order and advances the last id.
    fn apply_entries(&mut self, entries: Vec<Value>) -> Result<(), RedisStoreError> {
        for entry in &entries {
            let id = entry_id(entry)?;
            let Value::Array(parts) = entry else {
                return Err(unexpected());
            };
            let fields = match parts.get(1) {
                Some(Value::Array(fields)) => fields.as_slice(),
                _ => return Err(unexpected()),
            };
            // An entry this store did not write is skipped, not fatal.
            let _ = self.apply_fields(fields);
            self.last.clear();
            self.last.push_str(id);
        }
        Ok(())
    }

    fn apply_fields(&self, fields: &[Value]) -> Option<()> {
        let (mut token, mut member, mut cutoff, mut keep) = (None, None, None, None);
        for pair in fields.chunks_exact(2) {
            let value = bytes(&pair[1])?;
            match bytes(&pair[0])? {
                b"j" => (token, member) = (Some(true), Some(value)),
                b"s" => (token, member) = (Some(false), Some(value)),
                b"c" => cutoff = Some(value),
                b"u" => keep = Some(parse_u64(value)?),
                _ => {}
            }
        }
        if token? {
            let (exp, iss, jti) = keys::parse_token_member(member?)?;
            let entry = RevokedToken::new(iss, jti, exp, keep?);
            self.shared.mirror.insert_token(&entry);
        } else {
            let (iss, sub) = keys::parse_member(member?)?;
            let entry = SubjectCutoff::new(iss, sub, parse_u64(cutoff?)?, keep?);
            self.shared.mirror.insert_cutoff(&entry);
        }
        Some(())
    }

    /// Removes expired entries from Redis, a bounded batch per script call.
    async fn sweep(&self, c: &mut MultiplexedConnection) -> Result<(), RedisStoreError> {
        loop {
            let removed: usize = bounded(
                self.timing.command,
                scripts::SWEEP
                    .key(&self.keys.denylist)
                    .key(&self.keys.cutoffs)
                    .key(&self.keys.cutoff_expiry)
                    .arg(SWEEP_LIMIT)
                    .invoke_async(c),
            )
            .await?;
            if removed < SWEEP_LIMIT {
                return Ok(());
            }
        }
    }
}

/// A page of loaded (member, score or value) pairs, flattened, for the filler thread.
enum Batch {
    /// Denylist members and their `keep_until` scores.
    Tokens(Vec<Value>),
    /// Cutoff fields and their `"<cutoff>:<keep_until>"` values.
    Cutoffs(Vec<Value>),
}

impl Batch {
    /// Applies the pairs to the mirror; a pair this store did not write is skipped.
    fn apply(&self, shared: &Shared) {
        let (Self::Tokens(items) | Self::Cutoffs(items)) = self;
        for pair in items.chunks_exact(2) {
            let Some(member) = bytes(&pair[0]) else {
                continue;
            };
            match self {
                Self::Tokens(_) => {
                    if let Some((exp, iss, jti)) = keys::parse_token_member(member)
                        && let Some(keep) = score(&pair[1])
                    {
                        shared
                            .mirror
                            .insert_token(&RevokedToken::new(iss, jti, exp, keep));
                    }
                }
                Self::Cutoffs(_) => {
                    if let Some((iss, id)) = keys::parse_member(member)
                        && let Some((cutoff, keep)) = bytes(&pair[1]).and_then(parse_cutoff)
                    {
                        shared
                            .mirror
                            .insert_cutoff(&SubjectCutoff::new(iss, id, cutoff, keep));
                    }
                }
            }
        }
    }
}

/// A reply of (member, score) or (field, value) pairs as one flat list (RESP2 arrays;
/// RESP3 may send maps or nested pairs).
fn flat_pairs(reply: Value) -> Result<Vec<Value>, RedisStoreError> {
    match reply {
        Value::Array(items)
            if items.iter().all(|v| matches!(v, Value::Array(_))) && !items.is_empty() =>
        {
            let mut flat = Vec::with_capacity(items.len() * 2);
            for item in items {
                let Value::Array(pair) = item else {
                    unreachable!()
                };
                flat.extend(pair);
            }
            Ok(flat)
        }
        Value::Array(items) => Ok(items),
        Value::Map(pairs) => Ok(pairs.into_iter().flat_map(|(k, v)| [k, v]).collect()),
        Value::Nil => Ok(Vec::new()),
        _ => Err(unexpected()),
    }
}

fn bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

fn entry_id(entry: &Value) -> Result<&str, RedisStoreError> {
    match entry {
        Value::Array(parts) => parts
            .first()
            .and_then(bytes)
            .and_then(|b| std::str::from_utf8(b).ok())
            .ok_or_else(unexpected),
        _ => Err(unexpected()),
    }
}

/// A sorted-set score: a string in RESP2, a double in RESP3.
fn score(v: &Value) -> Option<u64> {
    match v {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Value::Double(f) if f.is_finite() && *f >= 0.0 => Some(*f as u64),
        Value::Int(i) => u64::try_from(*i).ok(),
        other => parse_u64(bytes(other)?),
    }
}

/// A stream id `<ms>-<seq>` as a comparable pair; anything else sorts last (an
/// unreadable first entry forces a resync rather than a skipped entry).
fn parse_id(id: &str) -> (u64, u64) {
    id.split_once('-')
        .and_then(|(ms, seq)| Some((ms.parse().ok()?, seq.parse().ok()?)))
        .unwrap_or((u64::MAX, u64::MAX))
}

fn parse_u64(raw: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(raw).ok()?;
    s.parse().ok().or_else(|| {
        // A score Redis chose to print as a float ("1.7e9").
        let f: f64 = s.parse().ok()?;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        (f.is_finite() && f >= 0.0).then_some(f as u64)
    })
}

/// `"<cutoff_micros>:<keep_until>"`.
fn parse_cutoff(raw: &[u8]) -> Option<(u64, u64)> {
    let colon = raw.iter().position(|&b| b == b':')?;
    Some((parse_u64(&raw[..colon])?, parse_u64(&raw[colon + 1..])?))
}
