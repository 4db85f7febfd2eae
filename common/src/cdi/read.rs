//! Reading a CDI spec document from text, JSON or YAML, with bounded work.
//!
//! libyaml, under serde_yaml_ng, takes time quadratic in the nesting depth of
//! flow collections (100 000 nested `{a: ` take a minute), and serde_yaml_ng
//! parses the whole document before its recursion limit applies. So YAML is
//! first walked event by event with libyaml's own parser (`cdi::ffi`),
//! stopping at the first collection nested deeper than [`MAX_DEPTH`]: the
//! work done is linear in the input, and the error names the position. A
//! CDI spec nests fewer than 10 levels. JSON is bounded the same way with a scan of its
//! brackets (serde_json's own limit is 128).

use super::ffi::{Event, EventParser};
use super::spec::Spec;

/// The deepest nesting of collections accepted in a spec document.
pub const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "JSON",
            Format::Yaml => "YAML",
        }
    }
}

/// Why a spec document could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error(
        "not valid {}: nested deeper than {limit} levels at line {line} column {column} \
         (a CDI spec nests fewer than 10)",
        format.name()
    )]
    TooDeep {
        format: Format,
        limit: usize,
        line: u64,
        column: u64,
    },
    #[error("not valid {}: {message}", format.name())]
    Syntax { format: Format, message: String },
    #[error("not a CDI spec: {0}")]
    NotASpec(String),
}

/// Parses `text` into a JSON value, refusing documents nested deeper than
/// [`MAX_DEPTH`] before the full parse.
pub fn parse_document(text: &str, format: Format) -> Result<serde_json::Value, ReadError> {
    let syntax = |e: &dyn std::fmt::Display| ReadError::Syntax {
        format,
        message: e.to_string(),
    };
    match format {
        Format::Json => {
            json_depth(text, MAX_DEPTH)?;
            serde_json::from_str(text).map_err(|e| syntax(&e))
        }
        Format::Yaml => {
            yaml_depth(text, MAX_DEPTH)?;
            serde_yaml_ng::from_str(text).map_err(|e| syntax(&e))
        }
    }
}

/// Parses `text` into a [`Spec`] (no schema check: see `amd-ctk cdi validate`).
pub fn read_spec(text: &str, format: Format) -> Result<Spec, ReadError> {
    let doc = parse_document(text, format)?;
    serde_json::from_value(doc).map_err(|e| ReadError::NotASpec(e.to_string()))
}

/// Fails at the first `[` or `{` (outside strings) nested deeper than
/// `limit`. Anything else, valid or not, is left to the parser.
fn json_depth(text: &str, limit: usize) -> Result<(), ReadError> {
    let (mut depth, mut line, mut column) = (0usize, 1u64, 0u64);
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        column += 1;
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
        } else {
            match c {
                '"' => in_string = true,
                '[' | '{' => {
                    depth += 1;
                    if depth > limit {
                        return Err(ReadError::TooDeep {
                            format: Format::Json,
                            limit,
                            line,
                            column,
                        });
                    }
                }
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        if c == '\n' {
            line += 1;
            column = 0;
        }
    }
    Ok(())
}

/// Fails at the first sequence or mapping nested deeper than `limit`,
/// reading events one at a time and stopping there. A syntax error ends the
/// walk quietly: the real parse reports it.
fn yaml_depth(text: &str, limit: usize) -> Result<(), ReadError> {
    let Some(mut parser) = EventParser::new(text) else {
        return Err(ReadError::Syntax {
            format: Format::Yaml,
            message: "out of memory".into(),
        });
    };
    let mut depth = 0usize;
    loop {
        match parser.next_event() {
            Some(Event::CollectionStart(mark)) => {
                depth += 1;
                if depth > limit {
                    return Err(ReadError::TooDeep {
                        format: Format::Yaml,
                        limit,
                        line: mark.line + 1,
                        column: mark.column + 1,
                    });
                }
            }
            Some(Event::CollectionEnd) => depth = depth.saturating_sub(1),
            None | Some(Event::StreamEnd) => return Ok(()),
            Some(Event::Other) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    const SPEC_YAML: &str = "cdiVersion: 0.5.0\nkind: amd.com/gpu\ndevices:\n- name: \"0\"\n  containerEdits:\n    deviceNodes:\n    - path: /dev/dri/card1\n      major: 226\n      minor: 1\ncontainerEdits:\n  deviceNodes:\n  - path: /dev/kfd\n";

    #[test]
    fn a_spec_reads_in_both_formats() {
        let spec = read_spec(SPEC_YAML, Format::Yaml).unwrap();
        assert_eq!(spec.devices[0].name, "0");
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(read_spec(&json, Format::Json).unwrap(), spec);
    }

    #[test]
    fn deep_nesting_is_refused_fast_with_its_position() {
        let n = 100_000;
        let cases = [
            (Format::Yaml, "{a: ".repeat(n) + "1" + &"}".repeat(n)),
            (Format::Yaml, "[a: ".repeat(n) + "1" + &"]".repeat(n)),
            (Format::Yaml, "[".repeat(n) + &"]".repeat(n)),
            (Format::Yaml, "- ".repeat(n) + "x\n"),
            (Format::Json, "[".repeat(n) + &"]".repeat(n)),
            (Format::Json, "{\"a\":".repeat(n) + "1" + &"}".repeat(n)),
        ];
        for (format, text) in cases {
            let start = Instant::now();
            let err = parse_document(&text, format).unwrap_err();
            assert!(
                start.elapsed() < Duration::from_secs(2),
                "{format:?} {}: {:?}",
                &text[..8],
                start.elapsed()
            );
            match err {
                ReadError::TooDeep { limit, line: 1, .. } => assert_eq!(limit, MAX_DEPTH),
                other => panic!("{format:?} {}: {other}", &text[..8]),
            }
        }
        let err = parse_document(&"{a: ".repeat(n), Format::Yaml).unwrap_err();
        assert_eq!(
            err.to_string(),
            "not valid YAML: nested deeper than 64 levels at line 1 column 257 \
             (a CDI spec nests fewer than 10)"
        );
    }

    #[test]
    fn nesting_up_to_the_limit_and_strings_with_brackets_are_fine() {
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(parse_document(&ok, Format::Yaml).is_ok());
        assert!(parse_document(&ok, Format::Json).is_ok());
        let strings = format!(
            "{{\"a\": \"{}\", 'b': '{}'}}",
            "[{".repeat(200),
            "[{".repeat(200)
        );
        assert!(parse_document(&strings, Format::Yaml).is_ok());
        let strings = format!("{{\"a\": \"{}\\\"\"}}", "[{".repeat(200));
        assert!(parse_document(&strings, Format::Json).is_ok());
        // Syntax errors are the parser's to report.
        let err = parse_document("a: [1, 2\n", Format::Yaml).unwrap_err();
        assert!(matches!(err, ReadError::Syntax { .. }), "{err}");
    }
}
