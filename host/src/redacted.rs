//! What `Debug` prints in place of a secret, so that no log line, panic message or `{:?}`
//! in an error can ever show one.

use std::collections::BTreeMap;
use std::fmt;

/// What replaces a secret value wherever one would be shown.
pub const REDACTED: &str = "[redacted]";

/// Prints `[redacted]`: the `Debug` of a secret field.
pub struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Prints a map of secrets by name, each value `[redacted]`: which secrets there are is
/// worth seeing, what they are never is.
pub struct SecretNames<'a>(pub &'a BTreeMap<String, String>);

impl fmt::Debug for SecretNames<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|name| (name, Redacted)))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_show_and_values_do_not() {
        let secrets = BTreeMap::from([("API_KEY".to_string(), "sk_live_123".to_string())]);
        for shown in [
            format!("{:?}", SecretNames(&secrets)),
            format!("{:#?}", SecretNames(&secrets)),
        ] {
            assert!(
                shown.contains("API_KEY") && shown.contains(REDACTED),
                "{shown}"
            );
            assert!(!shown.contains("sk_live_123"), "{shown}");
        }
    }
}
