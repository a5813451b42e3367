//! A rule's output as kept: its secrets redacted first, then bounded.
//!
//! Everything kept of one execution's output has a bound, whatever the rule does: console
//! lines (and tokenhost's notes to the author) share `max_log_bytes`, each line counted as
//! it is stored and served (its message JSON-encoded plus [`LINE_OVERHEAD`]), so 20,000
//! empty lines cost what 4 KiB of text does; the failure's own text (the error's name and
//! message, the JS stack) has fixed allowances. Redaction comes before every cut, so a cut
//! never leaves the first characters of a secret.

use std::borrow::Cow;
use std::sync::Arc;

use super::outcome::{Failure, Level, LogLine, Outcome};
use super::secrets::RuleSecrets;

/// What one line costs besides its message: `{"level":"debug","message":""},` as the entry
/// stores and serves it, rounded up (the array's brackets fit in the rounding).
pub const LINE_OVERHEAD: usize = 32;
/// How much of a failure's text is kept (JSON bytes): the error's name, its message, the
/// JS stack. Enough to debug; bounded whatever the rule throws.
pub const MAX_FAILURE_NAME_BYTES: usize = 64;
pub const MAX_FAILURE_MESSAGE_BYTES: usize = 512;
pub const MAX_STACK_BYTES: usize = 1024;
/// The longest fixed text around a failure's own in its description (`the rule threw ...`).
const MAX_CAUSE_TEXT_BYTES: usize = 128;
/// The most JSON a failure's description (a log entry's `cause`) takes.
pub const MAX_CAUSE_BYTES: usize =
    MAX_CAUSE_TEXT_BYTES + MAX_FAILURE_NAME_BYTES + MAX_FAILURE_MESSAGE_BYTES;
/// The longest mark a cut console line ends with.
const MAX_CONSOLE_MARK_BYTES: usize = 64;
const FAILURE_MARK: &str = "… [truncated]";

/// The most JSON a log entry's `logs` take: the console lines (the last one may carry the
/// cut mark past the cap) and the stack, a line of its own.
pub fn max_logs_bytes(max_log_bytes: usize) -> usize {
    max_log_bytes + LINE_OVERHEAD + MAX_CONSOLE_MARK_BYTES + LINE_OVERHEAD + MAX_STACK_BYTES
}

/// The most JSON one execution's kept output takes in a log entry: `logs` and `cause`.
/// At the default 4 KiB cap: 5,952 bytes.
pub fn max_kept_output_bytes(max_log_bytes: usize) -> usize {
    max_logs_bytes(max_log_bytes) + MAX_CAUSE_BYTES
}

/// Holds output kept before these bounds did (entries stored by an earlier version, or
/// under a larger cap) to them: lines past [`max_logs_bytes`] are capped again as the
/// console is, a long cause is cut. Output within its bounds is left as it is; true if
/// anything was cut.
pub fn rebound(lines: &mut Vec<LogLine>, cause: &mut Option<String>, max_log_bytes: usize) -> bool {
    let mut logs = Logs::new(max_log_bytes, Arc::new(RuleSecrets::default()));
    let stored: usize = lines
        .iter()
        .map(|l| LINE_OVERHEAD + json_len(&l.message))
        .sum();
    if stored > max_logs_bytes(max_log_bytes) {
        for line in std::mem::take(lines) {
            logs.push(line.level, line.message);
        }
        *lines = std::mem::take(&mut logs.lines);
    }
    if let Some(cause) = cause {
        logs.keep(cause, MAX_CAUSE_BYTES);
    }
    logs.truncated
}

/// One execution's console output as it is captured: redacted with the executing rule's
/// secrets, then counted against the cap; past the cap, nothing more is kept.
#[derive(Debug)]
pub(crate) struct Logs {
    lines: Vec<LogLine>,
    /// JSON bytes the kept lines take, overhead included.
    used: usize,
    cap: usize,
    /// The cap was reached: later lines are dropped without being looked at.
    full: bool,
    /// Something was cut: console output or a failure's text.
    truncated: bool,
    secrets: Arc<RuleSecrets>,
}

impl Logs {
    pub(crate) fn new(cap: usize, secrets: Arc<RuleSecrets>) -> Self {
        Logs {
            lines: Vec::new(),
            used: 0,
            cap,
            full: false,
            truncated: false,
            secrets,
        }
    }

    pub(crate) fn push(&mut self, level: Level, message: String) {
        // A guest that keeps logging past the cap costs a branch per call, nothing more.
        if self.full {
            return;
        }
        let message = redacted(&self.secrets, message);
        let cost = LINE_OVERHEAD + json_len(&message);
        if self.used + cost <= self.cap {
            self.used += cost;
            self.lines.push(LogLine { level, message });
            return;
        }
        self.full = true;
        self.truncated = true;
        let mark = format!("… [log output truncated at {} bytes]", self.cap);
        let room = self
            .cap
            .saturating_sub(self.used + LINE_OVERHEAD + json_len(&mark));
        let mut kept = cut_json(&message, room).to_string();
        kept.push_str(&mark);
        self.used += LINE_OVERHEAD + json_len(&kept);
        self.lines.push(LogLine {
            level,
            message: kept,
        });
    }

