//! The follower: the background task that keeps the mirror current by reading the
//! change feed, reconnecting and catching up after any failure.
//!
//! It owns one connection (a blocking read would stall any other command sharing it)
//! and the id of the last feed entry it applied. Each blocking read that leaves nothing
//! unread marks the mirror synced as of the moment the read was sent (what Redis held
//! then is what the mirror now holds; the reply may arrive much later); the read's
//! block time is the heartbeat. Nothing else
//! runs on this path: the sweep of expired entries is a task of its own (`sweep.rs`), so
//! however much it has to remove, the feed is never held up by it.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::redis::aio::MultiplexedConnection;
use ::redis::{RedisResult, Value};

use super::entry::{self, Entry};
use super::error::RedisStoreError;
use super::keys::Keys;
use super::load;
use super::mirror::Shared;
use super::reply::{bytes, entry_id, entry_parts, parse_id, stream_entries, unexpected};
use super::scripts;
use super::sentinel::Primary;
use super::timing::{Timing, bounded};

/// How many feed entries one read returns at most.
const FEED_BATCH: usize = 1_000;
/// How many times an owed cutoff is tried while logins change its subject's sessions.
const OWED_CUTOFF_TRIES: usize = 3;
/// First reconnect delay; doubled per failure up to the configured maximum.
const MIN_BACKOFF: Duration = Duration::from_millis(50);

/// The background follower and the last feed id it applied to the mirror.
pub(super) struct Feed {
    shared: Arc<Shared>,
    primary: Arc<Primary>,
    keys: Arc<Keys>,
    timing: Timing,
    /// The id of the last feed entry applied (`0-0`: none).
    last: String,
    /// The stream's `entries-added` count (Redis 7+) when its newest entry was `last`,
    /// if known: with it, a read after a trim can tell whether anything after `last`
    /// was trimmed away (see [`Feed::catch_up`]).
    added_at_last: Option<u64>,
}

impl Feed {
    /// A follower that has applied nothing yet; [`load`](Self::load) and
    /// [`catch_up`](Self::catch_up) bring it up to date, [`run`](Self::run) follows on.
    pub(super) fn new(
        shared: Arc<Shared>,
        primary: Arc<Primary>,
        keys: Arc<Keys>,
        timing: Timing,
    ) -> Self {
        Self {
            shared,
            primary,
            keys,
            timing,
            last: "0-0".to_owned(),
            added_at_last: None,
        }
    }

    /// Opens the follower's connection (to the primary the sentinels name, if any).
    pub(super) async fn connect(&self) -> Result<MultiplexedConnection, RedisStoreError> {
        self.primary.connect(&self.timing).await
    }

    /// Follows the feed forever: reconnects with backoff after any failure, catches up,
    /// and carries on. Dropping the future stops it.
    pub(super) async fn run(mut self, mut conn: Option<MultiplexedConnection>) {
        let mut backoff = Backoff::new(self.timing.max_backoff);
        let mut outage = Outage::default();
        loop {
            let mut c = match conn.take() {
                Some(c) => c,
                None => match self.connect().await {
                    Ok(c) => c,
                    Err(e) => {
                        self.failed(&mut outage, &e);
                        tokio::time::sleep(backoff.step()).await;
                        continue;
                    }
                },
            };
            // `follow` only returns on failure; the connection is then dropped.
            let Err(e) = self.follow(&mut c, &mut backoff, &mut outage).await;
            drop(c);
            // With a cluster, a `MOVED` names where the next connection goes.
            self.primary.failed(&e);
            self.failed(&mut outage, &e);
            tokio::time::sleep(backoff.step()).await;
        }
    }

