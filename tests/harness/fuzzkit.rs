//! Cheap generators for the property tests of issue 9, item 10, shared by
//! common/tests/fuzz_*.rs, hook/tests/fuzz_container.rs and the hook's BPF
//! fuzz module (a dev-dependency of both crates).
//!
//! proptest runs each property 100 000 times and draws one `u64` seed per
//! case; [`Gen`] turns the seed into an input. Building inputs from a seed
//! with a xorshift generator costs a few hundred nanoseconds, where proptest's
//! composed strategies cost milliseconds per case in the dev profile. A
//! failure reports the seed, which reproduces the input exactly.
//!
//! Inputs are made the way a fuzzer's corpus would be: documents built from
//! the parser's own vocabulary (so that most get past the first byte), then
//! mutated byte-wise (flips, cuts, splices, duplicated spans), plus raw bytes.

use proptest::test_runner::Config as ProptestConfig;
use serde_json::{Map, Value};

/// Cases per property: 100 000, or `PROPTEST_CASES` when set (a longer
/// run, or a quick one while debugging).
pub fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

/// The proptest configuration of every property: [`cases`] cases, no
/// failure-persistence files (a failure prints its seed instead).
pub fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A xorshift64* generator.
pub struct Gen(u64);

impl Gen {
    pub fn new(seed: u64) -> Gen {
        // Any non-zero state; mix the seed so that nearby seeds differ.
        Gen(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True once in `n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// An integer that is often small, sometimes at an edge, sometimes any.
    pub fn int(&mut self) -> i64 {
        match self.below(6) {
            0..=2 => self.below(20) as i64 - 4,
            3 => *self.pick(&[
                0,
                -1,
                i64::MIN,
                i64::MAX,
                u32::MAX as i64,
                i32::MIN as i64,
                i32::MAX as i64,
                65535,
                65536,
            ]),
            _ => self.next_u64() as i64,
        }
    }

    pub fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max + 1);
        (0..n).map(|_| self.next_u64() as u8).collect()
    }

    /// A short string: vocabulary, digits, odd characters.
    pub fn string(&mut self, vocabulary: &[&str]) -> String {
        let mut s = String::new();
        for _ in 0..self.below(4) {
            match self.below(6) {
                0..=2 if !vocabulary.is_empty() => s.push_str(self.pick::<&str>(vocabulary)),
                3 => s.push_str(&self.int().to_string()),
                4 => {
                    s.push(char::from_u32(self.next_u64() as u32 % 0x11_0000).unwrap_or('\u{fffd}'))
                }
                _ => s.push(*self.pick(&['/', '.', '-', '=', ':', ',', ' ', '\n', '\0', 'a', 'é'])),
            }
        }
        s
    }

    /// A JSON value whose object keys come from `keys` (mostly) and whose
    /// strings come from `words`, at most `depth` levels deep.
    pub fn json(&mut self, keys: &[&str], words: &[&str], depth: usize) -> Value {
        let leaf = depth == 0 || self.one_in(3);
        match self.below(if leaf { 5 } else { 7 }) {
            0 => Value::Null,
            1 => Value::Bool(self.one_in(2)),
            2 => Value::from(self.int()),
            3 if self.one_in(4) => Value::from(self.next_u64() as f64 / 7.0),
            3 | 4 => Value::from(self.string(words)),
            5 => {
                let n = self.below(4);
                Value::Array((0..n).map(|_| self.json(keys, words, depth - 1)).collect())
            }
            _ => {
                let mut m = Map::new();
                for _ in 0..self.below(6) {
                    let k = if self.one_in(8) {
                        self.string(&[])
                    } else {
                        self.pick(keys).to_string()
                    };
                    m.insert(k, self.json(keys, words, depth - 1));
                }
                Value::Object(m)
            }
        }
    }

    /// Sets `value` at the path of object keys `at` inside `doc` (creating
    /// objects, replacing non-objects on the way).
    pub fn put(doc: &mut Value, at: &[&str], value: Value) {
        let mut cur = doc;
        for k in at {
            if !cur.is_object() {
                *cur = Value::Object(Map::new());
            }
            let Value::Object(m) = cur else {
                return;
            };
            cur = m.entry(k.to_string()).or_insert(Value::Null);
        }
        *cur = value;
    }

    /// Byte-level mutations, as a fuzzer makes them: flip, cut, insert,
    /// duplicate or drop a span, truncate.
    pub fn mutate(&mut self, bytes: &mut Vec<u8>) {
        for _ in 0..1 + self.below(3) {
            let len = bytes.len();
            match self.below(6) {
                0 if len > 0 => {
                    let i = self.below(len);
                    bytes[i] ^= 1 << self.below(8);
                }
                1 if len > 0 => bytes.truncate(self.below(len)),
                2 => {
                    let i = self.below(len + 1);
                    let b = *self.pick(b"{}[]\",:'-# \n\\0x\x00\xff");
                    bytes.insert(i, b);
                }
                3 if len > 0 => {
                    let a = self.below(len);
                    let b = a + self.below((len - a).min(16) + 1);
                    let span = bytes[a..b].to_vec();
                    let at = self.below(len + 1);
                    bytes.splice(at..at, span);
                }
                4 if len > 0 => {
                    let a = self.below(len);
                    let b = a + self.below((len - a).min(16) + 1);
                    bytes.drain(a..b);
                }
                _ => {
                    let i = self.below(len + 1);
                    let n = self.next_u64() as u8;
                    bytes.insert(i, n);
                }
            }
        }
    }

    /// `doc` serialized, then (half the time) mutated; or raw bytes.
    pub fn document(&mut self, doc: &Value) -> Vec<u8> {
        match self.below(8) {
            0 => self.bytes(64),
            1..=3 => serde_json::to_vec(doc).unwrap_or_default(),
            _ => {
                let mut b = serde_json::to_vec(doc).unwrap_or_default();
                self.mutate(&mut b);
                b
            }
        }
    }
}
