//! Decoding Redis replies: the shapes the store reads (RESP2 or RESP3), and the numbers
//! and ids inside them.
//!
//! Nothing here panics: a reply of an unexpected shape is `None` or an
//! [`UnexpectedReply`](RedisStoreErrorKind::UnexpectedReply) error, for the caller to
//! skip or to treat as a failed read.

use ::redis::Value;

use super::error::{RedisStoreError, RedisStoreErrorKind};

/// The error for a reply this store did not expect.
pub(super) fn unexpected() -> RedisStoreError {
    RedisStoreError::new(RedisStoreErrorKind::UnexpectedReply)
}

/// A reply of (member, score) or (field, value) pairs as one flat list (RESP2 arrays;
/// RESP3 may send maps or nested pairs).
pub(super) fn flat_pairs(reply: Value) -> Result<Vec<Value>, RedisStoreError> {
    match reply {
        Value::Array(items)
            if !items.is_empty() && items.iter().all(|v| matches!(v, Value::Array(_))) =>
        {
            let mut flat = Vec::with_capacity(items.len() * 2);
            for item in items {
                if let Value::Array(pair) = item {
                    flat.extend(pair);
                }
            }
            Ok(flat)
        }
        Value::Array(items) => Ok(items),
        Value::Map(pairs) => Ok(pairs.into_iter().flat_map(|(k, v)| [k, v]).collect()),
        Value::Nil => Ok(Vec::new()),
        _ => Err(unexpected()),
    }
}

/// The entries of an `XREAD` reply on one stream (RESP2: `[[key, entries]]`; RESP3:
/// `{key: entries}`); none when the read timed out (`Nil`).
pub(super) fn stream_entries(reply: Value) -> Result<Vec<Value>, RedisStoreError> {
    let entries = match reply {
        Value::Nil => return Ok(Vec::new()),
        Value::Array(mut streams) => match streams.pop() {
            Some(Value::Array(mut pair)) if pair.len() == 2 => pair.pop(),
            _ => None,
        },
        Value::Map(mut streams) => streams.pop().map(|(_, v)| v),
        _ => None,
    };
    match entries {
        Some(Value::Array(entries)) => Ok(entries),
        _ => Err(unexpected()),
    }
}

/// A stream entry `[id, [field, value, ...]]` as its id and its flat list of fields.
pub(super) fn entry_parts(entry: &Value) -> Result<(&str, &[Value]), RedisStoreError> {
    let id = entry_id(entry)?;
    match entry {
        Value::Array(parts) => match parts.get(1) {
            Some(Value::Array(fields)) => Ok((id, fields.as_slice())),
            _ => Err(unexpected()),
        },
        _ => Err(unexpected()),
    }
}

/// The id of a stream entry `[id, fields]`.
pub(super) fn entry_id(entry: &Value) -> Result<&str, RedisStoreError> {
    match entry {
        Value::Array(parts) => parts
            .first()
            .and_then(bytes)
            .and_then(|b| std::str::from_utf8(b).ok())
            .ok_or_else(unexpected),
        _ => Err(unexpected()),
    }
}

/// The bytes of a string reply.
pub(super) fn bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

/// A sorted-set score: a string in RESP2, a double in RESP3.
pub(super) fn score(v: &Value) -> Option<u64> {
    match v {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Value::Double(f) if f.is_finite() && *f >= 0.0 => Some(*f as u64),
        Value::Int(i) => u64::try_from(*i).ok(),
        other => parse_u64(bytes(other)?),
    }
}

/// A stream id `<ms>-<seq>` as a comparable pair; anything else sorts last (an
/// unreadable first entry forces a resync rather than a skipped entry).
pub(super) fn parse_id(id: &str) -> (u64, u64) {
    id.split_once('-')
        .and_then(|(ms, seq)| Some((ms.parse().ok()?, seq.parse().ok()?)))
        .unwrap_or((u64::MAX, u64::MAX))
}

