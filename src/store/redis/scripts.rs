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
use crate::store::refresh::{RefreshRecord, Rotation};
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
        .key(keys.refresh_subject(cutoff.issuer(), cutoff.subject()))
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
        .key(keys.refresh_session(session.issuer(), session.sid()))
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
/// The subject's refresh sessions that started at or before the (merged) cutoff are
/// deleted, so their refresh tokens die even after the cutoff itself has expired.
///
/// KEYS: cutoffs, cutoff expiry, feed, the subject's refresh sessions (a set of keys).
/// ARGV: member, cutoff (µs), keep_until (s), feed retention (ms), clock tolerance (s).
pub(super) static REVOKE_SUBJECT: LazyLock<Script> = LazyLock::new(|| {
    later_of(
        SUBJECT,
        r"
for _, s in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  local started = redis.call('HGET', s, 'started')
  if not started or not later(started, cutoff) then
    redis.call('DEL', s)
    redis.call('SREM', KEYS[4], s)
  end
end
",
    )
});

/// Ends a session the way [`REVOKE_SUBJECT`] records a cutoff (the later end and the
/// later `keep_until` win), in the sessions keys, with its own feed field.
///
/// The session's refresh session is deleted: its refresh tokens die, even after the
/// ended session itself has expired.
///
/// KEYS: sessions, session expiry, feed, the refresh session. ARGV: member, ended (µs),
/// keep_until (s), feed retention (ms), clock tolerance (s).
pub(super) static REVOKE_SESSION: LazyLock<Script> =
    LazyLock::new(|| later_of(SESSION, "redis.call('DEL', KEYS[4])\n"));

/// The script of [`REVOKE_SUBJECT`] and [`REVOKE_SESSION`]; `field` names the entry's
/// member in the feed; `then` runs after the merge, with `later` and `cutoff` in scope.
fn later_of(field: &str, then: &str) -> Script {
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
{then}
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

/// An issuer as the refresh scripts keep it: `-` for none, `+<issuer>` otherwise.
fn issuer_field(issuer: Option<&str>) -> String {
    match issuer {
        Some(iss) => format!("+{iss}"),
        None => "-".to_owned(),
    }
}

/// The [`CREATE_REFRESH`] call that records `record`.
pub(super) fn create_refresh<'a>(keys: &Keys, record: &RefreshRecord<'_>) -> ScriptInvocation<'a> {
    let mut script = CREATE_REFRESH.key(keys.refresh_session(record.issuer(), record.sid()));
    script
        .key(keys.refresh_token(&record.hash().to_hex()))
        .key(keys.refresh_subject(record.issuer(), record.subject()))
        .arg(issuer_field(record.issuer()))
        .arg(record.subject())
        .arg(record.sid())
        .arg(keys::member(record.issuer(), record.sid()))
        .arg(keys::member(record.issuer(), record.subject()))
        .arg(record.started_micros())
        .arg(clamp_keep(record.session_expires_at()))
        .arg(clamp_keep(record.expires_at()));
    script
}

/// The [`ROTATE_REFRESH`] call for `rotation`.
pub(super) fn rotate_refresh<'a>(keys: &'a Keys, rotation: &Rotation<'_>) -> ScriptInvocation<'a> {
    let mut script = ROTATE_REFRESH.key(keys.refresh_token(&rotation.presented().to_hex()));
    script
        .key(keys.refresh_token(&rotation.new_hash().to_hex()))
        .key(&keys.sessions)
        .key(&keys.cutoffs)
        .arg(clamp_keep(rotation.new_expires_at()))
        .arg(u64::try_from(rotation.reuse_interval().as_millis()).unwrap_or(u64::MAX));
    script
}

