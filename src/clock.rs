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
//! clock). A stamp can push this clock at most a *lead* ahead of the wall clock (half
//! the leeway): a cutoff from an instance whose clock runs far ahead, or one written on
//! purpose far in the future, is taken as "now plus the lead", so the tokens issued here
//! afterwards are ordered after it and still carry an `iat` that every instance accepts.
//! Across instances, ordering is otherwise as good as the clock synchronisation.

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

/// The widest lead [`observe`] was given (µs): how far ahead of the wall clock the
/// stamp clock may legitimately be. Starts at half the default leeway.
static LEAD: AtomicU64 = AtomicU64::new(crate::layer::DEFAULT_LEEWAY.as_micros() as u64 / 2);

/// A strictly increasing microsecond timestamp: `max(now, last + 1)`, unless the last
/// stamp is further ahead of the wall clock than any lead allows: the wall clock was
/// stepped back, and stamps restart from it (else every token issued here would carry
/// an `iat` in the future until the clock caught up).
///
/// After such a step, a subject whose logout-everywhere was recorded within the step
/// before it is refused until the clock is back past that cutoff: the crate fails
/// closed for it rather than accept a token issued before it.
pub(crate) fn stamp() -> u64 {
    let now = now_micros();
    let lead = LEAD.load(Ordering::Relaxed);
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = if last > now.saturating_add(lead) {
            now
        } else {
            now.max(last.saturating_add(1))
        };
        match LAST.compare_exchange_weak(last, next, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(actual) => last = actual,
        }
    }
}

/// Makes every later [`stamp`] greater than `seen`, or than `now + lead` (µs) when `seen`
/// is further ahead; returns the stamp taken (`seen`, or that bound).
pub(crate) fn observe(seen: u64, lead: u64) -> u64 {
    LEAD.fetch_max(lead, Ordering::Relaxed);
    let taken = seen.min(now_micros().saturating_add(lead));
    LAST.fetch_max(taken, Ordering::AcqRel);
    taken
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
        let ahead = now_micros() + 1_500_000;
        assert_eq!(observe(ahead, 2_000_000), ahead);
        assert!(stamp() > ahead);
    }

    #[test]
    fn observe_moves_the_clock_at_most_the_lead_ahead() {
        let lead = 2_000_000;
        let far = now_micros() + 600_000_000;
        let taken = observe(far, lead);
        assert!(taken < far);
        assert!(taken <= now_micros() + lead);
        let next = stamp();
        assert!(
            next > taken,
            "a later stamp is ordered after the cutoff taken"
        );
        // (The other test may have pushed it 1.5 s ahead, no further.)
        assert!(next < now_micros() + lead + 1_000_000, "never far ahead");
    }
}