    /// Redacts the text of `outcome` that goes to clients and logs (a denial's
    /// description, a failure's name, message and stack) and cuts a failure's text to its
    /// allowances. The token is the rule's product and is left as it is.
    pub(crate) fn settle(&mut self, outcome: &mut Outcome) {
        match outcome {
            Outcome::Issued { .. } => {}
            Outcome::Denied { denial } => {
                denial.message = redacted(&self.secrets, std::mem::take(&mut denial.message));
            }
            Outcome::Failed { failure } => match failure {
                Failure::Exception {
                    name,
                    message,
                    stack,
                } => {
                    self.keep(name, MAX_FAILURE_NAME_BYTES);
                    self.keep(message, MAX_FAILURE_MESSAGE_BYTES);
                    if let Some(stack) = stack {
                        self.keep(stack, MAX_STACK_BYTES);
                    }
                }
                Failure::Trap { message } | Failure::InvalidResult { message } => {
                    self.keep(message, MAX_FAILURE_MESSAGE_BYTES);
                }
                // No text of the rule's in these.
                Failure::OutOfFuel { .. }
                | Failure::MemoryLimit
                | Failure::Deadline { .. }
                | Failure::StackOverflow
                | Failure::NoCallback
                | Failure::ClaimsTooLarge { .. } => {}
            },
        }
    }

    /// The kept lines, and whether anything was cut.
    pub(crate) fn take(&mut self) -> (Vec<LogLine>, bool) {
        (std::mem::take(&mut self.lines), self.truncated)
    }

    /// Redacts `text`, then cuts it to `limit` JSON bytes (its mark included).
    fn keep(&mut self, text: &mut String, limit: usize) {
        *text = redacted(&self.secrets, std::mem::take(text));
        if json_len(text) > limit {
            let end = cut_json(text, limit.saturating_sub(FAILURE_MARK.len())).len();
            text.truncate(end);
            text.push_str(FAILURE_MARK);
            self.truncated = true;
        }
    }
}

/// `text` with `secrets` redacted, reusing its allocation when there was nothing to hide.
fn redacted(secrets: &RuleSecrets, text: String) -> String {
    let owned = match secrets.redact(&text) {
        Cow::Owned(redacted) => Some(redacted),
        Cow::Borrowed(_) => None,
    };
    owned.unwrap_or(text)
}

/// The length of `text` inside a JSON string literal (serde_json's escaping).
pub(crate) fn json_len(text: &str) -> usize {
    text.len()
        + text
            .bytes()
            .map(|b| match b {
                b'"' | b'\\' | 0x08 | 0x0c | b'\n' | b'\r' | b'\t' => 1,
                0..=0x1f => 5,
                _ => 0,
            })
            .sum::<usize>()
}