    /// Reports a failure of the feed's link: at `warn` for the first of an outage, at
    /// `debug` for the ones after; and the mirror's going stale once it has.
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    fn failed(&self, outage: &mut Outage, error: &RedisStoreError) {
        outage.failures += 1;
        if outage.since.is_none() {
            outage.since = Some(Instant::now());
            warn_event!(
                kind = ?error.kind(),
                error = %error,
                "revocation feed lost its Redis connection; reconnecting"
            );
        } else {
            debug_event!(
                kind = ?error.kind(),
                error = %error,
                failures = outage.failures,
                "revocation feed still cannot reach Redis"
            );
        }
        if self.shared.age() > self.timing.max_staleness {
            self.shared.report_stale(self.timing.max_staleness);
        }
    }

    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    async fn follow(
        &mut self,
        c: &mut MultiplexedConnection,
        backoff: &mut Backoff,
        outage: &mut Outage,
    ) -> Result<Infallible, RedisStoreError> {
        self.catch_up(c).await?;
        backoff.reset();
        if let Some(since) = outage.since.take() {
            self.shared.count_reconnect();
            info_event!(
                down_for = ?since.elapsed(),
                failures = outage.failures,
                "revocation feed reconnected and caught up"
            );
        }
        outage.failures = 0;
        loop {
            self.write_owed(c).await?;
            let sent = Instant::now();
            let n = self.read_blocking(c).await?;
            if n == FEED_BATCH {
                // Behind: read on without blocking, with the trim check.
                self.catch_up(c).await?;
            } else {
                // What Redis held when it answered is what the mirror holds now. It
                // answered entries at some point after `sent`; an empty reply once the
                // block ran out, at least `block` after it received the read (later
                // than `sent`), and before the reply was read here.
                let as_of = if n == 0 {
                    (sent + self.timing.block).min(Instant::now())
                } else {
                    sent
                };
                self.shared.mark_synced(as_of);
            }
        }
    }

    /// Reads everything after the last id; resyncs from the sets if some of it was
    /// trimmed away or lost, or if this stream is not the one the follower read. Marks
    /// the mirror synced once nothing is left, as of when the last read was sent.
    ///
    /// One `MULTI` reads the stream's first entry, the entries after the last id, the
    /// last id's own entry and `XINFO STREAM`, so nothing changes in between:
    ///
    /// - Trimming only ever removes the oldest entries, so the read is complete when the
    ///   first entry is at or before the last id. When it is after it, the read may
    ///   still be complete: after a quiet spell longer than the retention, the next
    ///   append trims the last entry read, and nothing after it. That is known when the
    ///   stream's `entries-added` (Redis 7+) grew by exactly the entries found after
    ///   the last id; without that count, the follower resyncs.
    /// - An empty stream is complete when its `last-generated-id` is the last id read.
    /// - A stream whose `last-generated-id` is before the last id, or that lacks the
    ///   last id's entry though it goes back further, is not the stream that was read: a
    ///   replica promoted before it had everything, or a Redis restarted without its
    ///   data. Waiting on it for ids it will never hold would miss what it does hold, so
    ///   the follower resyncs.
    ///
    /// Only reads: this works on a Redis that refuses writes (out of memory, say).
    pub(super) async fn catch_up(
        &mut self,
        c: &mut MultiplexedConnection,
    ) -> Result<(), RedisStoreError> {
        loop {
            let mut read = ::redis::pipe();
            read.atomic()
                .ignore_errors()
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
                .arg(FEED_BATCH)
                .cmd("XRANGE")
                .arg(&self.keys.feed)
                .arg(&self.last)
                .arg(&self.last)
                .cmd("XINFO")
                .arg("STREAM")
                .arg(&self.keys.feed);
            let sent = Instant::now();
            let replies: Vec<RedisResult<Value>> =
                bounded(self.timing.command, read.query_async(c)).await?;
            let mut replies = replies.into_iter();
            let mut next = || -> Result<Value, RedisStoreError> {
                replies
                    .next()
                    .ok_or_else(unexpected)?
                    .map_err(RedisStoreError::from)
            };
            let (Value::Array(first), Value::Array(entries), Value::Array(own)) =
                (next()?, next()?, next()?)
            else {
                return Err(unexpected());
            };
            // An error here: no such key (the stream is gone).
            let info = next().ok().map(StreamInfo::parse);
            let verdict = self.judge(
                first.first().map(entry_id).transpose()?,
                &entries,
                !own.is_empty(),
                info.as_ref(),
            );
            if let Some(reason) = verdict {
                self.resync(c, reason).await?;
                continue;
            }
            let n = entries.len();
            self.apply_entries(&entries)?;
            if n < FEED_BATCH {
                // Everything up to the newest entry is read.
                self.added_at_last = match info {
                    Some(info) => info.entries_added,
                    // No stream: nothing appended yet.
                    None => Some(0),
                };
                self.shared.mark_synced(sent);
                return Ok(());
            }
        }
    }

