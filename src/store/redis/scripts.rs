//! The Lua scripts: every write is one atomic script, so the state and its feed entry
//! never disagree and concurrent writers cannot lower a cutoff or shorten a retention.
//!
//! Neither Redis's clock nor one instance's is trusted alone to say an entry is due:
//! keys expire, and the sweep removes entries, only once both Redis's clock (`TIME`) and
//! the sweeping instance's are past the entry's `keep_until` by the configured clock
//! tolerance. Scripts run with effects replication (the default since Redis 5), which
//! allows `TIME` before writes.
//!
//! The feed entries' field names come from `entry.rs`, formatted into the source, so
//! the scripts that write entries and the follower that reads them share one definition.

use std::sync::LazyLock;

use ::redis::Script;

use ::redis::ScriptInvocation;

use super::entry::{CUTOFF, KEEP_UNTIL, LOWERED_FROM, SESSION, SUBJECT, TOKEN};
use super::keys::{self, Keys};
use super::timing::Timing;
use crate::clock;
use crate::store::{RevokedSession, RevokedToken, SubjectCutoff};

/// Longest time kept in Redis, whatever an entry asks for.
const MAX_KEEP_SECS: u64 = 100 * 365 * 24 * 3600;

/// A `keep_until` clamped to what Redis (and a Lua double) can hold.
pub(super) fn clamp_keep(keep_until: u64) -> u64 {
    keep_until.min(clock::now_secs().saturating_add(MAX_KEEP_SECS))
}

/// The [`REVOKE_TOKEN`] call that records `token`.
pub(super) fn revoke_token<'a>(
    keys: &'a Keys,
    timing: &Timing,
    token: &RevokedToken<'_>,
) -> ScriptInvocation<'a> {
    let mut script = REVOKE_TOKEN.key(&keys.denylist);
    script
        .key(&keys.feed)
        .arg(keys::token_member(
            token.expires_at(),
            token.issuer(),
            token.jti(),
        ))
        .arg(clamp_keep(token.keep_until()))
        .arg(timing.retention_ms)
        .arg(timing.clock_tolerance_secs);
    script
}

/// The [`REVOKE_SUBJECT`] call that records `cutoff`.
pub(super) fn revoke_subject<'a>(
    keys: &'a Keys,
    timing: &Timing,
    cutoff: &SubjectCutoff<'_>,
) -> ScriptInvocation<'a> {
    let mut script = REVOKE_SUBJECT.key(&keys.cutoffs);
    script
        .key(&keys.cutoff_expiry)
        .key(&keys.feed)
        .arg(keys::member(cutoff.issuer(), cutoff.subject()))
        .arg(cutoff.cutoff_micros())
        .arg(clamp_keep(cutoff.keep_until()))
        .arg(timing.retention_ms)
        .arg(timing.clock_tolerance_secs);
    script
}

/// The [`REVOKE_SESSION`] call that records `session`.
pub(super) fn revoke_session<'a>(
    keys: &'a Keys,
    timing: &Timing,
    session: &RevokedSession<'_>,
) -> ScriptInvocation<'a> {
    let mut script = REVOKE_SESSION.key(&keys.sessions);
    script
        .key(&keys.session_expiry)
        .key(&keys.feed)
        .arg(keys::member(session.issuer(), session.sid()))
        .arg(session.ended_micros())
        .arg(clamp_keep(session.keep_until()))
        .arg(timing.retention_ms)
        .arg(timing.clock_tolerance_secs);
    script
}

/// The [`LOWER_CUTOFF`] call that lowers `cutoff`'s subject from `from` to its cutoff.
pub(super) fn lower_cutoff<'a>(
    keys: &'a Keys,
    timing: &Timing,
    cutoff: &SubjectCutoff<'_>,
    from: u64,
) -> ScriptInvocation<'a> {
    let mut script = LOWER_CUTOFF.key(&keys.cutoffs);
    script
        .key(&keys.feed)
        .arg(keys::member(cutoff.issuer(), cutoff.subject()))
        .arg(from)
        .arg(cutoff.cutoff_micros())
        .arg(timing.retention_ms);
    script
}

/// Puts one (issuer, jti) on the denylist, keeping the later of the old and new
/// `keep_until`; the key itself expires with its longest-lived entry; appends the
/// resulting entry to the feed, trimming feed entries older than the retention.
///
/// KEYS: denylist, feed. ARGV: member, keep_until (s), feed retention (ms), clock
/// tolerance (s).
pub(super) static REVOKE_TOKEN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"
local keep = tonumber(ARGV[2])
local old = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]))
if old and old > keep then keep = old end
local keep_s = string.format('%d', keep)
redis.call('ZADD', KEYS[1], keep_s, ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('EXPIREAT', KEYS[1], string.format('%d', tonumber(last[2]) + tonumber(ARGV[4])))
local t = redis.call('TIME')
local minid = math.max(0, tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[3]))
return redis.call('XADD', KEYS[2], 'MINID', '~', string.format('%d', minid), '*',
    '{TOKEN}', ARGV[1], '{KEEP_UNTIL}', keep_s)