/// A non-negative integer, also when Redis printed it as a float (`"1.7e9"`).
pub(super) fn parse_u64(raw: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(raw).ok()?;
    s.parse().ok().or_else(|| {
        let f: f64 = s.parse().ok()?;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        (f.is_finite() && f >= 0.0).then_some(f as u64)
    })
}

/// A cutoffs hash value, `"<cutoff_micros>:<keep_until>"`.
pub(super) fn parse_cutoff(raw: &[u8]) -> Option<(u64, u64)> {
    let colon = raw.iter().position(|&b| b == b':')?;
    Some((parse_u64(&raw[..colon])?, parse_u64(&raw[colon + 1..])?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn pairs_are_flattened_from_every_shape() {
        let flat = vec![bulk("a"), bulk("1"), bulk("b"), bulk("2")];
        let nested = Value::Array(vec![
            Value::Array(vec![bulk("a"), bulk("1")]),
            Value::Array(vec![bulk("b"), bulk("2")]),
        ]);
        let map = Value::Map(vec![(bulk("a"), bulk("1")), (bulk("b"), bulk("2"))]);
        for reply in [Value::Array(flat.clone()), nested, map] {
            assert_eq!(flat_pairs(reply).unwrap(), flat);
        }
        assert_eq!(flat_pairs(Value::Nil).unwrap(), Vec::new());
        assert!(flat_pairs(Value::Int(3)).is_err());
    }

    #[test]
    fn stream_replies_of_the_wrong_shape_are_errors_not_panics() {
        assert!(stream_entries(Value::Nil).unwrap().is_empty());
        let entry = Value::Array(vec![bulk("1-0"), Value::Array(vec![bulk("j"), bulk("x")])]);
        let resp2 = Value::Array(vec![Value::Array(vec![
            bulk("feed"),
            Value::Array(vec![entry.clone()]),
        ])]);
        let resp3 = Value::Map(vec![(bulk("feed"), Value::Array(vec![entry.clone()]))]);
        for reply in [resp2, resp3] {
            assert_eq!(stream_entries(reply).unwrap(), vec![entry.clone()]);
        }
        for bad in [
            Value::Int(1),
            Value::Array(vec![]),
            Value::Array(vec![Value::Array(vec![bulk("feed")])]),
            Value::Map(vec![(bulk("feed"), Value::Int(1))]),
        ] {
            assert!(stream_entries(bad).is_err());
        }
        let (id, fields) = entry_parts(&entry).unwrap();
        assert_eq!((id, fields.len()), ("1-0", 2));
        for bad in [
            Value::Nil,
            Value::Array(vec![]),
            Value::Array(vec![bulk("1-0")]),
            Value::Array(vec![Value::Int(1), Value::Array(vec![])]),
            Value::Array(vec![bulk("1-0"), Value::Int(1)]),
        ] {
            assert!(entry_parts(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn numbers_and_ids_parse_or_are_refused() {
        assert_eq!(score(&bulk("1700000000")), Some(1_700_000_000));
        assert_eq!(score(&bulk("1.7e9")), Some(1_700_000_000));
        assert_eq!(score(&Value::Double(5.0)), Some(5));
        assert_eq!(score(&Value::Double(-1.0)), None);
        assert_eq!(score(&Value::Double(f64::NAN)), None);
        assert_eq!(score(&Value::Int(-1)), None);
        assert_eq!(score(&bulk("x")), None);
        assert_eq!(parse_id("5-3"), (5, 3));
        assert!(parse_id("5-3") < parse_id("5-4"));
        assert_eq!(parse_id("junk"), (u64::MAX, u64::MAX));
        assert_eq!(parse_cutoff(b"12:34"), Some((12, 34)));
        for bad in [&b""[..], b"12", b":34", b"12:", b"a:b", b"1:2:3"] {
            assert_eq!(parse_cutoff(bad), None, "{bad:?}");
        }
    }
}
