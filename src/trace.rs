//! The crate's `tracing` events (feature `tracing`), target `tower_jwt_auth`: macros that
//! compile to nothing without the feature, so a call site needs no `cfg` of its own.
//!
//! Events carry reason codes, error kinds, counts and durations only: never a token, a
//! claim, a key, a Redis URL or a member of a Redis set.

// The store's events are the only users so far.
#![cfg_attr(not(feature = "redis"), allow(unused_macros))]

/// A `warn` event: trouble an operator should look at (the store cannot answer or
/// record, the mirror is stale, a full resync).
macro_rules! warn_event {
    ($($arg:tt)+) => {
        #[cfg(feature = "tracing")]
        ::tracing::warn!(target: "tower_jwt_auth", $($arg)+);
    };
}

/// An `info` event: the store recovered, or finished a load or resync.
macro_rules! info_event {
    ($($arg:tt)+) => {
        #[cfg(feature = "tracing")]
        ::tracing::info!(target: "tower_jwt_auth", $($arg)+);
    };
}

/// A `debug` event: each further failure of an outage already reported at `warn`.
macro_rules! debug_event {
    ($($arg:tt)+) => {
        #[cfg(feature = "tracing")]
        ::tracing::debug!(target: "tower_jwt_auth", $($arg)+);
    };
}