"
    ))
});

/// Records a subject cutoff, keeping the later cutoff and the later `keep_until`
/// independently (a later cutoff never shortens retention); both keys expire with their
/// longest-lived entry; appends the merged entry to the feed.
///
/// Cutoffs are compared as decimal strings (length, then bytes), so no precision is lost
/// to Lua's doubles.
///
/// KEYS: cutoffs, cutoff expiry, feed. ARGV: member, cutoff (µs), keep_until (s),
/// feed retention (ms), clock tolerance (s).
pub(super) static REVOKE_SUBJECT: LazyLock<Script> = LazyLock::new(|| later_of(SUBJECT));

/// Ends a session the way [`REVOKE_SUBJECT`] records a cutoff (the later end and the
/// later `keep_until` win), in the sessions keys, with its own feed field.
///
/// KEYS: sessions, session expiry, feed. ARGV: member, ended (µs), keep_until (s), feed
/// retention (ms), clock tolerance (s).
pub(super) static REVOKE_SESSION: LazyLock<Script> = LazyLock::new(|| later_of(SESSION));

/// The script of [`REVOKE_SUBJECT`] and [`REVOKE_SESSION`]; `field` names the entry's
/// member in the feed.
fn later_of(field: &str) -> Script {
    Script::new(&format!(
        r"
local function later(a, b)
  if #a ~= #b then return #a > #b end
  return a > b
end
local cutoff = ARGV[2]
local keep = tonumber(ARGV[3])
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  local c, k = string.match(old, '^(%d+):(%d+)$')
  if c and later(c, cutoff) then cutoff = c end
  if k and tonumber(k) > keep then keep = tonumber(k) end
end
local keep_s = string.format('%d', keep)
redis.call('HSET', KEYS[1], ARGV[1], cutoff .. ':' .. keep_s)
redis.call('ZADD', KEYS[2], keep_s, ARGV[1])
local last = string.format('%d',
    tonumber(redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')[2]) + tonumber(ARGV[5]))
redis.call('EXPIREAT', KEYS[1], last)
redis.call('EXPIREAT', KEYS[2], last)
local t = redis.call('TIME')
local minid = math.max(0, tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[4]))
return redis.call('XADD', KEYS[3], 'MINID', '~', string.format('%d', minid), '*',
    '{field}', ARGV[1], '{CUTOFF}', cutoff, '{KEEP_UNTIL}', keep_s)
"
    ))
}

/// Lowers a subject's cutoff from `ARGV[2]` to `ARGV[3]` (both µs), only if it still
/// holds exactly `ARGV[2]` (a later cutoff recorded meanwhile stays), and appends the
/// lowered entry to the feed; returns 1 if it lowered it.
///
/// KEYS: cutoffs, feed. ARGV: member, from, to, feed retention (ms).
pub(super) static LOWER_CUTOFF: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"
local old = redis.call('HGET', KEYS[1], ARGV[1])
if not old then return 0 end
local c, k = string.match(old, '^(%d+):(%d+)$')
if c ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3] .. ':' .. k)
local t = redis.call('TIME')
local minid = math.max(0, tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[4]))
redis.call('XADD', KEYS[2], 'MINID', '~', string.format('%d', minid), '*',
    '{SUBJECT}', ARGV[1], '{CUTOFF}', ARGV[3], '{KEEP_UNTIL}', k, '{LOWERED_FROM}', ARGV[2])
return 1
"
    ))
});

/// Removes up to `ARGV[1]` expired denylist entries and as many expired cutoffs and ended
/// sessions; returns
/// how many were removed. An entry is expired once both Redis's clock and the sweeping
/// instance's (`ARGV[2]`) are past its `keep_until` by the tolerance (`ARGV[3]`).
/// Expired entries are already ignored by every reader; this only frees memory. Nothing
/// goes to the feed: each mirror expires its entries itself.
///
/// KEYS: denylist, cutoffs, cutoff expiry, sessions, session expiry. ARGV: limit, this
/// instance's time (s), clock tolerance (s).
pub(super) static SWEEP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local now = math.min(tonumber(redis.call('TIME')[1]), tonumber(ARGV[2])) - tonumber(ARGV[3])
now = string.format('%d', now)
local n = 0
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, ARGV[1])
if #dead > 0 then
  redis.call('ZREM', KEYS[1], unpack(dead))
  n = n + #dead
end
for i = 2, 4, 2 do
  dead = redis.call('ZRANGEBYSCORE', KEYS[i + 1], '-inf', now, 'LIMIT', 0, ARGV[1])
  if #dead > 0 then
    redis.call('HDEL', KEYS[i], unpack(dead))
    redis.call('ZREM', KEYS[i + 1], unpack(dead))
    n = n + #dead
  end
end
return n
",
    )
});