/// The longest prefix of `text` whose JSON takes at most `limit` bytes.
fn cut_json(text: &str, limit: usize) -> &str {
    let mut used = 0;
    for (at, c) in text.char_indices() {
        let mut buf = [0u8; 4];
        used += json_len(c.encode_utf8(&mut buf));
        if used > limit {
            return &text[..at];
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::rules::Denial;
    use crate::rules::DenialCode;

    fn no_secrets() -> Arc<RuleSecrets> {
        Arc::new(RuleSecrets::default())
    }

    fn secret(value: &str) -> Arc<RuleSecrets> {
        Arc::new(RuleSecrets::new(BTreeMap::from([(
            "K".to_string(),
            value.to_string(),
        )])))
    }

    /// What the lines take as the log entry stores them.
    fn stored(lines: &[LogLine]) -> usize {
        serde_json::to_string(lines).unwrap().len()
    }

    #[test]
    fn lines_stop_at_the_cap_and_say_so() {
        let mut logs = Logs::new(100, no_secrets());
        logs.push(Level::Info, "12345".into());
        logs.push(Level::Info, "6789abcdef".repeat(10));
        logs.push(Level::Info, "more".into());
        let (lines, truncated) = logs.take();
        assert!(truncated);
        assert_eq!(lines.len(), 2);
        assert!(
            lines[1].message.contains("truncated at 100 bytes"),
            "{lines:?}"
        );
        assert!(stored(&lines) <= 100 + LINE_OVERHEAD + MAX_CONSOLE_MARK_BYTES);
    }

    #[test]
    fn empty_lines_count_against_the_cap() {
        let mut logs = Logs::new(4096, no_secrets());
        for _ in 0..20_000 {
            logs.push(Level::Debug, String::new());
        }
        let (lines, truncated) = logs.take();
        assert!(truncated);
        assert!(lines.len() <= 4096 / LINE_OVERHEAD + 1, "{}", lines.len());
        assert!(stored(&lines) <= 4096 + LINE_OVERHEAD + MAX_CONSOLE_MARK_BYTES);
    }

    #[test]
    fn escapes_count_as_stored() {
        let mut logs = Logs::new(1024, no_secrets());
        for _ in 0..1000 {
            logs.push(Level::Warn, "\u{1}\"\n".repeat(7));
        }
        let (lines, _) = logs.take();
        assert!(stored(&lines) <= 1024 + LINE_OVERHEAD + MAX_CONSOLE_MARK_BYTES);
        assert!(lines.iter().all(|l| l.message.len() < 1024));
    }

    #[test]
    fn a_secret_across_the_cap_is_redacted_before_the_cut() {
        let value = "SECRETprefix-and-the-rest-of-it";
        let mut logs = Logs::new(200, secret(value));
        logs.push(
            Level::Info,
            format!("{}{value}{}", "x".repeat(120), "y".repeat(200)),
        );
        let (lines, truncated) = logs.take();
        assert!(truncated);
        assert!(lines[0].message.starts_with("xxx"), "{lines:?}");
        assert!(!lines[0].message.contains("SEC"), "{lines:?}");
    }

    #[test]
    fn failure_text_is_redacted_and_cut_denials_redacted() {
        let mut logs = Logs::new(4096, secret("hunter2"));
        let mut failed = Outcome::Failed {
            failure: Failure::Exception {
                name: "E".repeat(1000),
                message: format!("bad hunter2 {}", "m".repeat(10_000)),
                stack: Some("at hunter2\n".repeat(1000)),
            },
        };
        logs.settle(&mut failed);
        let Outcome::Failed {
            failure:
                Failure::Exception {
                    name,
                    message,
                    stack: Some(stack),
                },
        } = &failed
        else {
            panic!("{failed:?}");
        };
        assert!(json_len(name) <= MAX_FAILURE_NAME_BYTES);
        assert!(json_len(message) <= MAX_FAILURE_MESSAGE_BYTES);
        assert!(json_len(stack) <= MAX_STACK_BYTES);
        assert!(message.starts_with("bad [redacted] m") && message.ends_with(FAILURE_MARK));
        assert!(stack.starts_with("at [redacted]\n") && !stack.contains("hunter2"));
        assert!(logs.take().1);

        let mut denied = Outcome::Denied {
            denial: Denial {
                code: DenialCode::AccessDenied,
                message: "no: \"hunter2\"".into(),
            },
        };
        logs.settle(&mut denied);
        assert_eq!(
            denied,
            Outcome::Denied {
                denial: Denial {
                    code: DenialCode::AccessDenied,
                    message: "no: \"[redacted]\"".into(),
                },
            }
        );
    }

    #[test]
    fn output_kept_under_older_bounds_is_held_to_these() {
        let mut lines = vec![
            LogLine {
                level: Level::Info,
                message: String::new(),
            };
            10_000
        ];
        let mut cause = Some("c".repeat(100_000));
        assert!(rebound(&mut lines, &mut cause, 4096));
        assert!(stored(&lines) <= max_logs_bytes(4096));
        assert!(cause
            .as_deref()
            .is_some_and(|c| json_len(c) <= MAX_CAUSE_BYTES));

        let mut logs = Logs::new(4096, no_secrets());
        logs.push(Level::Info, "x".repeat(5000));
        let mut failed = Outcome::Failed {
            failure: Failure::Exception {
                name: "TypeError".into(),
                message: "m".repeat(5000),
                stack: Some("s".repeat(5000)),
            },
        };
        logs.settle(&mut failed);
        let (mut lines, _) = logs.take();
        if let Outcome::Failed {
            failure: Failure::Exception {
                stack: Some(stack), ..
            },
        } = &failed
        {
            lines.push(LogLine {
                level: Level::Error,
                message: stack.clone(),
            });
        }
        let mut cause = Some(failed_cause(&failed));
        let (before, cause_before) = (lines.clone(), cause.clone());
        assert!(!rebound(&mut lines, &mut cause, 4096), "{lines:?}");
        assert_eq!((lines, cause), (before, cause_before));
    }

    fn failed_cause(outcome: &Outcome) -> String {
        match outcome {
            Outcome::Failed { failure } => failure.to_string(),
            _ => String::new(),
        }
    }

    #[test]
    fn json_len_matches_serde_json() {
        for text in [
            "",
            "plain",
            "é\u{2028}",
            "\"\\\u{8}\u{c}\n\r\t\u{0}\u{1f}\u{7f}",
        ] {
            assert_eq!(
                json_len(text) + 2,
                serde_json::to_string(text).unwrap().len(),
                "{text:?}"
            );
        }
        assert_eq!(cut_json("ab\"c", 3), "ab");
        assert_eq!(cut_json("ab\"c", 4), "ab\"");
        assert_eq!(cut_json("éé", 3), "é");
    }
}
