//! The change feed's entries: their field names, defined once here, and their decoding.
//!
//! Entries are written only by the Lua scripts (`scripts.rs`), whose source is built
//! from these constants, and read only by [`decode`]; so the writer and the reader
//! cannot drift apart. An entry is one of:
//!
//! - a revoked token: [`TOKEN`] = the denylist member (see `keys::token_member`),
//!   [`KEEP_UNTIL`] = its `keep_until`;
//! - a subject cutoff: [`SUBJECT`] = the cutoffs field (see `keys::member`),
//!   [`CUTOFF`] = the cutoff in microseconds, [`KEEP_UNTIL`] = its `keep_until`;
//! - an ended session: [`SESSION`] = the sessions field (see `keys::member` of issuer and
//!   sid), [`CUTOFF`] = when it ended in microseconds, [`KEEP_UNTIL`] = its `keep_until`;
//! - a lowered cutoff: the same fields and [`LOWERED_FROM`] = the cutoff it replaced,
//!   written when an instance took a cutoff recorded too far ahead of its clock as an
//!   earlier one (see `memory.rs`, Time), so that every instance, and every later load,
//!   holds the same value.
//!
//! Values are the entry as merged in Redis (the later cutoff, the longer retention), so
//! applying an entry, or applying it twice, never moves a mirror backwards.

use ::redis::Value;

use super::keys;
use super::reply::{bytes, parse_u64};
use crate::store::{RevokedSession, RevokedToken, SubjectCutoff};

/// Field of a revoked token's entry: its denylist member.
pub(super) const TOKEN: &str = "j";
/// Field of a subject cutoff's entry: its cutoffs field (issuer and subject).
pub(super) const SUBJECT: &str = "s";
/// Field of an ended session's entry: its sessions field (issuer and sid).
pub(super) const SESSION: &str = "e";
/// Field of a subject cutoff's entry: the cutoff, in microseconds (for an ended
/// session: when it ended).
pub(super) const CUTOFF: &str = "c";
/// Field of every entry: until when it is kept (Unix seconds).
pub(super) const KEEP_UNTIL: &str = "u";
/// Field of a lowered cutoff's entry: the cutoff it lowered, in microseconds.
pub(super) const LOWERED_FROM: &str = "l";