    /// Whether reading on from the last id would miss something (`Some(why)`: resync),
    /// given the stream's first entry, the entries after the last id, whether the last
    /// id's own entry is there, and `XINFO STREAM` (`None`: no stream).
    fn judge(
        &self,
        first: Option<&str>,
        after: &[Value],
        own_present: bool,
        info: Option<&StreamInfo>,
    ) -> Option<Resync> {
        let last = parse_id(&self.last);
        let never_read = self.last == "0-0";
        let Some(info) = info else {
            return (!never_read).then_some(Resync::Lost);
        };
        if let Some(generated) = info.last_generated
            && generated < last
        {
            return Some(Resync::Behind);
        }
        match first {
            None => {
                // Empty: complete if nothing was ever appended after the last id.
                let nothing_new = info.last_generated.is_none_or(|g| g == last);
                (!nothing_new).then_some(Resync::Trimmed)
            }
            Some(first) if parse_id(first) <= last => {
                (!never_read && !own_present).then_some(Resync::Replaced)
            }
            Some(_) => {
                // Trimmed past the last id: complete only if every entry appended since
                // is still there.
                let counted = match (self.added_at_last, info.entries_added) {
                    (Some(then), Some(now)) if after.len() < FEED_BATCH => {
                        now.checked_sub(then) == Some(after.len() as u64)
                    }
                    _ => false,
                };
                (!counted).then_some(Resync::Trimmed)
            }
        }
    }

    /// A full resync, reported with its reason.
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    async fn resync(
        &mut self,
        c: &mut MultiplexedConnection,
        reason: Resync,
    ) -> Result<(), RedisStoreError> {
        match reason {
            Resync::Trimmed | Resync::Lost => {
                warn_event!("revocation feed missed entries (trimmed or lost): full resync");
            }
            Resync::Behind | Resync::Replaced => {
                warn_event!(
                    "revocation feed is not the one this instance read (a failover to a \
                     replica that was behind, or Redis lost its data): full resync"
                );
            }
        }
        self.shared.count_resync();
        self.load(c).await
    }

    /// Loads every current entry from the sets (see `load.rs`) and reads the feed on from
    /// its newest entry as it was before the load; reports its size and time at `info`.
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    pub(super) async fn load(
        &mut self,
        c: &mut MultiplexedConnection,
    ) -> Result<(), RedisStoreError> {
        let started = Instant::now();
        let (last, loaded) = load::resync(c, &self.keys, &self.timing, &self.shared).await?;
        self.last = last;
        // Learnt again by the catch-up that follows.
        self.added_at_last = None;
        info_event!(
            entries = loaded,
            took = ?started.elapsed(),
            "revocations loaded from Redis"
        );
        Ok(())
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
        let entries = stream_entries(reply)?;
        self.apply_entries(&entries)?;
        Ok(entries.len())
    }

    /// Writes what applying entries showed Redis should be told (see
    /// `Shared::apply`): a longer retention, or a cutoff lowered. What could not be
    /// written is kept for the next try.
    async fn write_owed(&self, c: &mut MultiplexedConnection) -> Result<(), RedisStoreError> {
        let owed = self.shared.take_owed();
        for (i, owned) in owed.iter().enumerate() {
            if let Err(e) = self.write_one(c, &owned.entry()).await {
                self.shared.give_back(owed.into_iter().skip(i));
                return Err(e);
            }
        }
        Ok(())
    }

