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
//!
//! Every script is given every key it touches as `KEYS` (as Redis requires, and as
//! Redis Cluster enforces). Where the keys to touch are named inside other keys (the
//! refresh sessions of a subject, the session of a refresh token), the caller reads
//! those names first ([`subject_sessions`], [`token_session`]) and passes them; the
//! script checks, atomically, that they are still the ones stored, and otherwise
//! writes nothing and says so ([`REVOKE_SUBJECT`] answers 0, [`ROTATE_REFRESH`] names
//! the key to pass), and the caller reads again.

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

/// The [`REVOKE_SUBJECT`] call that records `cutoff`; `sessions` are the members of
/// the subject's set of refresh sessions, as [`subject_sessions`] read them.
pub(super) fn revoke_subject<'a>(
    keys: &'a Keys,
    timing: &Timing,
    cutoff: &SubjectCutoff<'_>,
    sessions: &[Vec<u8>],
) -> ScriptInvocation<'a> {
    let mut script = REVOKE_SUBJECT.key(&keys.cutoffs);
    script
        .key(&keys.cutoff_expiry)
        .key(&keys.feed)
        .key(keys.refresh_subject(cutoff.issuer(), cutoff.subject()));
    for session in sessions {
        script.key(session.as_slice());
    }
    script
        .arg(keys::member(cutoff.issuer(), cutoff.subject()))
        .arg(cutoff.cutoff_micros())
        .arg(clamp_keep(cutoff.keep_until()))
        .arg(timing.retention_ms)
        .arg(timing.clock_tolerance_secs)
        .arg(keys.refresh_session_prefix());
    script
}

/// The read that tells [`revoke_subject`] (and [`create_refresh`]) the subject's refresh
/// sessions: `SMEMBERS` of the subject's set, or `SRANDMEMBER` of `sample` of them.
pub(super) fn subject_sessions(
    keys: &Keys,
    issuer: Option<&str>,
    subject: &str,
    sample: Option<usize>,
) -> ::redis::Cmd {
    let key = keys.refresh_subject(issuer, subject);
    match sample {
        None => {
            let mut cmd = ::redis::cmd("SMEMBERS");
            cmd.arg(key);
            cmd
        }
        Some(n) => {
            let mut cmd = ::redis::cmd("SRANDMEMBER");
            cmd.arg(key).arg(n);
            cmd
        }
    }
}

/// The session keys in a reply of [`subject_sessions`]: only names of this store's
/// refresh sessions (anything else in the set is not the store's, and is left alone by
/// the scripts too). `None` for a reply of another shape.
pub(super) fn session_keys(keys: &Keys, reply: ::redis::Value) -> Option<Vec<Vec<u8>>> {
    let items = match reply {
        ::redis::Value::Array(items) | ::redis::Value::Set(items) => items,
        ::redis::Value::Nil => Vec::new(),
        _ => return None,
    };
    let prefix = keys.refresh_session_prefix();
    Some(
        items
            .into_iter()
            .filter_map(|v| match v {
                ::redis::Value::BulkString(b) if b.starts_with(prefix.as_bytes()) => Some(b),
                _ => None,
            })
            .collect(),
    )
}

