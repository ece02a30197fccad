//! A wall clock that is off by a chosen offset, for one process and its children, which a
//! test can step at any moment while the process runs: an `LD_PRELOAD` shim (compiled
//! from C with `gcc` on first use, once per test binary) that shifts what
//! `clock_gettime(CLOCK_REALTIME)` (and `CLOCK_REALTIME_COARSE`), `gettimeofday`, `time`
//! and `timespec_get` return. Monotonic clocks pass through unchanged, so timers, sleeps
//! and timeouts keep working.
//!
//! The offset (signed 64-bit microseconds, native byte order) lives in an 8-byte file
//! that the shim maps read-only and reads on every call; [`ShiftedClock::set`] rewrites
//! those 8 bytes in place, which every process under the shim sees at its next call.
//!
//! Linux only (`LD_PRELOAD`, `dlsym(RTLD_NEXT)`). Only dynamically linked programs that call the libc functions are affected (Rust's
//! `SystemTime::now`, `redis-server`'s `gettimeofday`, coreutils' `date`); statically
//! linked ones, or a raw `syscall`/vDSO call, would not be.

use std::fs::{File, OpenOptions};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The shim. Every shifted call reads the offset afresh from the mapped file.
const SHIM: &str = r#"
#define _GNU_SOURCE
/* The header's prototype of gettimeofday differs between glibc versions (its second
   argument): keep it out of the way and define the function with our own. */
#define gettimeofday shift_clock_hidden_gettimeofday
#include <sys/time.h>
#undef gettimeofday
#include <dlfcn.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);
typedef int (*gettimeofday_fn)(struct timeval *, void *);
typedef int (*timespec_get_fn)(struct timespec *, int);

/* The mapped offset; NULL until mapped, (void *)-1 when there is none. */
static volatile int64_t *shift_map;

static volatile int64_t *mapped(void) {
    volatile int64_t *map = __atomic_load_n(&shift_map, __ATOMIC_ACQUIRE);
    if (map) return map;
    const char *path = getenv("SHIFT_CLOCK_FILE");
    volatile int64_t *found = (volatile int64_t *)-1;
    if (path && *path) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            void *p = mmap(NULL, sizeof(int64_t), PROT_READ, MAP_SHARED, fd, 0);
            close(fd);
            if (p != MAP_FAILED) found = (volatile int64_t *)p;
        }
        if (found == (volatile int64_t *)-1) {
            static const char msg[] = "shift-clock shim: cannot map SHIFT_CLOCK_FILE; clock not shifted\n";
            ssize_t ignored = write(2, msg, sizeof msg - 1);
            (void)ignored;
        }
    }
    volatile int64_t *expected = NULL;
    if (!__atomic_compare_exchange_n(&shift_map, &expected, found, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE)) {
        /* Another thread mapped it first: use its mapping (ours leaks 4 KiB, once). */
        return expected;
    }
    return found;
}

/* The offset in microseconds; read twice until stable, so a rewrite that races this
   read is never seen half done. */
static int64_t offset_us(void) {
    volatile int64_t *map = mapped();
    if (map == (volatile int64_t *)-1) return 0;
    int64_t a = __atomic_load_n(map, __ATOMIC_ACQUIRE);
    for (;;) {
        int64_t b = __atomic_load_n(map, __ATOMIC_ACQUIRE);
        if (a == b) return a;
        a = b;
    }
}

static void shift_timespec(struct timespec *ts) {
    int64_t off = offset_us();
    if (!off) return;
    int64_t sec = off / 1000000;
    int64_t nsec = (off % 1000000) * 1000;
    ts->tv_sec += sec;
    ts->tv_nsec += nsec;
    if (ts->tv_nsec >= 1000000000) { ts->tv_nsec -= 1000000000; ts->tv_sec += 1; }
    if (ts->tv_nsec < 0) { ts->tv_nsec += 1000000000; ts->tv_sec -= 1; }
}

static void *next(const char *name) {
    void *f = dlsym(RTLD_NEXT, name);
    if (!f) {
        static const char msg[] = "shift-clock shim: dlsym(RTLD_NEXT) failed\n";
        ssize_t ignored = write(2, msg, sizeof msg - 1);
        (void)ignored;
        abort();
    }
    return f;
}

int clock_gettime(clockid_t id, struct timespec *ts) {
    static clock_gettime_fn real;
    if (!real) real = (clock_gettime_fn)next("clock_gettime");
    int rc = real(id, ts);
    if (rc == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE))
        shift_timespec(ts);
    return rc;
}