/// One feed entry, borrowing from the reply it was read from.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Entry<'a> {
    /// A token put on the denylist.
    Token(RevokedToken<'a>),
    /// A subject's logout-everywhere cutoff.
    Cutoff(SubjectCutoff<'a>),
    /// A subject's cutoff lowered from the given one (µs) to this one.
    Lowered(SubjectCutoff<'a>, u64),
    /// An ended session.
    Session(RevokedSession<'a>),
}

impl Entry<'_> {
    /// Until when the entry was recorded to be kept.
    pub(super) fn keep_until(&self) -> u64 {
        match self {
            Self::Token(t) => t.keep_until(),
            Self::Cutoff(c) | Self::Lowered(c, _) => c.keep_until(),
            Self::Session(s) => s.keep_until(),
        }
    }
}

/// Decodes an entry's flat `[field, value, ...]` list; `None` for anything this store
/// did not write (a missing or unreadable field), which the follower skips.
pub(super) fn decode(fields: &[Value]) -> Option<Entry<'_>> {
    let (mut token, mut subject, mut cutoff, mut keep, mut lowered, mut session) =
        (None, None, None, None, None, None);
    for pair in fields.chunks_exact(2) {
        let value = bytes(&pair[1])?;
        let name = bytes(&pair[0])?;
        if name == TOKEN.as_bytes() {
            token = Some(value);
        } else if name == SUBJECT.as_bytes() {
            subject = Some(value);
        } else if name == CUTOFF.as_bytes() {
            cutoff = Some(value);
        } else if name == KEEP_UNTIL.as_bytes() {
            keep = Some(parse_u64(value)?);
        } else if name == SESSION.as_bytes() {
            session = Some(value);
        } else if name == LOWERED_FROM.as_bytes() {
            lowered = Some(parse_u64(value)?);
        }
    }
    let keep = keep?;
    match (token, subject, session) {
        (None, None, Some(member)) => {
            let (iss, sid) = keys::parse_member(member)?;
            let ended = parse_u64(cutoff?)?;
            Some(Entry::Session(RevokedSession::new(iss, sid, ended, keep)))
        }
        (Some(member), None, None) => {
            let (exp, iss, jti) = keys::parse_token_member(member)?;
            Some(Entry::Token(RevokedToken::new(iss, jti, exp, keep)))
        }
        (None, Some(member), None) => {
            let (iss, sub) = keys::parse_member(member)?;
            let cutoff = SubjectCutoff::new(iss, sub, parse_u64(cutoff?)?, keep);
            Some(match lowered {
                Some(from) => Entry::Lowered(cutoff, from),
                None => Entry::Cutoff(cutoff),
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &[u8])]) -> Vec<Value> {
        pairs
            .iter()
            .flat_map(|&(k, v)| {
                [
                    Value::BulkString(k.as_bytes().to_vec()),
                    Value::BulkString(v.to_vec()),
                ]
            })
            .collect()
    }

    #[test]
    fn field_names_are_safe_inside_a_lua_string() {
        let all = [TOKEN, SUBJECT, CUTOFF, KEEP_UNTIL, LOWERED_FROM, SESSION];
        for name in all {
            assert!(!name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric()));
        }
        let mut names = all.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all.len(), "field names must differ");
    }

    #[test]
    fn entries_decode_as_the_scripts_write_them() {
        let member = keys::token_member(1_800_000_000, Some("iss"), "jti-1");
        assert_eq!(
            decode(&fields(&[(TOKEN, &member), (KEEP_UNTIL, b"1800000061")])),
            Some(Entry::Token(RevokedToken::new(
                Some("iss"),
                "jti-1",
                1_800_000_000,
                1_800_000_061
            )))
        );
        let member = keys::member(None, "alice");
        assert_eq!(
            decode(&fields(&[
                (SUBJECT, &member),
                (CUTOFF, b"1700000000123456"),
                (KEEP_UNTIL, b"1800000000"),
            ])),
            Some(Entry::Cutoff(SubjectCutoff::new(
                None,
                "alice",
                1_700_000_000_123_456,
                1_800_000_000
            )))
        );
        assert_eq!(
            decode(&fields(&[
                (SUBJECT, &member),
                (CUTOFF, b"1700000000123456"),
                (KEEP_UNTIL, b"1800000000"),
                (LOWERED_FROM, b"1700000600000000"),
            ])),
            Some(Entry::Lowered(
                SubjectCutoff::new(None, "alice", 1_700_000_000_123_456, 1_800_000_000),
                1_700_000_600_000_000
            ))
        );
        let member = keys::member(Some("iss"), "sid-1");
        assert_eq!(
            decode(&fields(&[
                (SESSION, &member),
                (CUTOFF, b"1700000000123456"),
                (KEEP_UNTIL, b"1800000000"),
            ])),
            Some(Entry::Session(RevokedSession::new(
                Some("iss"),
                "sid-1",
                1_700_000_000_123_456,
                1_800_000_000
            )))
        );
    }

    #[test]
    fn entries_this_store_did_not_write_are_skipped() {
        let token = keys::token_member(1, None, "j");
        let subject = keys::member(None, "s");
        for bad in [
            fields(&[]),
            fields(&[(TOKEN, &token)]),
            fields(&[(TOKEN, &token), (KEEP_UNTIL, b"x")]),
            fields(&[(TOKEN, b"garbage"), (KEEP_UNTIL, b"5")]),
            fields(&[(SUBJECT, &subject), (KEEP_UNTIL, b"5")]),
            fields(&[(SUBJECT, &subject), (CUTOFF, b"x"), (KEEP_UNTIL, b"5")]),
            fields(&[
                (TOKEN, &token),
                (SUBJECT, &subject),
                (CUTOFF, b"1"),
                (KEEP_UNTIL, b"5"),
            ]),
            vec![Value::Int(1), Value::Int(2)],
        ] {
            assert_eq!(decode(&bad), None, "{bad:?}");
        }
    }
}