/// The read that tells [`rotate_refresh`] which session the presented token belongs to.
pub(super) fn token_session(keys: &Keys, rotation: &Rotation<'_>) -> ::redis::Cmd {
    let mut cmd = ::redis::cmd("HGET");
    cmd.arg(keys.refresh_token(&rotation.presented().to_hex()))
        .arg("s");
    cmd
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
/// The set's members are passed as `KEYS[5..]`: if the set holds a session key (one
/// under `ARGV[6]`) that is not among them (a login since they were read), nothing is
/// written and the script answers 0, to be called again with the set read anew.
/// Otherwise it answers the feed entry's id.
///
/// KEYS: cutoffs, cutoff expiry, feed, the subject's refresh sessions (a set of keys),
/// then each of those sessions. ARGV: member, cutoff (µs), keep_until (s), feed
/// retention (ms), clock tolerance (s), the prefix of refresh-session keys.
pub(super) static REVOKE_SUBJECT: LazyLock<Script> = LazyLock::new(|| {
    later_of(
        SUBJECT,
        r"
local declared = {}
for i = 5, #KEYS do declared[KEYS[i]] = true end
for _, s in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  if not declared[s] and string.sub(s, 1, #ARGV[6]) == ARGV[6] then return 0 end
end
",
        r"
for i = 5, #KEYS do
  local s = KEYS[i]
  if redis.call('SISMEMBER', KEYS[4], s) == 1 then
    local started = redis.call('HGET', s, 'started')
    if not started or not later(started, cutoff) then
      redis.call('DEL', s)
      redis.call('SREM', KEYS[4], s)
    end
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
    LazyLock::new(|| later_of(SESSION, "", "redis.call('DEL', KEYS[4])\n"));

/// The script of [`REVOKE_SUBJECT`] and [`REVOKE_SESSION`]; `field` names the entry's
/// member in the feed; `first` runs before anything is written (it may return), `then`
/// after the merge, with `later` and `cutoff` in scope.
fn later_of(field: &str, first: &str, then: &str) -> Script {
    Script::new(&format!(
        r"
local function later(a, b)
  if #a ~= #b then return #a > #b end
  return a > b
end
{first}
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

/// How many members of a subject's set [`CREATE_REFRESH`] checks for a session gone.
pub(super) const CREATE_SAMPLE: usize = 4;

/// The [`CREATE_REFRESH`] call that records `record`; `sample` are a few members of the
/// subject's set (up to [`CREATE_SAMPLE`], read with [`subject_sessions`]).
pub(super) fn create_refresh<'a>(
    keys: &Keys,
    record: &RefreshRecord<'_>,
    sample: &[Vec<u8>],
) -> ScriptInvocation<'a> {
    let mut script = CREATE_REFRESH.key(keys.refresh_session(record.issuer(), record.sid()));
    script
        .key(keys.refresh_token(&record.hash().to_hex()))
        .key(keys.refresh_subject(record.issuer(), record.subject()));
    for session in sample {
        script.key(session.as_slice());
    }
    script
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

/// The [`ROTATE_REFRESH`] call for `rotation`, given the presented token's session
/// (`session`, read with [`token_session`]) and the session's current token (`current`;
/// the new token's key until the script names another).
pub(super) fn rotate_refresh<'a>(
    keys: &'a Keys,
    rotation: &Rotation<'_>,
    session: &[u8],
    current: Option<&[u8]>,
) -> ScriptInvocation<'a> {
    let new = keys.refresh_token(&rotation.new_hash().to_hex());
    let mut script = ROTATE_REFRESH.key(keys.refresh_token(&rotation.presented().to_hex()));
    script
        .key(new.as_str())
        .key(&keys.sessions)
        .key(&keys.cutoffs)
        .key(session)
        .key(current.unwrap_or(new.as_bytes()))
        .arg(clamp_keep(rotation.new_expires_at()))
        .arg(u64::try_from(rotation.reuse_interval().as_millis()).unwrap_or(u64::MAX));
    script
}

/// Records the first refresh token of a session: the session's hash (replacing any of
/// the same key), the token's record, and the session in its subject's set.
/// A few random members of that set whose session is gone (expired, ended, reused) are
/// dropped on the way (the caller read them and passes them as `KEYS[4..]`), so the set
/// tracks the subject's live sessions.
///
/// KEYS: refresh session, token record, subject's set, then a few members of that set.
/// ARGV: issuer field, sub, sid,
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
for i = 4, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then redis.call('SREM', KEYS[3], KEYS[i]) end
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
/// The caller passes the presented token's session and the session's current token: if
/// either is not the one stored (it changed since it was read, or the current token was
/// not known), nothing is written and the script answers `{'session', key}` or
/// `{'current', key}`, naming the key to pass on the next call.
///
/// KEYS: presented token record, new token record, ended sessions, cutoffs, the
/// presented token's session, that session's current token (or any key of the store
/// when not known). ARGV: new token's expiry (s), reuse interval (ms).
pub(super) static ROTATE_REFRESH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local function later(a, b)
  if #a ~= #b then return #a > #b end
  return a > b
end
local rec = redis.call('HMGET', KEYS[1], 's', 'used')
if not rec[1] then return {'invalid'} end
if rec[1] ~= KEYS[5] then return {'session', rec[1]} end
local skey = KEYS[5]
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
  if s[8] ~= KEYS[6] then return {'current', s[8]} end
  redis.call('DEL', KEYS[6])
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
