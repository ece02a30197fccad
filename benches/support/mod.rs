//! What the benchmarks share: the secret, the claims a bare `decode` deserializes, the
//! clock, and polling a future that is ready at once.

// Each bench uses some of these, never all.
#![allow(dead_code)]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;

pub(crate) const SECRET: &[u8] = b"benchmark-secret-0123456789abcdef0123456789";

/// The typical claims a bare `decode` deserializes.
#[derive(Deserialize)]
#[allow(dead_code)]
pub(crate) struct Typical {
    sub: String,
    iat: u64,
    exp: u64,
    jti: String,
}

/// Now, in whole seconds since the Unix epoch.
pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Polls a future that is expected to be ready at once (the layer's success path and
/// the memory store are).
///
/// # Panics
///
/// When it is pending.
pub(crate) fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("not ready"),
    }
}
