//! User attributes: the documented `default_*` keys, `default_source` (set by
//! integrations), and custom keys. Only keys that are set are stored; responses
//! show every documented key, `null` where unset.

use std::collections::BTreeMap;

use serde::ser::{Serialize, SerializeMap, Serializer};

/// The 13 documented keys, in the order responses show them.
pub const DOCUMENTED_DEFAULT_KEYS: [&str; 13] = [
    "default_email",
    "default_name",
    "default_url",
    "default_avatar",
    "default_language",
    "default_timezone",
    "default_gender",
    "default_ip",
    "default_city",
    "default_region",
    "default_country",
    "default_referrer",
    "default_username",
];

/// Set by integrations; exported as "Integration"; shown only when set.
pub const SOURCE_KEY: &str = "default_source";

pub const NAME_KEY: &str = "default_name";
pub const EMAIL_KEY: &str = "default_email";

/// The prefix reserved for known keys.
pub const DEFAULT_PREFIX: &str = "default_";

/// Most keys an attributes object (and a stored user) may hold.
pub const MAX_ATTRIBUTES: usize = 99;
pub const MAX_VALUE_CHARS: usize = 1024;
pub const MAX_NAME_CHARS: usize = 256;
pub const MAX_CUSTOM_KEY_CHARS: usize = 128;

/// One of the 14 known `default_*` keys.
pub fn is_known_default_key(key: &str) -> bool {
    key == SOURCE_KEY || DOCUMENTED_DEFAULT_KEYS.contains(&key)
}

/// A custom key: `^[A-Za-z0-9_\-.]{1,128}$`, not starting with `default_`.
pub fn is_valid_custom_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_CUSTOM_KEY_CHARS
        && !key.starts_with(DEFAULT_PREFIX)
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// The set attributes of a user, keyed by attribute key.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Attributes(pub BTreeMap<String, String>);

impl Attributes {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sets the given keys and unsets those given as `None`.
    pub fn apply(&mut self, patch: &BTreeMap<String, Option<String>>) {
        for (key, value) in patch {
            match value {
                Some(value) => {
                    self.0.insert(key.clone(), value.clone());
                }
                None => {
                    self.0.remove(key);
                }
            }
        }
    }
}

/// Documented keys first (null when unset), then `default_source` if set, then custom keys.
impl Serialize for Attributes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let custom = self.0.iter().filter(|(k, _)| !is_known_default_key(k));
        let source = self.get(SOURCE_KEY);
        let mut map = serializer.serialize_map(None)?;
        for key in DOCUMENTED_DEFAULT_KEYS {
            map.serialize_entry(key, &self.get(key))?;
        }
        if let Some(source) = source {
            map.serialize_entry(SOURCE_KEY, source)?;
        }
        for (key, value) in custom {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_every_documented_key_in_order_then_source_then_custom() {
        let attributes = Attributes(BTreeMap::from([
            ("plan".to_owned(), "pro".to_owned()),
            ("default_name".to_owned(), "Joe".to_owned()),
            ("default_source".to_owned(), "messenger".to_owned()),
        ]));
        let json = serde_json::to_string(&attributes).unwrap();
        let keys: Vec<&str> = json
            .trim_matches(|c| c == '{' || c == '}')
            .split(',')
            .map(|pair| pair.split(':').next().unwrap().trim_matches('"'))
            .collect();
        let mut expected: Vec<&str> = DOCUMENTED_DEFAULT_KEYS.to_vec();
        expected.extend(["default_source", "plan"]);
        assert_eq!(keys, expected);
        assert!(json.contains(r#""default_email":null"#));
        assert!(json.contains(r#""default_name":"Joe""#));
    }

    #[test]
    fn known_and_custom_keys() {
        assert!(is_known_default_key("default_source"));
        assert!(is_known_default_key("default_username"));
        assert!(!is_known_default_key("default_colour"));
        assert!(is_valid_custom_key("group-selected"));
        assert!(is_valid_custom_key("a.b_C-9"));
        assert!(is_valid_custom_key(&"k".repeat(128)));
        assert!(!is_valid_custom_key(&"k".repeat(129)));
        assert!(!is_valid_custom_key(""));
        assert!(!is_valid_custom_key("has space"));
        assert!(!is_valid_custom_key("default_custom"));
        assert!(!is_valid_custom_key("zażółć"));
    }

    #[test]
    fn apply_sets_and_unsets() {
        let mut attributes = Attributes(BTreeMap::from([
            ("a".to_owned(), "1".to_owned()),
            ("b".to_owned(), "2".to_owned()),
        ]));
        attributes.apply(&BTreeMap::from([
            ("a".to_owned(), None),
            ("c".to_owned(), Some("3".to_owned())),
        ]));
        assert_eq!(attributes.get("a"), None);
        assert_eq!(attributes.get("b"), Some("2"));
        assert_eq!(attributes.get("c"), Some("3"));
    }
}
