//! libyaml's event parser (through unsafe-libyaml, already under
//! serde_yaml_ng) as a safe iterator of the events that nesting depends on:
//! [`EventParser`].
//!
//! Contract: the only `unsafe` of the CDI module; the parser borrows its
//! input for its whole life, lives on the heap (libyaml keeps pointers into
//! it) and is deleted on drop; each event is deleted once read. Reading
//! stops at the first syntax error (the caller's real parse reports it).

use std::marker::PhantomData;
use std::mem::MaybeUninit;
use unsafe_libyaml as unsafe_sys;

/// Where an event starts, as libyaml counts: line and column from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    pub line: u64,
    pub column: u64,
}

/// What [`EventParser::next_event`] read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A sequence or a mapping starts.
    CollectionStart(Mark),
    /// A sequence or a mapping ends.
    CollectionEnd,
    /// The stream ends (or libyaml has no more events).
    StreamEnd,
    /// Anything else (scalars, documents, aliases).
    Other,
}

/// A libyaml parser over one borrowed UTF-8 text.
pub struct EventParser<'a> {
    parser: Box<MaybeUninit<unsafe_sys::yaml_parser_t>>,
    text: PhantomData<&'a str>,
}

impl<'a> EventParser<'a> {
    /// A parser over `text`; `None` if libyaml cannot allocate.
    pub fn new(text: &'a str) -> Option<EventParser<'a>> {
        let mut parser = Box::new(MaybeUninit::uninit());
        let p = parser.as_mut_ptr();
        // SAFETY: `p` points to writable, pinned (boxed) memory for a parser;
        // initialize zeroes and sets it up before anything reads it. The
        // input outlives the parser: `text` is borrowed for `'a`, as long as
        // the parser lives.
        unsafe {
            if unsafe_sys::yaml_parser_initialize(p).fail {
                return None;
            }
            unsafe_sys::yaml_parser_set_encoding(p, unsafe_sys::YAML_UTF8_ENCODING);
            unsafe_sys::yaml_parser_set_input_string(p, text.as_ptr(), text.len() as u64);
        }
        Some(EventParser {
            parser,
            text: PhantomData,
        })
    }

    /// The next event; `None` at a syntax error.
    pub fn next_event(&mut self) -> Option<Event> {
        let p = self.parser.as_mut_ptr();
        let mut event = MaybeUninit::<unsafe_sys::yaml_event_t>::uninit();
        let e = event.as_mut_ptr();
        // SAFETY: `p` is an initialized parser over `text`, which is alive;
        // `e` is written by yaml_parser_parse on success and deleted once
        // its fields are read.
        let (kind, mark) = unsafe {
            if unsafe_sys::yaml_parser_parse(p, e).fail {
                return None;
            }
            let read = ((*e).type_, (*e).start_mark);
            unsafe_sys::yaml_event_delete(e);
            read
        };
        Some(match kind {
            unsafe_sys::YAML_SEQUENCE_START_EVENT | unsafe_sys::YAML_MAPPING_START_EVENT => {
                Event::CollectionStart(Mark {
                    line: mark.line,
                    column: mark.column,
                })
            }
            unsafe_sys::YAML_SEQUENCE_END_EVENT | unsafe_sys::YAML_MAPPING_END_EVENT => {
                Event::CollectionEnd
            }
            unsafe_sys::YAML_STREAM_END_EVENT | unsafe_sys::YAML_NO_EVENT => Event::StreamEnd,
            _ => Event::Other,
        })
    }
}

impl Drop for EventParser<'_> {
    fn drop(&mut self) {
        // SAFETY: initialized in `new` (an `EventParser` exists only then).
        unsafe { unsafe_sys::yaml_parser_delete(self.parser.as_mut_ptr()) }
    }
}
