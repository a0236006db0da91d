//! Debug lines on stderr when the `DEBUG` environment variable names
//! packcache (`DEBUG=packcache`, `DEBUG=packcache:*` or `DEBUG=*`, as the
//! `debug` package reads it). Silent otherwise, and then free.

use std::sync::OnceLock;

pub fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| {
        std::env::var("DEBUG")
            .is_ok_and(|v| v.split([',', ' ']).any(|p| matches!(p.trim(), "packcache" | "packcache:*" | "*")))
    })
}

/// Writes `packcache: <line>` to stderr when enabled.
pub fn line(line: impl FnOnce() -> String) {
    if enabled() {
        eprintln!("packcache: {}", line());
    }
}

/// Bytes as MiB with one decimal, for log lines.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1048576.0)
}