/// Records the first refresh token of a session: the session's hash (replacing any of
/// the same key), the token's record, and the session in its subject's set.
/// A few random members of that set whose session is gone (expired, ended, reused) are
/// dropped on the way, so the set tracks the subject's live sessions.
///
/// KEYS: refresh session, token record, subject's set. ARGV: issuer field, sub, sid,
/// session member, subject member, started (µs), deadline (s), token expiry (s).
pub(super) static CREATE_REFRESH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'iss', ARGV[1], 'sub', ARGV[2], 'sid', ARGV[3], 'sm', ARGV[4],
    'um', ARGV[5], 'started', ARGV[6], 'deadline', ARGV[7], 'current', KEYS[2])
redis.call('EXPIREAT', KEYS[1], ARGV[7])
redis.call('HSET', KEYS[2], 's', KEYS[1], 'used', '0')
redis.call('EXPIREAT', KEYS[2], ARGV[8])
for _, s in ipairs(redis.call('SRANDMEMBER', KEYS[3], 4)) do
  if redis.call('EXISTS', s) == 0 then redis.call('SREM', KEYS[3], s) end
end
redis.call('SADD', KEYS[3], KEYS[1])
local ttl = redis.call('TTL', KEYS[3])
local now = tonumber(redis.call('TIME')[1])
if ttl < 0 or now + ttl < tonumber(ARGV[7]) then
  redis.call('EXPIREAT', KEYS[3], ARGV[7])
end
return 1
",
    )
});

/// Exchanges a refresh token in one step (see `SessionStore::rotate_refresh`); times
/// are Redis's, so every instance judges the reuse interval on one clock. Returns
/// `{'rotated', iss, sub, sid, expiry}`, `{'reused', iss, sub, sid}`, `{'revoked'}` or
/// `{'invalid'}`. A repeated call (same new token) answers `rotated` again, so the
/// writer's retry after a lost reply is harmless.
///
/// KEYS: presented token record, new token record, ended sessions, cutoffs. ARGV: new
/// token's expiry (s), reuse interval (ms).
pub(super) static ROTATE_REFRESH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local function later(a, b)
  if #a ~= #b then return #a > #b end
  return a > b
end
local rec = redis.call('HMGET', KEYS[1], 's', 'used')
local skey = rec[1]
if not skey then return {'invalid'} end
local s = redis.call('HMGET', skey, 'iss', 'sub', 'sid', 'sm', 'um', 'started', 'deadline',
    'current', 'previous', 'rotated')
if not s[3] then return {'invalid'} end
local t = redis.call('TIME')
local now_s = tonumber(t[1])
local now_ms = now_s * 1000 + math.floor(tonumber(t[2]) / 1000)
local deadline = tonumber(s[7])
if deadline <= now_s then
  redis.call('DEL', skey)
  return {'invalid'}
end
if redis.call('HEXISTS', KEYS[3], s[4]) == 1 then
  redis.call('DEL', skey)
  return {'revoked'}
end
local cut = redis.call('HGET', KEYS[4], s[5])
if cut then
  local c = string.match(cut, '^(%d+):')
  if c and not later(s[6], c) then
    redis.call('DEL', skey)
    return {'revoked'}
  end
end
local exp_s = string.format('%d', math.min(tonumber(ARGV[1]), deadline))
local done = {'rotated', s[1], s[2], s[3], exp_s}
if s[8] == KEYS[2] then return done end
local interval = tonumber(ARGV[2])
if s[8] == KEYS[1] and rec[2] == '0' then
  redis.call('HSET', skey, 'current', KEYS[2], 'previous', KEYS[1],
      'rotated', string.format('%d', now_ms))
  redis.call('HSET', KEYS[1], 'used', '1')
  redis.call('EXPIREAT', KEYS[1], s[7])
elseif s[9] == KEYS[1] and interval > 0 and now_ms - tonumber(s[10]) <= interval then
  redis.call('DEL', s[8])
  redis.call('HSET', skey, 'current', KEYS[2])
elseif rec[2] == '1' then
  redis.call('DEL', skey)
  return {'reused', s[1], s[2], s[3]}
else
  return {'invalid'}
end
redis.call('HSET', KEYS[2], 's', skey, 'used', '0')
redis.call('EXPIREAT', KEYS[2], exp_s)
return done
",
    )
});
