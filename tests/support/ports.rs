//! Loopback ports.

use std::net::TcpListener;

/// A loopback port that was free a moment ago (for a process that binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}