int gettimeofday(struct timeval *tv, void *tz) {
    static gettimeofday_fn real;
    if (!real) real = (gettimeofday_fn)next("gettimeofday");
    int rc = real(tv, tz);
    if (rc == 0 && tv) {
        struct timespec ts = { tv->tv_sec, (long)tv->tv_usec * 1000 };
        shift_timespec(&ts);
        tv->tv_sec = ts.tv_sec;
        tv->tv_usec = ts.tv_nsec / 1000;
    }
    return rc;
}

time_t time(time_t *out) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (out) *out = ts.tv_sec;
    return ts.tv_sec;
}

int timespec_get(struct timespec *ts, int base) {
    static timespec_get_fn real;
    if (!real) real = (timespec_get_fn)next("timespec_get");
    int rc = real(ts, base);
    if (rc == TIME_UTC) shift_timespec(ts);
    return rc;
}
"#;

/// The compiled shim (`libshift.so`), built once per test binary (with `gcc`, or `cc`
/// when there is no `gcc`), in a directory of the temporary directory named after the
/// source's hash, which later runs reuse.
///
/// # Panics
///
/// When there is no C compiler or it fails (with its output).
pub fn shim_path() -> &'static Path {
    static SHIM_SO: OnceLock<PathBuf> = OnceLock::new();
    SHIM_SO.get_or_init(|| {
        let mut hash = DefaultHasher::new();
        SHIM.hash(&mut hash);
        let dir =
            std::env::temp_dir().join(format!("tower-jwt-auth-shift-clock-{:016x}", hash.finish()));
        let library = dir.join("libshift.so");
        if library.exists() {
            return library;
        }
        std::fs::create_dir_all(&dir).expect("create the shim's directory");
        // Built under names of this process's own, then renamed into place: test
        // binaries running at once never see a half-written library.
        let source = dir.join(format!("shim-{}.c", std::process::id()));
        let built = dir.join(format!("libshift-{}.so.tmp", std::process::id()));
        std::fs::write(&source, SHIM).expect("write the shim's source");
        let compiler = if Command::new("gcc").arg("--version").output().is_ok() {
            "gcc"
        } else {
            "cc"
        };
        let out = Command::new(compiler)
            .args(["-shared", "-fPIC", "-O2", "-Wall", "-o"])
            .arg(&built)
            .arg(&source)
            .arg("-ldl")
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {compiler} ({e}): the clock tests compile an LD_PRELOAD shim \
                     and need a C compiler (`apt-get install -y gcc`)"
                )
            });
        let _ = std::fs::remove_file(&source);
        assert!(
            out.status.success(),
            "{compiler} failed to build the clock shim:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::rename(&built, &library).expect("put the shim in place");
        library
    })
}

/// One shifted wall clock, shared by every process started with its [`env`](Self::env).
#[derive(Debug)]
pub struct ShiftedClock {
    path: PathBuf,
    file: File,
}

impl ShiftedClock {
    /// A clock `offset_secs` seconds ahead (negative: behind) of the real one.
    pub fn new(offset_secs: i64) -> Self {
        shim_path();
        let path = {
            let mut p = super::clock::temp_path("shift-clock-offset").into_os_string();
            p.push(".bin");
            PathBuf::from(p)
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .expect("create the clock offset file");
        let clock = Self { path, file };
        clock.set(offset_secs);
        clock
    }

    /// Steps the clock of every process under it to `offset_secs` from the real clock,
    /// at once (their next call sees it).
    pub fn set(&self, offset_secs: i64) {
        self.set_micros(offset_secs.checked_mul(1_000_000).expect("offset fits"));
    }

    /// [`set`](Self::set) in microseconds.
    pub fn set_micros(&self, offset_us: i64) {
        self.file
            .write_all_at(&offset_us.to_ne_bytes(), 0)
            .expect("write the clock offset");
    }

    /// The offset now in force, in microseconds.
    pub fn offset_micros(&self) -> i64 {
        let mut bytes = [0; 8];
        self.file
            .read_exact_at(&mut bytes, 0)
            .expect("read the clock offset");
        i64::from_ne_bytes(bytes)
    }

    /// The environment that puts a process (and its children) under this clock.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("LD_PRELOAD", shim_path().display().to_string()),
            ("SHIFT_CLOCK_FILE", self.path.display().to_string()),
        ]
    }
}

impl Drop for ShiftedClock {
    fn drop(&mut self) {
        // A process still running keeps its mapping of the file.
        let _ = std::fs::remove_file(&self.path);
    }
}
