//! The Redis store's error type.

use std::error::Error as StdError;
use std::fmt;

/// What went wrong in a [`RedisStoreError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RedisStoreErrorKind {
    /// The configuration is not usable (for example, the URL cannot be parsed).
    Config,
    /// Redis could not be reached, or the connection was lost.
    Connection,
    /// Redis did not answer within the configured time
    /// ([`RedisConfig::command_timeout`](crate::RedisConfig::command_timeout) or
    /// [`connect_timeout`](crate::RedisConfig::connect_timeout)).
    Timeout,
    /// Redis answered with an error (for example a server older than 6.2, a replica that
    /// refuses writes, out of memory, or a key of the wrong type under the prefix).
    Server,
    /// Redis answered something this store did not expect.
    UnexpectedReply,
    /// A check was refused because the local mirror has not been confirmed up to date
    /// with Redis for longer than
    /// [`RedisConfig::max_staleness`](crate::RedisConfig::max_staleness): the link to
    /// Redis is down or the mirror is still catching up.
    Stale,
    /// The primary recorded the revocation, but fewer replicas than
    /// [`RedisConfig::min_replicas`](crate::RedisConfig::min_replicas) confirmed it within
    /// [`replica_wait_timeout`](crate::RedisConfig::replica_wait_timeout): it could be
    /// lost if the primary failed now, so it is reported as not done (the layer's
    /// caller answers 503). It may still reach the replicas, and then every instance,
    /// later.
    NotReplicated,
}

/// An operation of the [`RedisStore`](crate::RedisStore) failed; the request is refused
/// (a check) or the revocation is not recorded (a revoke).
///
/// The client library's error, when there is one, is the [`source`](StdError::source).
#[derive(Debug)]
pub struct RedisStoreError {
    kind: RedisStoreErrorKind,
    source: Option<::redis::RedisError>,
}

impl RedisStoreError {
    pub(super) fn new(kind: RedisStoreErrorKind) -> Self {
        Self { kind, source: None }
    }

    pub(super) fn timeout() -> Self {
        Self::new(RedisStoreErrorKind::Timeout)
    }

    /// An error of `kind` caused by `source`.
    pub(super) fn with_source(kind: RedisStoreErrorKind, source: ::redis::RedisError) -> Self {
        Self {
            kind,
            source: Some(source),
        }
    }

    /// Whether Redis refused a write because it is a replica (`READONLY`): the node is
    /// no longer the primary.
    pub(super) fn is_read_only(&self) -> bool {
        self.source.as_ref().is_some_and(|e| {
            e.kind() == ::redis::ErrorKind::Server(::redis::ServerErrorKind::ReadOnly)
        })
    }

    /// Whether Redis unblocked a blocked command because the node changed role
    /// (`UNBLOCKED`, a primary turned replica).
    pub(super) fn is_unblocked(&self) -> bool {
        self.source
            .as_ref()
            .is_some_and(|e| e.code() == Some("UNBLOCKED"))
    }

    /// Whether Redis Cluster sent the call elsewhere, or asked for it again later: the
    /// slot moved (`MOVED`), is being migrated (`ASK`, `TRYAGAIN`), or the cluster is
    /// down (`CLUSTERDOWN`). The node is not (or not only) where the store's keys are.
    pub(super) fn is_redirect(&self) -> bool {
        use ::redis::ServerErrorKind as S;
        self.source.as_ref().is_some_and(|e| {
            matches!(
                e.kind(),
                ::redis::ErrorKind::Server(S::Moved | S::Ask | S::TryAgain | S::ClusterDown)
            )
        })
    }

    /// The node a `MOVED` reply names.
    pub(super) fn moved_to(&self) -> Option<(String, u16)> {
        self.redirect(::redis::ServerErrorKind::Moved)
    }

    /// The node an `ASK` reply names.
    pub(super) fn asked_to(&self) -> Option<(String, u16)> {
        self.redirect(::redis::ServerErrorKind::Ask)
    }

    fn redirect(&self, kind: ::redis::ServerErrorKind) -> Option<(String, u16)> {
        let e = self.source.as_ref()?;
        if e.kind() != ::redis::ErrorKind::Server(kind) {
            return None;
        }
        // `(host:port, slot)`; an address without a host (`:port`) is left to a new
        // look-up of the slot.
        e.redirect_node()
            .and_then(|(addr, _slot)| super::sentinel::parse_host_port(addr))
    }

    pub(super) fn config(source: ::redis::RedisError) -> Self {
        Self {
            kind: RedisStoreErrorKind::Config,
            source: Some(source),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> RedisStoreErrorKind {
        self.kind
    }
}

impl From<::redis::RedisError> for RedisStoreError {
    fn from(e: ::redis::RedisError) -> Self {
        use ::redis::ErrorKind as K;
        let kind = if e.is_timeout() {
            RedisStoreErrorKind::Timeout
        } else {
            match e.kind() {
                K::Server(_) | K::Extension | K::AuthenticationFailed => {
                    RedisStoreErrorKind::Server
                }
                K::Parse | K::UnexpectedReturnType => RedisStoreErrorKind::UnexpectedReply,
                K::InvalidClientConfig => RedisStoreErrorKind::Config,
                _ => RedisStoreErrorKind::Connection,
            }
        };
        Self {
            kind,
            source: Some(e),
        }
    }
}

impl fmt::Display for RedisStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            RedisStoreErrorKind::Config => "invalid Redis store configuration",
            RedisStoreErrorKind::Connection => "could not reach Redis",
            RedisStoreErrorKind::Timeout => "Redis did not answer in time",
            RedisStoreErrorKind::Server => "Redis answered with an error",
            RedisStoreErrorKind::UnexpectedReply => "unexpected reply from Redis",
            RedisStoreErrorKind::Stale => {
                "the revocation mirror is not known to be up to date with Redis"
            }
            RedisStoreErrorKind::NotReplicated => {
                "the revocation was not confirmed by enough Redis replicas in time"
            }
        })
    }
}

impl StdError for RedisStoreError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}
