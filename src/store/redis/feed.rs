//! The follower: the background task that keeps the mirror current by reading the
//! change feed, reconnecting and catching up after any failure.
//!
//! It owns one connection (a blocking read would stall any other command sharing it)
//! and the id of the last feed entry it applied. Each blocking read that leaves nothing
//! unread marks the mirror synced; the read's block time is the heartbeat. Nothing else
//! runs on this path: the sweep of expired entries is a task of its own (`sweep.rs`), so
//! however much it has to remove, the feed is never held up by it.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::redis::aio::MultiplexedConnection;
use ::redis::{Client, Value};

use super::entry::{self, Entry};
use super::error::RedisStoreError;
use super::keys::Keys;
use super::load;
use super::mirror::Shared;
use super::reply::{entry_id, entry_parts, parse_id, stream_entries, unexpected};
use super::scripts;
use super::timing::{self, Timing, bounded};

/// How many feed entries one read returns at most.
const FEED_BATCH: usize = 1_000;
/// First reconnect delay; doubled per failure up to the configured maximum.
const MIN_BACKOFF: Duration = Duration::from_millis(50);

/// The background follower and the last feed id it applied to the mirror.
pub(super) struct Feed {
    shared: Arc<Shared>,
    client: Client,
    keys: Arc<Keys>,
    timing: Timing,
    /// The id of the last feed entry applied (`0-0`: none).
    last: String,
}

impl Feed {
    /// A follower that has applied nothing yet; [`load`](Self::load) and
    /// [`catch_up`](Self::catch_up) bring it up to date, [`run`](Self::run) follows on.
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

    /// Opens the follower's connection.
    pub(super) async fn connect(&self) -> Result<MultiplexedConnection, RedisStoreError> {
        timing::connect(&self.client, &self.timing).await
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
                warn_event!("revocation feed missed entries (trimmed or lost): full resync");
                self.shared.count_resync();
                self.load(c).await?;
                continue;
            }
            let n = entries.len();
            self.apply_entries(&entries)?;
            if n < FEED_BATCH {
                self.shared.mark_synced();
                return Ok(());
            }
        }
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
            let script = match owned.entry() {
                Entry::Token(token) => scripts::revoke_token(&self.keys, &self.timing, &token),
                Entry::Cutoff(cutoff) => scripts::revoke_subject(&self.keys, &self.timing, &cutoff),
                Entry::Lowered(cutoff, from) => {
                    scripts::lower_cutoff(&self.keys, &self.timing, &cutoff, from)
                }
                Entry::Session(session) => {
                    scripts::revoke_session(&self.keys, &self.timing, &session)
                }
            };
            if let Err(e) = bounded(self.timing.command, script.invoke_async::<Value>(c)).await {
                self.shared.give_back(owed.into_iter().skip(i));
                return Err(e);
            }
        }
        Ok(())
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
        if !entries.is_empty() {
            let (appended_ms, _) = parse_id(&self.last);
            self.shared
                .record_applied(entries.len() as u64, appended_ms);
        }
        Ok(())
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
