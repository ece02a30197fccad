//! The write path: one shared connection to the primary for every revoke, reopened
//! (through [`Primary::connect`], so re-resolved with Sentinel or a cluster) after it
//! fails, and the replicas' confirmation (`WAIT`) when the configuration asks for it.
//! With a cluster, a `MOVED` reply sends the next connection to the node it names, and
//! an `ASK` reply sends the call (with `ASKING`) to the node the slot is migrating to.
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

    /// When a write started now must be done: [`Timing::write_limit`] from now. An
    /// operation of several calls passes one deadline to all of them.
    pub(super) fn deadline(&self) -> Instant {
        Instant::now() + self.timing.write_limit()
    }

    /// Runs a write script, and `WAIT` for the required replicas, within the write
    /// limit. A write that failed because the connection was lost, or because the node
    /// is no longer the primary (or, with a cluster, no longer holds the slot), is
    /// retried on a new connection until the limit: the scripts are idempotent, so a
    /// write that did land before the loss is harmless to repeat.
    pub(super) async fn write(&self, script: &ScriptInvocation<'_>) -> Result<(), RedisStoreError> {
        self.write_returning(script, self.deadline())
            .await
            .map(drop)
    }

    /// [`write`](Self::write) by `deadline`, returning the script's reply. The script
    /// must be safe to repeat (a retried call may find its own earlier effect).
    pub(super) async fn write_returning(
        &self,
        script: &ScriptInvocation<'_>,
        deadline: Instant,
    ) -> Result<Value, RedisStoreError> {
        self.run(Op::Script(script), deadline).await
    }

    /// Reads on the primary by `deadline` (what a write script needs to be told first,
    /// so that it declares every key it touches), retried like a write.
    pub(super) async fn read(
        &self,
        cmd: &::redis::Cmd,
        deadline: Instant,
    ) -> Result<Value, RedisStoreError> {
        self.run(Op::Read(cmd), deadline).await
    }

    /// Runs `op` until it succeeds, fails for good, or `deadline` passes, reconnecting
    /// (and following `MOVED` and `ASK`) as [`write`](Self::write) says.
    async fn run(&self, op: Op<'_>, deadline: Instant) -> Result<Value, RedisStoreError> {
        let mut last_error: Option<RedisStoreError> = None;
        // With a cluster: the node an `ASK` reply named, for the next attempt.
        let mut asked: Option<(String, u16)> = None;
        loop {
            let attempt = async {
                if let Some(target) = asked.take()
                    && let Some(conn) = self.primary.connect_asked(target, &self.timing).await
                {
                    // A one-off connection, never the writer's: the slot still belongs
                    // to the node it is being migrated from.
                    let mut conn = conn?;
                    return Ok((None, self.attempt(op, &mut conn, true).await));
                }
                let (generation, mut conn) = self.connection().await?;
                let result = self.attempt(op, &mut conn, false).await;
                Ok::<_, RedisStoreError>((Some(generation), result))
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
                    if !retry_elsewhere(&e) {
                        return Err(e);
                    }
                    self.primary.failed(&e);
                    asked = e.asked_to();
                    // `ASK` concerns this one call: the connection stays.
                    if let Some(generation) = generation
                        && asked.is_none()
                    {
                        self.discard(generation).await;
                    }
                    e
                }
                // Could not connect: try again until the deadline.
                Err(e) => e,
            };
            let pause = if asked.is_some() {
                Duration::ZERO
            } else {
                WRITE_RETRY_PAUSE
            };
            if Instant::now() + pause >= deadline {
                return Err(error);
            }
            last_error = Some(error);
            tokio::time::sleep(pause).await;
        }
    }

    /// The script, then `WAIT` in the same pipeline when replicas are required; or the
    /// read. Preceded by `ASKING` on the node an `ASK` named. Loads the script when the
    /// node does not have it (a fresh primary, say).
    async fn attempt(
        &self,
        op: Op<'_>,
        conn: &mut MultiplexedConnection,
        asking: bool,
    ) -> Result<Value, RedisStoreError> {
        let replicas = match op {
            Op::Script(_) => self.timing.min_replicas,
            Op::Read(_) => 0,
        };
        for _ in 0..2 {
            let mut pipe = ::redis::pipe();
            pipe.ignore_errors();
            if asking {
                pipe.cmd("ASKING");
            }
            match op {
                Op::Script(script) => pipe.invoke_script(script),
                Op::Read(cmd) => pipe.add_command(cmd.clone()),
            };
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
                    let Op::Script(script) = op else {
                        return Err(e.into());
                    };
                    if asking {
                        // `ASKING` covers one command: load, then run with it again.
                        ::redis::cmd("ASKING")
                            .exec_async(conn)
                            .await
                            .map_err(RedisStoreError::from)?;
                    }
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

/// What the writer runs.
#[derive(Clone, Copy)]
enum Op<'a> {
    /// A write script (followed by `WAIT` when replicas are required).
    Script(&'a ScriptInvocation<'a>),
    /// A read a write depends on.
    Read(&'a ::redis::Cmd),
}

/// Whether a failed write should be tried again on a new connection: the connection
/// was lost, or the node is no longer the primary (it refuses writes, or it unblocked
/// its clients as it changed role), or, with a cluster, the slot is elsewhere.
fn retry_elsewhere(error: &RedisStoreError) -> bool {
    error.kind() == RedisStoreErrorKind::Connection
        || error.is_read_only()
        || error.is_unblocked()
        || error.is_redirect()
}
