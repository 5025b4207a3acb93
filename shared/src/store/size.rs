//! What an item costs DynamoDB in bytes, counted the way DynamoDB counts it:
//! every attribute's name plus its value, strings in UTF-8 bytes (not
//! characters). A user's profile is the one item whose size clients decide
//! (attributes, session attributes, segment ids), so every change to it is
//! measured before it is written and refused with a `400` naming the field
//! when the profile would not fit, instead of failing in DynamoDB.

use aws_sdk_dynamodb::types::AttributeValue;

use super::items::{Item, ProfileItem, to_item};
use crate::error::ApiError;

/// DynamoDB's limit on one item: 400 KB, names and values together.
pub const DYNAMODB_MAX_ITEM_BYTES: usize = 400 * 1024;

/// The most a user's profile item may take when a request changes it:
/// DynamoDB's limit less a margin for what grows without a request deciding
/// it (counters, times, index keys, versions), so no later write can fail.
pub const MAX_PROFILE_BYTES: usize = 350 * 1024;

/// The most segments one user may belong to: bounds the user's details
/// answer (each segment is shown with its name) far under Lambda's 6 MB.
pub const MAX_SEGMENTS_PER_USER: usize = 1_000;

/// The size DynamoDB counts for `item`.
pub fn item_size(item: &Item) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + value_size(value))
        .sum()
}

fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(text) => text.len(),
        AttributeValue::N(number) => number_size(number),
        AttributeValue::B(bytes) => bytes.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::Ss(texts) => texts.iter().map(String::len).sum(),
        AttributeValue::Ns(numbers) => numbers.iter().map(|n| number_size(n)).sum(),
        AttributeValue::Bs(blobs) => blobs.iter().map(|b| b.as_ref().len()).sum(),
        // Lists and maps: 3 bytes, plus 1 byte and the size of each element
        // (and each key of a map).
        AttributeValue::L(values) => 3 + values.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        AttributeValue::M(entries) => {
            3 + entries
                .iter()
                .map(|(key, v)| 1 + key.len() + value_size(v))
                .sum::<usize>()
        }
        // A type newer than this code: count it as large as an item may be,
        // so it is never taken to fit.
        _ => DYNAMODB_MAX_ITEM_BYTES,
    }
}

/// A number takes about one byte per two significant digits, plus one
/// (counted from all its digits, so never less than DynamoDB counts).
fn number_size(number: &str) -> usize {
    number
        .bytes()
        .filter(u8::is_ascii_digit)
        .count()
        .div_ceil(2)
        + 1
}

/// `Ok` when `profile` fits [`MAX_PROFILE_BYTES`]; otherwise `400` naming
/// `field`, the part of the request that made it grow.
pub fn check_profile_fits(profile: &ProfileItem, field: &str) -> Result<(), ApiError> {
    let size = item_size(&to_item(profile)?);
    if size <= MAX_PROFILE_BYTES {
        return Ok(());
    }
    Err(ApiError::field(
        field,
        format!(
            "the user would take {size} bytes of storage; a user's attributes, session \
             attributes and segment ids may take at most {MAX_PROFILE_BYTES} bytes together \
             (UTF-8 bytes of keys and values: a character outside ASCII takes 2 to 4)"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::model::{AccountId, sample_user};

    #[test]
    fn strings_count_utf8_bytes_and_names_count_too() {
        let item: Item = HashMap::from([
            ("ab".to_owned(), AttributeValue::S("\u{1F600}x".to_owned())),
            ("n".to_owned(), AttributeValue::N("12345".to_owned())),
            ("b".to_owned(), AttributeValue::Bool(true)),
        ]);
        // 2 + 5, 1 + (3 + 1), 1 + 1
        assert_eq!(item_size(&item), 7 + 5 + 2);
    }

    #[test]
    fn maps_and_sets_count_their_keys_and_elements() {
        let map = AttributeValue::M(HashMap::from([(
            "k".to_owned(),
            AttributeValue::S("vv".to_owned()),
        )]));
        assert_eq!(value_size(&map), 3 + 1 + 1 + 2);
        let set = AttributeValue::Ss(vec!["abc".into(), "de".into()]);
        assert_eq!(value_size(&set), 5);
    }

    #[test]
    fn a_profile_past_the_limit_is_refused_naming_the_field() {
        let account = AccountId::parse("acme").unwrap();
        let mut user = sample_user();
        let profile = ProfileItem::new(&account, &user, 1);
        assert!(check_profile_fits(&profile, "attributes").is_ok());
        // 99 custom keys of 128 characters with values of 1,024 four-byte
        // characters: within every character limit, about 418 KB of bytes.
        for i in 0..99 {
            user.attributes
                .0
                .insert(format!("{i:0>128}"), "\u{1F600}".repeat(1024));
        }
        let profile = ProfileItem::new(&account, &user, 1);
        let error = check_profile_fits(&profile, "attributes").unwrap_err();
        let json = serde_json::to_value(error.envelope()).unwrap();
        assert_eq!(json["status"]["code"], 400);
        assert_eq!(json["status"]["errors"][0]["field"], "attributes");
    }
}
