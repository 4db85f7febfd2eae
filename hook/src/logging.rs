//! The hook's logger: warnings and errors on stderr (the runtime shows them to
//! the user), everything at the configured level in the log file, each line
//! with the container id. Installed first thing; the file is opened only once
//! the hook knows it has work to do.

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
        if record.level() <= Level::Warn {
            eprintln!("amd-container-hook: {}", record.args());
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
                    record.args()
                );
                // One write per line: appends from concurrent hooks do not interleave.
                let _ = sink.file.write_all(line.as_bytes());
            }
        }
    }

    fn flush(&self) {}
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
                    container_id: container_id.to_string(),
                    file,
                    level,
                });
                log::set_max_level(level.max(LevelFilter::Warn));
            }
        }
        Err(e) => log::warn!("cannot open log file {}: {e}", log_file.display()),
    }
}
