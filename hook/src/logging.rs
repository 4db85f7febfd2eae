//! The hook's logger: warnings and errors on stderr (the runtime shows them to
//! the user), everything at the configured level in the log file, each line
//! with the container id. Installed first thing; the file is opened only once
//! the hook knows it has work to do.

use log::{Level, LevelFilter, Log, Metadata, Record};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

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
                    rfc3339_now(),
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

fn rfc3339_now() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day); H. Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn civil_dates() {
        assert_eq!(super::civil_from_days(0), (1970, 1, 1));
        assert_eq!(super::civil_from_days(20_416), (2025, 11, 24));
        assert_eq!(super::civil_from_days(11_016), (2000, 2, 29));
    }
}
