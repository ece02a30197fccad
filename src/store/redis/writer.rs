//! The write path: one shared connection to the primary for every revoke, reopened
//! (through [`Primary::connect`], so re-resolved with Sentinel) after it fails, and the
//! replicas' confirmation (`WAIT`) when the configuration asks for it.
//!
//! A write is reported done only once the primary answered the script and, with
//! `min_replicas`, once `WAIT`, sent in the same pipeline on the same connection (so it
//! covers exactly that write), counted enough replicas. Every revoke is bounded by
//! [`Timing::write_limit`].

use std::time::Duration;

use ::redis::aio::MultiplexedConnection;
use ::redis::{ErrorKind, RedisResult, ScriptInvocation, ServerErrorKind, Value};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::error::{RedisStoreError, RedisStoreErrorKind};
use super::sentinel::Primary;
use super::timing::Timing;

/// The pause before a write is retried on a new connection.
const WRITE_RETRY_PAUSE: Duration = Duration::from_millis(20);

/// The writer's connection, shared by every revoke of a store.
pub(super) struct Writer {
    primary: std::sync::Arc<Primary>,
    timing: Timing,
    /// The current connection and its generation (so that a failure seen by several
    /// writers drops it once, not the one opened since).
    slot: Mutex<(u64, Option<MultiplexedConnection>)>,
}

impl Writer {
    /// A writer whose first connection is `conn`.
    pub(super) fn new(
        primary: std::sync::Arc<Primary>,
        timing: Timing,
        conn: MultiplexedConnection,
    ) -> Self {
        Self {
            primary,
            timing,
            slot: Mutex::new((0, Some(conn))),
        }
    }

    /// The current connection, opened if there is none (one opener at a time).
    async fn connection(&self) -> Result<(u64, MultiplexedConnection), RedisStoreError> {
        let mut slot = self.slot.lock().await;
        if let Some(conn) = &slot.1 {
            return Ok((slot.0, conn.clone()));
        }
        let conn = self.primary.connect(&self.timing).await?;
        slot.0 += 1;
        slot.1 = Some(conn.clone());
        Ok((slot.0, conn))
    }

    /// Drops connection `generation`, if it is still the current one.
    async fn discard(&self, generation: u64) {
        let mut slot = self.slot.lock().await;
        if slot.0 == generation {
            slot.1 = None;
        }
    }

    /// Runs a write script, and `WAIT` for the required replicas, within the write
    /// limit. A write that failed because the connection was lost, or because the node
    /// is no longer the primary, is retried on a new connection until the limit: the
    /// scripts are idempotent, so a write that did land before the loss is harmless to
    /// repeat.
    pub(super) async fn write(&self, script: &ScriptInvocation<'_>) -> Result<(), RedisStoreError> {
        self.write_returning(script).await.map(drop)
    }

    /// [`write`](Self::write), returning the script's reply. The script must be safe to
    /// repeat (a retried call may find its own earlier effect).
    pub(super) async fn write_returning(
        &self,
        script: &ScriptInvocation<'_>,
    ) -> Result<Value, RedisStoreError> {
        let deadline = Instant::now() + self.timing.write_limit();
        let mut last_error: Option<RedisStoreError> = None;
        loop {
            let attempt = async {
                let (generation, mut conn) = self.connection().await?;
                let result = self.attempt(script, &mut conn).await;
                Ok::<_, RedisStoreError>((generation, result))
            };
            let outcome = match tokio::time::timeout_at(deadline, attempt).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    // A frozen node, or one the sentinels no longer name: the next write
                    // starts on a new connection.
                    let generation = self.slot.lock().await.0;
                    self.discard(generation).await;
                    return Err(last_error.unwrap_or_else(RedisStoreError::timeout));
                }
            };
            let error = match outcome {
                Ok((_, Ok(reply))) => return Ok(reply),
                Ok((generation, Err(e))) => {
                    if retry_elsewhere(&e) {
                        self.discard(generation).await;
                    } else {
                        return Err(e);
                    }
                    e
                }
                // Could not connect: try again until the deadline.
                Err(e) => e,
            };
            if Instant::now() + WRITE_RETRY_PAUSE >= deadline {
                return Err(error);
            }
            last_error = Some(error);
            tokio::time::sleep(WRITE_RETRY_PAUSE).await;
        }
    }

    /// The script, then `WAIT` in the same pipeline when replicas are required. Loads
    /// the script when the node does not have it (a fresh primary, say).
    async fn attempt(
        &self,
        script: &ScriptInvocation<'_>,
        conn: &mut MultiplexedConnection,
    ) -> Result<Value, RedisStoreError> {
        let replicas = self.timing.min_replicas;
        for _ in 0..2 {
            let mut pipe = ::redis::pipe();
            pipe.ignore_errors().invoke_script(script);
            if replicas > 0 {
                let wait_ms = u64::try_from(self.timing.replica_wait.as_millis())
                    .unwrap_or(u64::MAX)
                    .max(1);
                pipe.cmd("WAIT").arg(replicas).arg(wait_ms);
            }
            let mut replies: Vec<RedisResult<Value>> = pipe
                .query_async(conn)
                .await
                .map_err(RedisStoreError::from)?;
            let waited = if replicas > 0 { replies.pop() } else { None };
            let reply = match replies.pop() {
                Some(Ok(reply)) => reply,
                Some(Err(e)) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    script
                        .load_async(conn)
                        .await
                        .map_err(RedisStoreError::from)?;
                    continue;
                }
                Some(Err(e)) => return Err(e.into()),
                None => return Err(RedisStoreError::new(RedisStoreErrorKind::UnexpectedReply)),
            };
            return match waited {
                None => Ok(reply),
                Some(Ok(Value::Int(acked))) if acked >= i64::from(replicas) => Ok(reply),
                Some(Ok(Value::Int(_))) => {
                    Err(RedisStoreError::new(RedisStoreErrorKind::NotReplicated))
                }
                Some(Ok(_)) => Err(RedisStoreError::new(RedisStoreErrorKind::UnexpectedReply)),
                Some(Err(e)) => Err(e.into()),
            };
        }
        Err(RedisStoreError::new(RedisStoreErrorKind::UnexpectedReply))
    }
}

/// Whether a failed write should be tried again on a new connection: the connection
/// was lost, or the node is no longer the primary (it refuses writes, or it unblocked
/// its clients as it changed role).
fn retry_elsewhere(error: &RedisStoreError) -> bool {
    error.kind() == RedisStoreErrorKind::Connection || error.is_read_only() || error.is_unblocked()
}
