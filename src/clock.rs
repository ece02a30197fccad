//! The crate's notion of time.
//!
//! JWT times (`iat`, `exp`, `nbf`) are whole seconds. To order a login against a
//! logout-everywhere that happens in the same second, tokens this crate issues also carry
//! their issue time in microseconds (the `iat_us` claim), and a subject cutoff is recorded
//! in microseconds too. Both come from [`stamp`], a process-wide clock that is strictly
//! increasing: two calls in one process never return the same value, even within one
//! microsecond, so a token issued after a logout-everywhere in this process always has a
//! later stamp than the cutoff, and one issued before it an earlier one.
//!
//! Stamps learnt from other instances (a cutoff read from a shared store) are fed to
//! [`observe`], so that a token issued here after this instance has seen a cutoff is
//! ordered after it even if this machine's clock is slightly behind (a hybrid logical
//! clock). Across instances, ordering is otherwise as good as the clock synchronisation.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

static LAST: AtomicU64 = AtomicU64::new(0);

/// Wall-clock microseconds since the Unix epoch (0 if the clock is before 1970).
pub(crate) fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Wall-clock whole seconds since the Unix epoch, as `jsonwebtoken` counts them.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A strictly increasing microsecond timestamp: `max(now, last + 1)`.
pub(crate) fn stamp() -> u64 {
    let now = now_micros();
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(last.saturating_add(1));
        match LAST.compare_exchange_weak(last, next, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(actual) => last = actual,
        }
    }
}

/// Makes every later [`stamp`] greater than `seen`.
pub(crate) fn observe(seen: u64) {
    LAST.fetch_max(seen, Ordering::AcqRel);
}

/// Where [`system_time`] saturates: about 34,800 years after the epoch, which every
/// platform's `SystemTime` can hold.
const FAR_FUTURE: Duration = Duration::from_secs(1 << 40);

/// The instant at `unix_secs` seconds after the epoch, saturating at [`FAR_FUTURE`]: a
/// huge `exp` or token lifetime must not overflow `SystemTime`, which panics.
pub(crate) fn system_time(unix_secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(unix_secs).min(FAR_FUTURE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_strictly_increase() {
        let mut last = stamp();
        for _ in 0..10_000 {
            let next = stamp();
            assert!(next > last);
            last = next;
        }
    }

    #[test]
    fn observe_pushes_the_clock_forward() {
        let ahead = now_micros() + 5_000_000;
        observe(ahead);
        assert!(stamp() > ahead);
    }
}
