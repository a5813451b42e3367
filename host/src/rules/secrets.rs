//! A rule's secrets, and the redactor that hides their values in whatever the rule outputs.
//!
//! A value leaves a rule in more spellings than its own: `console.log(context.secrets)`
//! JSON-encodes it, and an object logged inside a string (`JSON.stringify` of a JSON
//! string) encodes it twice. The redactor is built once per rule (when the catalog is
//! built, not per request) from all three spellings of every value, and finds them in one
//! linear pass (Aho-Corasick, leftmost-longest, so a value containing another is hidden
//! whole).

use std::borrow::Cow;
use std::collections::BTreeMap;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use serde_json::Value;

/// What a secret's value becomes in the rule's output: the one spelling the crate uses.
pub use crate::redacted::REDACTED;

/// A rule's secrets, name to value, with their redactor. Its `Debug` shows names only.
#[derive(Clone, Default)]
pub struct RuleSecrets {
    values: BTreeMap<String, String>,
    redactor: Redactor,
}

impl RuleSecrets {
    pub fn new(values: BTreeMap<String, String>) -> RuleSecrets {
        let redactor = Redactor::new(values.values().map(String::as_str));
        RuleSecrets { values, redactor }
    }

    /// Name to value, as the rule reads them.
    pub fn values(&self) -> &BTreeMap<String, String> {
        &self.values
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// `text` with every spelling of every value replaced by [`REDACTED`]; borrowed when
    /// there was nothing to hide.
    pub fn redact<'t>(&self, text: &'t str) -> Cow<'t, str> {
        self.redactor.redact(text)
    }
}

impl PartialEq for RuleSecrets {
    fn eq(&self, other: &Self) -> bool {
        self.values == other.values
    }
}

impl std::fmt::Debug for RuleSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleSecrets")
            .field("names", &self.values.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Finds the spellings of a set of values.
#[derive(Clone, Default)]
enum Redactor {
    /// Nothing to hide (the common case: no pass over the text).
    #[default]
    Nothing,
    Values(AhoCorasick),
    /// The automaton could not be built: every text is hidden whole rather than risk one.
    Everything,
}

impl Redactor {
    /// Empty values are skipped (they would match everywhere); every other value is hidden,
    /// however short: a one-character secret makes logs hard to read, but leaking it is
    /// worse.
    fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Redactor {
        let mut patterns: Vec<String> = Vec::new();
        for value in values.into_iter().filter(|v| !v.is_empty()) {
            let once = json_escaped(value);
            let twice = json_escaped(&once);
            patterns.extend([value.to_string(), once, twice]);
        }
        patterns.sort_unstable();
        patterns.dedup();
        if patterns.is_empty() {
            return Redactor::Nothing;
        }
        // A contiguous NFA, never the DFA the crate picks by itself for under 100
        // patterns: at the limits (30 values of 4 KiB, ~600 KB of patterns) the DFA took
        // 0.25-105 s to build and up to 120 MB per rule, the NFA 40 ms and 3-6 MB, and it
        // still searches a 100-byte line in ~0.4 us.
        let built = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .kind(Some(AhoCorasickKind::ContiguousNFA))
            .build(&patterns);
        match built {
            Ok(matcher) => Redactor::Values(matcher),
            // Only a pattern set too large for the automaton's ids fails, far beyond 30
            // values of 4 KiB.
            Err(e) => {
                tracing::error!(error = %e, "cannot build a rule's secret redactor; its output is hidden whole");
                Redactor::Everything
            }
        }
    }

    #[cfg(test)]
    fn memory_usage(&self) -> usize {
        match self {
            Redactor::Values(matcher) => matcher.memory_usage(),
            Redactor::Nothing | Redactor::Everything => 0,
        }
    }

    fn redact<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let matcher = match self {
            Redactor::Nothing => return Cow::Borrowed(text),
            Redactor::Everything => return Cow::Owned(REDACTED.to_string()),
            Redactor::Values(matcher) => matcher,
        };
        let mut found = matcher.find_iter(text).peekable();
        if found.peek().is_none() {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for m in found {
            out.push_str(&text[at..m.start()]);
            out.push_str(REDACTED);
            at = m.end();
        }
        out.push_str(&text[at..]);
        Cow::Owned(out)
    }
}

/// `value` as it appears inside a JSON string literal. serde_json escapes exactly what
/// QuickJS's `JSON.stringify` does (`\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, lowercase
/// `\u00xx` for the other control characters, everything else as is); a test through a
/// real rule holds them to it.
fn json_escaped(value: &str) -> String {
    let quoted = Value::String(value.to_string()).to_string();
    quoted[1..quoted.len() - 1].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(pairs: &[(&str, &str)]) -> RuleSecrets {
        RuleSecrets::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn secret_values_are_redacted_longest_first() {
        let s = secrets(&[("A", "abc"), ("B", "abcdef")]);
        assert_eq!(
            s.redact("key=abcdef, short=abc"),
            "key=[redacted], short=[redacted]"
        );
        assert!(matches!(
            RuleSecrets::default().redact("nothing here"),
            Cow::Borrowed("nothing here")
        ));
        assert!(matches!(s.redact("no match"), Cow::Borrowed(_)));
    }

    #[test]
    fn every_spelling_of_a_value_is_redacted() {
        let value = "line1\nsay \"hi\" C:\\dir\t\u{7}end";
        let s = secrets(&[("K", value)]);
        let once = serde_json::to_string(value).unwrap();
        let twice = serde_json::to_string(&once).unwrap();
        assert_eq!(s.redact(value), REDACTED);
        assert_eq!(s.redact(&once), format!("\"{REDACTED}\""));
        assert_eq!(s.redact(&twice), format!("\"\\\"{REDACTED}\\\"\""));
        let logged = serde_json::json!({"K": value}).to_string();
        assert_eq!(s.redact(&logged), format!("{{\"K\":\"{REDACTED}\"}}"));
    }

    #[test]
    fn control_characters_escape_as_quickjs_writes_them() {
        assert_eq!(
            json_escaped("\"\\\u{8}\u{c}\n\r\t\u{1}\u{1f}\u{7f}é\u{2028}"),
            "\\\"\\\\\\b\\f\\n\\r\\t\\u0001\\u001f\u{7f}é\u{2028}"
        );
    }

    #[test]
    fn empty_values_hide_nothing_and_debug_shows_names_only() {
        let s = secrets(&[("EMPTY", ""), ("K", "hunter2")]);
        assert_eq!(s.redact("a b"), "a b");
        let shown = format!("{s:?}");
        assert!(
            shown.contains("EMPTY") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn the_redactor_stays_small_at_the_secret_limits() {
        // 30 values of 4 KiB (a rule's limits), varied so that no structure helps: the DFA
        // the crate would pick took 120 MB here, the NFA takes under 6 MB.
        let mut seed = 1u64;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as usize
        };
        let alphabet = b"abcdefghijklmnopqrstuvwxyz\"\\\n\t\x01";
        let values: BTreeMap<String, String> = (0..30)
            .map(|i| {
                let value = (0..4096)
                    .map(|_| char::from(alphabet[next() % alphabet.len()]))
                    .collect();
                (format!("K{i}"), value)
            })
            .collect();
        let first = values["K0"].clone();
        let s = RuleSecrets::new(values);
        let bytes = s.redactor.memory_usage();
        assert!(bytes < 16 << 20, "{bytes} bytes");
        assert_eq!(s.redact(&format!("<{first}>")), format!("<{REDACTED}>"));
    }
}