    /// Writes one owed entry. A cutoff first reads the subject's refresh sessions (the
    /// script is given every key it touches), and is tried again if a login changed
    /// them in between.
    async fn write_one(
        &self,
        c: &mut MultiplexedConnection,
        entry: &Entry<'_>,
    ) -> Result<(), RedisStoreError> {
        let script = match entry {
            Entry::Token(token) => scripts::revoke_token(&self.keys, &self.timing, token),
            Entry::Cutoff(cutoff) => {
                for _ in 0..OWED_CUTOFF_TRIES {
                    let read = scripts::subject_sessions(
                        &self.keys,
                        cutoff.issuer(),
                        cutoff.subject(),
                        None,
                    );
                    let sessions = bounded(self.timing.command, read.query_async(c)).await?;
                    let sessions =
                        scripts::session_keys(&self.keys, sessions).ok_or_else(unexpected)?;
                    let script =
                        scripts::revoke_subject(&self.keys, &self.timing, cutoff, &sessions);
                    let reply: Value = bounded(self.timing.command, script.invoke_async(c)).await?;
                    if reply != Value::Int(0) {
                        return Ok(());
                    }
                }
                // Logins kept changing the set: left for the next round.
                return Err(RedisStoreError::timeout());
            }
            Entry::Lowered(cutoff, from) => {
                scripts::lower_cutoff(&self.keys, &self.timing, cutoff, *from)
            }
            Entry::Session(session) => scripts::revoke_session(&self.keys, &self.timing, session),
        };
        bounded(self.timing.command, script.invoke_async::<Value>(c))
            .await
            .map(drop)
    }

    /// Applies feed entries to the mirror in order and advances the last id. An entry
    /// this store did not write is skipped, not fatal; an entry without an id is.
    fn apply_entries(&mut self, entries: &[Value]) -> Result<(), RedisStoreError> {
        for entry in entries {
            let (id, fields) = entry_parts(entry)?;
            if let Some(decoded) = entry::decode(fields) {
                self.shared.apply(&decoded);
            }
            self.last.clear();
            self.last.push_str(id);
        }
        // Consecutive entries: the count follows them.
        self.added_at_last = self.added_at_last.map(|added| added + entries.len() as u64);
        if !entries.is_empty() {
            let (appended_ms, _) = parse_id(&self.last);
            self.shared
                .record_applied(entries.len() as u64, appended_ms);
        }
        Ok(())
    }
}

/// Why the feed cannot be read on from the last id.
#[derive(Debug, Clone, Copy)]
enum Resync {
    /// Entries after the last id were trimmed away.
    Trimmed,
    /// The stream is gone.
    Lost,
    /// The stream ends before the last id (a replica promoted before it had it).
    Behind,
    /// The stream goes back past the last id but lacks its entry: another history.
    Replaced,
}

/// What `XINFO STREAM` says about the feed.
#[derive(Debug, Default)]
struct StreamInfo {
    /// `last-generated-id`: the newest id ever appended (`None`: not given).
    last_generated: Option<(u64, u64)>,
    /// `entries-added` (Redis 7+): how many entries were ever appended.
    entries_added: Option<u64>,
}

impl StreamInfo {
    /// Reads the fields it needs from the reply (RESP2 pairs or a RESP3 map); anything
    /// it cannot read is left `None`, which only makes the follower more cautious.
    fn parse(reply: Value) -> Self {
        let pairs: Vec<(Value, Value)> = match reply {
            Value::Array(items) => {
                let mut items = items.into_iter();
                let mut pairs = Vec::new();
                while let (Some(k), Some(v)) = (items.next(), items.next()) {
                    pairs.push((k, v));
                }
                pairs
            }
            Value::Map(pairs) => pairs,
            _ => Vec::new(),
        };
        let mut info = Self::default();
        for (key, value) in pairs {
            match (bytes(&key), &value) {
                (Some(b"last-generated-id"), v) => {
                    info.last_generated = bytes(v)
                        .and_then(|b| std::str::from_utf8(b).ok())
                        .map(parse_id)
                        .filter(|&id| id != (u64::MAX, u64::MAX));
                }
                (Some(b"entries-added"), Value::Int(n)) => {
                    info.entries_added = u64::try_from(*n).ok();
                }
                _ => {}
            }
        }
        info
    }
}

/// The failures of the feed's link since it last caught up.
#[derive(Default)]
struct Outage {
    /// When the first failure happened (`None`: the link is healthy).
    since: Option<Instant>,
    failures: u64,
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
