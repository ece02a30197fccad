//! The wall clock, and names that are unique within a test run.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
}

/// Now, in whole seconds since the Unix epoch (as `iat` and `exp` count).
pub fn now() -> u64 {
    since_epoch().as_secs()
}

/// Now, in microseconds since the Unix epoch (as `iat_us` counts).
pub fn now_micros() -> u64 {
    u64::try_from(since_epoch().as_micros()).expect("microseconds fit in u64")
}

/// Sleeps until just after the start of the next wall-clock second, so that what follows
/// has most of a second to happen in.
pub async fn start_of_a_second() {
    let into = Duration::from_nanos(u64::from(since_epoch().subsec_nanos()));
    tokio::time::sleep(Duration::from_secs(1) - into + Duration::from_millis(5)).await;
}

fn next() -> u64 {
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// An id no other call in this run returns (a `jti`, a user name).
pub fn uid() -> String {
    format!("id-{}-{}", now(), next())
}

/// A path in the temporary directory that no other call returns, in this process or in
/// another test process: `tower-jwt-auth-<label>-<pid>-<n>`. Nothing is created.
pub fn temp_path(label: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "tower-jwt-auth-{label}-{}-{}",
        std::process::id(),
        next()
    ))
}
