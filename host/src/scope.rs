//! RFC 6749 §3.3 scope-tokens: which strings are one, and a list of them without repeats.
//!
//! One definition for what a client may ask for and what a rule may grant: the token's
//! `scope` claim is the scopes joined by spaces, so a scope holding a space would come back
//! as two scopes to whoever reads the token.

use std::collections::HashSet;

/// How much of an offending scope an error message shows: enough to find it, never a
/// rule's megabyte string in a log line.
const SHOWN_BYTES: usize = 64;

/// A string that is not a scope-token, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("scope {shown:?} is not an RFC 6749 scope-token: {why}")]
pub struct NotAScopeToken {
    shown: String,
    why: String,
}

/// `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`: printable ASCII except space, `"` and
/// `\`.
pub fn check(scope: &str) -> Result<(), NotAScopeToken> {
    let why = if scope.is_empty() {
        "it is empty".to_string()
    } else if let Some(c) = scope.chars().find(|&c| !is_scope_char(c)) {
        format!("it holds {c:?}; a scope-token is printable ASCII without space, '\"' or '\\'")
    } else {
        return Ok(());
    };
    Err(NotAScopeToken {
        shown: clip(scope),
        why,
    })
}

fn is_scope_char(c: char) -> bool {
    matches!(c, '\x21' | '\x23'..='\x5b' | '\x5d'..='\x7e')
}

fn clip(scope: &str) -> String {
    if scope.len() <= SHOWN_BYTES {
        return scope.to_string();
    }
    let mut end = SHOWN_BYTES;
    while !scope.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &scope[..end])
}

/// `scopes` in their order, each kept once; linear in their number (one hash set), so no
/// list is long enough to make this the expensive part of a request.
pub fn distinct(scopes: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::with_capacity(scopes.len());
    scopes
        .into_iter()
        .filter(|s| seen.insert(s.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_tokens_are_printable_ascii_without_space_quote_or_backslash() {
        for ok in ["read", "read:clients", "https://api/x", "!#[]~", "a=b&c"] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "read write",
            "a\"b",
            "a\\b",
            "tab\t",
            "é",
            "nul\0",
            "del\x7f",
        ] {
            assert!(check(bad).is_err(), "{bad:?}");
        }
        let err = check("read write").unwrap_err().to_string();
        assert!(
            err.contains("\"read write\"") && err.contains("' '"),
            "{err}"
        );
    }

    #[test]
    fn an_offending_scope_is_shown_clipped() {
        let long = format!("{}é{}", "a".repeat(63), " ".repeat(10_000));
        let err = check(&long).unwrap_err().to_string();
        assert!(err.len() < 250, "{err}");
        assert!(err.contains(&format!("{}...", "a".repeat(63))), "{err}");
    }

    #[test]
    fn distinct_keeps_the_first_of_each_in_order() {
        let scopes = ["b", "a", "b", "c", "a"].map(String::from).to_vec();
        assert_eq!(distinct(scopes), ["b", "a", "c"]);
        let many: Vec<String> = (0..50_000).map(|i| (i % 7).to_string()).collect();
        assert_eq!(distinct(many).len(), 7);
    }
}
