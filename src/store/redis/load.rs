//! The full load: every current entry read from the sets into the mirror, at start-up
//! and whenever the feed can no longer be caught up from.
//!
//! [`resync`] notes the feed's newest id, then reads the denylist and the cutoffs while
//! a blocking thread fills the mirror, a page of tokens at a time (the reads overlap
//! with that). Anything written during the load is seen by the load or by
//! the feed read on from the noted id, or both (applying an entry twice changes nothing).

use std::sync::Arc;

use ::redis::Value;
use ::redis::aio::MultiplexedConnection;
use tokio::sync::mpsc::Sender;

use super::entry::Entry;
use super::error::RedisStoreError;
use super::keys::{self, Keys};
use super::mirror::Shared;
use super::reply::{bytes, entry_id, flat_pairs, parse_cutoff, score, unexpected};
use super::timing::{Timing, bounded};
use crate::store::{RevokedSession, RevokedToken, SubjectCutoff};

/// About how many members one read of the load returns.
const LOAD_WINDOW: usize = 10_000;
/// How many such reads go in one round trip.
const LOAD_WINDOWS_PER_TRIP: usize = 8;
/// Up to this many cutoffs are read with one `HGETALL`; more with `HSCAN`.
const CUTOFFS_AT_ONCE: usize = 5 * LOAD_WINDOW;

/// Loads every current entry from the sets into the mirror; returns the feed id to read
/// on from (the feed's newest entry *before* the load, `0-0` if it is empty) and how many
/// entries were read.
pub(super) async fn resync(
    c: &mut MultiplexedConnection,
    keys: &Keys,
    timing: &Timing,
    shared: &Arc<Shared>,
) -> Result<(String, u64), RedisStoreError> {
    let newest: Value = bounded(
        timing.command,
        ::redis::cmd("XREVRANGE")
            .arg(&keys.feed)
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
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Batch>(4);
    let filler_shared = Arc::clone(shared);
    let filler = tokio::task::spawn_blocking(move || {
        let mut read = 0;
        while let Some(batch) = rx.blocking_recv() {
            read += batch.apply(&filler_shared);
        }
        read
    });
    let loaded = async {
        load_denylist(c, keys, timing, &tx).await?;
        load_hash(c, &keys.cutoffs, timing, &tx, Batch::Cutoffs).await?;
        load_hash(c, &keys.sessions, timing, &tx, Batch::Sessions).await
    }
    .await;
    drop(tx);
    // The filler ends once it has applied every batch sent.
    let read = filler.await.map_err(|_| unexpected())?;
    loaded?;
    Ok((start, read))
}

/// Reads the denylist in windows of scores (`keep_until`), each window one atomic
/// `ZRANGEBYSCORE` of about `LOAD_WINDOW` members, several windows per round trip.
///
/// The windows are bounded by the scores found at every `LOAD_WINDOW`-th rank and
/// together cover every score, so each member present for the whole load is read
/// (scores only grow, and windows are read in ascending order). Members added or moved
/// during the load are in the feed after the load's starting id; members removed during
/// it had expired. (`ZSCAN` would give the same guarantee, but is several times slower
/// on the server.)
async fn load_denylist(
    c: &mut MultiplexedConnection,
    keys: &Keys,
    timing: &Timing,
    tx: &Sender<Batch>,
) -> Result<(), RedisStoreError> {
    let key = &keys.denylist;
    let len: usize = bounded(timing.load, ::redis::cmd("ZCARD").arg(key).query_async(c)).await?;
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
        let replies: Vec<Value> = bounded(timing.load, probes.query_async(c)).await?;
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
        let replies: Vec<Value> = bounded(timing.load, pipe.query_async(c)).await?;
        for reply in replies {
            let items = flat_pairs(reply)?;
            tx.send(Batch::Tokens(items))
                .await
                .map_err(|_| unexpected())?;
        }
    }
    Ok(())
}

/// Reads every cutoff (or ended session): with one atomic `HGETALL` when there are not
/// too many (the usual case: one per subject that logged out everywhere within a token
/// lifetime), else with `HSCAN`, which returns every field present for the whole scan.
async fn load_hash(
    c: &mut MultiplexedConnection,
    key: &str,
    timing: &Timing,
    tx: &Sender<Batch>,
    batch: fn(Vec<Value>) -> Batch,
) -> Result<(), RedisStoreError> {
    let len: usize = bounded(timing.load, ::redis::cmd("HLEN").arg(key).query_async(c)).await?;
    if len <= CUTOFFS_AT_ONCE {
        let reply: Value =
            bounded(timing.load, ::redis::cmd("HGETALL").arg(key).query_async(c)).await?;
        let items = flat_pairs(reply)?;
        return tx.send(batch(items)).await.map_err(|_| unexpected());
    }
    let mut cursor = b"0".to_vec();
    loop {
        let reply: Value = bounded(
            timing.load,
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
        tx.send(batch(flat_pairs(items)?))
            .await
            .map_err(|_| unexpected())?;
        if next == b"0" {
            return Ok(());
        }
        cursor = next;
    }
}

/// Reads one loaded (member, value) pair as a mirror entry, `None` if this store did not
/// write it.
type ParsePair = for<'a> fn(&'a [u8], &'a [u8]) -> Option<Entry<'a>>;

/// A page of loaded (member, score or value) pairs, flattened, for the filler thread.
enum Batch {
    /// Denylist members and their `keep_until` scores.
    Tokens(Vec<Value>),
    /// Cutoff fields and their `"<cutoff>:<keep_until>"` values.
    Cutoffs(Vec<Value>),
    /// Session fields and their `"<ended>:<keep_until>"` values.
    Sessions(Vec<Value>),
}

impl Batch {
    /// Applies the pairs to the mirror and returns how many there were; a pair this
    /// store did not write is skipped (and not counted). Tokens go in as one batch (one
    /// mirror write per `exp` second among them), cutoffs and sessions one by one.
    fn apply(&self, shared: &Shared) -> u64 {
        let (items, entry): (_, ParsePair) = match self {
            Self::Tokens(items) => {
                let tokens: Vec<RevokedToken<'_>> = items
                    .chunks_exact(2)
                    .filter_map(|pair| {
                        let (exp, iss, jti) = keys::parse_token_member(bytes(&pair[0])?)?;
                        Some(RevokedToken::new(iss, jti, exp, score(&pair[1])?))
                    })
                    .collect();
                shared.apply_tokens(&tokens);
                return tokens.len() as u64;
            }
            Self::Cutoffs(items) => (items, |member, value| {
                let (iss, id) = keys::parse_member(member)?;
                let (cutoff, keep) = parse_cutoff(value)?;
                Some(Entry::Cutoff(SubjectCutoff::new(iss, id, cutoff, keep)))
            }),
            Self::Sessions(items) => (items, |member, value| {
                let (iss, sid) = keys::parse_member(member)?;
                let (ended, keep) = parse_cutoff(value)?;
                Some(Entry::Session(RevokedSession::new(iss, sid, ended, keep)))
            }),
        };
        let mut applied = 0;
        for pair in items.chunks_exact(2) {
            if let Some(e) = bytes(&pair[0])
                .zip(bytes(&pair[1]))
                .and_then(|(m, v)| entry(m, v))
            {
                shared.apply(&e);
                applied += 1;
            }
        }
        applied
    }
}
