//! The hook's logger: warnings and errors on stderr (the runtime shows them to
//! the user), everything at the configured level in the log file, each line
//! with the container id. Installed first thing; the file is opened only once
//! the hook knows it has work to do.
//!
//! Messages carry container input (the request's value, paths from the spec):
//! every message and the `[ID]` prefix are escaped ([`escape`]: control
//! characters as `\n`, `\u{1b}`…)
//! and bounded to [`MAX_MESSAGE`] bytes before it reaches stderr or the file,
//! so one event is one line and a container cannot forge or flood the log.

use amd_container_common::timestamp::rfc3339;
use log::{Level, LevelFilter, Log, Metadata, Record};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::SystemTime;

struct FileSink {
    container_id: String,
    file: File,
    level: LevelFilter,
}

struct HookLogger {
    sink: Mutex<Option<FileSink>>,
}

static LOGGER: HookLogger = HookLogger {
    sink: Mutex::new(None),
};

impl Log for HookLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        let message = escape(&record.args().to_string());
        if record.level() <= Level::Warn {
            eprintln!("amd-container-hook: {message}");
        }
        let Ok(mut guard) = self.sink.lock() else {
            return;
        };
        if let Some(sink) = guard.as_mut() {
            if record.level() <= sink.level {
                let line = format!(
                    "{} [{}] {:<5} {}\n",
                    rfc3339(SystemTime::now(), true),
                    sink.container_id,
                    record.level(),
                    message
                );
                // One write per line: appends from concurrent hooks do not interleave.
                let _ = sink.file.write_all(line.as_bytes());
            }
        }
    }

    fn flush(&self) {}
}

/// Longest message logged, in bytes; the rest is cut with a note of its length.
pub const MAX_MESSAGE: usize = 4096;

/// One line, printable: control characters escaped (`\n`, `\t`, `\u{1b}`),
/// cut after [`MAX_MESSAGE`] bytes.
pub fn escape(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MAX_MESSAGE) + 32);
    for (i, c) in message.char_indices() {
        if out.len() >= MAX_MESSAGE {
            out.push_str(&format!("… ({} more bytes)", message.len() - i));
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Installs the stderr-only logger.
pub fn init() {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(LevelFilter::Warn);
    }
}

/// Adds the log file. One that cannot be opened is reported on stderr and
/// otherwise ignored: logging must not fail a container start.
pub fn open_file(container_id: &str, log_file: &Path, level: &str) {
    if log_file.as_os_str().is_empty() {
        return;
    }
    let level = level.parse().unwrap_or(LevelFilter::Info);
    match OpenOptions::new().create(true).append(true).open(log_file) {
        Ok(file) => {
            if let Ok(mut guard) = LOGGER.sink.lock() {
                *guard = Some(FileSink {
                    // The id comes from the runtime's state, as the
                    // container's creator chose it: escaped like a message.
                    container_id: escape(container_id),
                    file,
                    level,
                });
                log::set_max_level(level.max(LevelFilter::Warn));
            }
        }
        Err(e) => log::warn!("cannot open log file {}: {e}", log_file.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            escape("AMD_VISIBLE_DEVICES=0\n2026 [x] INFO forged\r\x1b[31m"),
            "AMD_VISIBLE_DEVICES=0\\n2026 [x] INFO forged\\r\\u{1b}[31m"
        );
        assert_eq!(escape("plain é ok"), "plain é ok");
    }

    #[test]
    fn long_messages_are_bounded() {
        let big = "A".repeat(1 << 20);
        let e = escape(&big);
        assert!(e.len() < MAX_MESSAGE + 64, "{}", e.len());
        assert!(e.ends_with(&format!("… ({} more bytes)", (1 << 20) - MAX_MESSAGE)));
    }
}
