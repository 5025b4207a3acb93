//! The request bodies of API.md, checked in one place. Each parser takes the
//! JSON value of a body (or of one element of a bulk body) and returns either
//! the typed input or every offending field, named by its dotted path.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::error::{FieldError, join_path};
use crate::model::{
    EMAIL_KEY, ID_SHAPE, MAX_ATTRIBUTES, MAX_NAME_CHARS, MAX_SEGMENT_NAME_CHARS, MAX_VALUE_CHARS,
    MalformedId, NAME_KEY, ObjectId, is_known_default_key, is_valid_custom_key,
};
use crate::store::{DETAILS_CONVERSATIONS, MAX_CONVERSATIONS_PAGE};

/// Longest `userId`, in characters.
pub const MAX_USER_ID_CHARS: usize = 256;
/// Most users in one bulk create, and most segment ids in one body.
pub const MAX_BULK: usize = 100;

/// A user to create, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    pub user_id: String,
    /// Existing segment ids to put the user in (checked against the store).
    pub segments: BTreeSet<ObjectId>,
    /// Only set keys: `null` values in the request are dropped.
    pub attributes: BTreeMap<String, String>,
    /// When the user was first and last seen: `None` (now) for the API's
    /// creates; an import keeps the exported dates.
    pub created_at: Option<crate::model::Timestamp>,
    pub last_seen: Option<crate::model::Timestamp>,
}

/// Keys to set (`Some`) or unset (`None`).
pub type AttributePatch = BTreeMap<String, Option<String>>;

/// `POST /users/{id}/conversations`, validated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewConversation {
    pub first_message: Option<String>,
    pub session_attributes: AttributePatch,
}

/// How an error message names a JSON value's type ("a string", "null").
pub fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `value` as an object, or the error at `path` (`body` when empty) saying
/// it must be `described` ("an object", "a filter object …").
pub(crate) fn object_at<'a>(
    value: &'a Value,
    path: &str,
    described: &str,
) -> Result<&'a Map<String, Value>, FieldError> {
    value.as_object().ok_or_else(|| {
        FieldError::new(
            if path.is_empty() { "body" } else { path },
            format!("must be {described}, not {}", json_type_name(value)),
        )
    })
}

fn expect_object<'a>(
    value: &'a Value,
    path: &str,
    errors: &mut Vec<FieldError>,
) -> Option<&'a Map<String, Value>> {
    object_at(value, path, "an object")
        .map_err(|error| errors.push(error))
        .ok()
}

/// Reports every key of `map` that is not in `allowed`.
fn refuse_unknown_keys(
    map: &Map<String, Value>,
    allowed: &[&str],
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    for key in map.keys().filter(|k| !allowed.contains(&k.as_str())) {
        errors.push(FieldError::new(join_path(path, key), "unknown field"));
    }
}

/// A string of `min..=max` characters.
fn string_within(
    value: &Value,
    min: usize,
    max: usize,
    path: &str,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    match value {
        Value::String(text) => {
            let chars = text.chars().count();
            if chars < min || chars > max {
                errors.push(FieldError::new(
                    path,
                    format!("must be {min} to {max} characters long"),
                ));
                None
            } else {
                Some(text.clone())
            }
        }
        other => {
            errors.push(FieldError::new(
                path,
                format!("must be a string, not {}", json_type_name(other)),
            ));
            None
        }
    }
}

/// One lowercase-hex object id.
pub fn parse_object_id(
    value: &Value,
    path: &str,
    errors: &mut Vec<FieldError>,
) -> Option<ObjectId> {
    match value {
        Value::String(text) => match text.parse() {
            Ok(id) => Some(id),
            Err(_) => {
                errors.push(FieldError::new(path, MalformedId.to_string()));
                None
            }
        },
        other => {
            errors.push(FieldError::new(
                path,
                format!(
                    "must be a 24-character id string, not {}",
                    json_type_name(other)
                ),
            ));
            None
        }
    }
}

/// Looks like an e-mail address: one `@` with text either side, no whitespace.
pub fn looks_like_email(text: &str) -> bool {
    let mut parts = text.split('@');
    matches!((parts.next(), parts.next(), parts.next()), (Some(local), Some(domain), None) if !local.is_empty() && !domain.is_empty())
        && !text.chars().any(char::is_whitespace)
}

/// The key rule: a known `default_*` key or a valid custom key.
pub fn check_attribute_key(key: &str) -> Result<(), &'static str> {
    if is_known_default_key(key) || is_valid_custom_key(key) {
        Ok(())
    } else if key.starts_with(crate::model::DEFAULT_PREFIX) {
        Err("unknown default attribute; custom keys must not start with default_")
    } else {
        Err("custom keys match ^[A-Za-z0-9_\\-.]{1,128}$")
    }
}

/// An attributes object of 1..99 keys: string values within their limits, or `null`.
pub fn parse_attribute_patch(
    value: &Value,
    path: &str,
    errors: &mut Vec<FieldError>,
) -> Option<AttributePatch> {
    let map = expect_object(value, path, errors)?;
    if map.is_empty() || map.len() > MAX_ATTRIBUTES {
        errors.push(FieldError::new(
            path,
            format!("must hold 1 to {MAX_ATTRIBUTES} keys"),
        ));
        return None;
    }
    let before = errors.len();
    let mut patch = AttributePatch::new();
    for (key, value) in map {
        let field = join_path(path, key);
        if let Err(message) = check_attribute_key(key) {
            errors.push(FieldError::new(field, message));
            continue;
        }
        if value.is_null() {
            patch.insert(key.clone(), None);
            continue;
        }
        let max = if key == NAME_KEY {
            MAX_NAME_CHARS
        } else {
            MAX_VALUE_CHARS
        };
        if let Some(text) = string_within(value, 1, max, &field, errors) {
            if key == EMAIL_KEY && !looks_like_email(&text) {
                errors.push(FieldError::new(field, "must be an e-mail address"));
                continue;
            }
            patch.insert(key.clone(), Some(text));
        }
    }
    (errors.len() == before).then_some(patch)
}

/// Session attributes: an object of 0..99 keys (same key and value rules), `null` unsets.
fn parse_session_attributes(
    value: &Value,
    path: &str,
    errors: &mut Vec<FieldError>,
) -> Option<AttributePatch> {
    let map = expect_object(value, path, errors)?;
    if map.len() > MAX_ATTRIBUTES {
        errors.push(FieldError::new(
            path,
            format!("must hold at most {MAX_ATTRIBUTES} keys"),
        ));
        return None;
    }
    let before = errors.len();
    let mut patch = AttributePatch::new();
    for (key, value) in map {
        let field = join_path(path, key);
        if !is_valid_custom_key(key) && !is_known_default_key(key) {
            errors.push(FieldError::new(
                field,
                "keys match ^[A-Za-z0-9_\\-.]{1,128}$",
            ));
            continue;
        }
        if value.is_null() {
            patch.insert(key.clone(), None);
        } else if let Some(text) = string_within(value, 1, MAX_VALUE_CHARS, &field, errors) {
            patch.insert(key.clone(), Some(text));
        }
    }
    (errors.len() == before).then_some(patch)
}

/// One segment id or an array of up to 100 of them (the `segments` of a new user).
fn parse_segment_field(
    value: &Value,
    path: &str,
    errors: &mut Vec<FieldError>,
) -> BTreeSet<ObjectId> {
    match value {
        Value::Array(items) => {
            if items.len() > MAX_BULK {
                errors.push(FieldError::new(
                    path,
                    format!("must hold at most {MAX_BULK} ids"),
                ));
                return BTreeSet::new();
            }
            items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| parse_object_id(item, &join_path(path, i), errors))
                .collect()
        }
        single => parse_object_id(single, path, errors).into_iter().collect(),
    }
}

/// One user of `POST /users`. A missing `userId` is generated (UUID v4) when
/// `attributes.default_email` is given.
pub fn parse_new_user(value: &Value) -> Result<NewUser, Vec<FieldError>> {
    parse_user(value, false)
}

/// One user of an import (`users-api import`): the rules of `POST /users`,
/// except that it may have no attributes at all (a user whose attributes
/// were all unset is exported so).
pub fn parse_imported_user(value: &Value) -> Result<NewUser, Vec<FieldError>> {
    parse_user(value, true)
}

fn parse_user(value: &Value, attributes_may_be_empty: bool) -> Result<NewUser, Vec<FieldError>> {
    let mut errors = Vec::new();
    let Some(map) = expect_object(value, "", &mut errors) else {
        return Err(errors);
    };
    refuse_unknown_keys(map, &["userId", "segments", "attributes"], "", &mut errors);
    let user_id = map
        .get("userId")
        .and_then(|v| string_within(v, 1, MAX_USER_ID_CHARS, "userId", &mut errors));
    let segments = map
        .get("segments")
        .map(|v| parse_segment_field(v, "segments", &mut errors))
        .unwrap_or_default();
    let attributes = match map.get("attributes") {
        Some(Value::Object(empty)) if empty.is_empty() && attributes_may_be_empty => {
            Some(AttributePatch::new())
        }
        Some(v) => parse_attribute_patch(v, "attributes", &mut errors),
        None => {
            errors.push(FieldError::new("attributes", "required"));
            None
        }
    };
    let has_email = attributes
        .as_ref()
        .is_some_and(|a| matches!(a.get(EMAIL_KEY), Some(Some(_))));
    if !map.contains_key("userId") && !has_email && attributes.is_some() {
        errors.push(FieldError::new(
            "userId",
            "required unless attributes.default_email is given",
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let attributes = attributes
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect();
    Ok(NewUser {
        user_id: user_id.unwrap_or_else(|| crate::model::new_uuid().to_string()),
        segments,
        attributes,
        created_at: None,
        last_seen: None,
    })
}

/// The body of `POST /users`: one user object, or an array of 1..100 of them.
/// Returns the elements (each validated separately) and whether it was bulk.
pub fn split_create_body(value: Value) -> Result<(Vec<Value>, bool), Vec<FieldError>> {
    match value {
        Value::Array(items) if items.is_empty() || items.len() > MAX_BULK => {
            Err(vec![FieldError::new(
                "body",
                format!("must hold 1 to {MAX_BULK} users"),
            )])
        }
        Value::Array(items) => Ok((items, true)),
        object @ Value::Object(_) => Ok((vec![object], false)),
        other => Err(vec![FieldError::new(
            "body",
            format!(
                "must be a user object or an array of them, not {}",
                json_type_name(&other)
            ),
        )]),
    }
}

/// The body of `PUT /users/{id}`: `{"attributes": {...}}`.
pub fn parse_update_body(value: &Value) -> Result<AttributePatch, Vec<FieldError>> {
    let mut errors = Vec::new();
    let Some(map) = expect_object(value, "", &mut errors) else {
        return Err(errors);
    };
    refuse_unknown_keys(map, &["attributes"], "", &mut errors);
    let patch = match map.get("attributes") {
        Some(v) => parse_attribute_patch(v, "attributes", &mut errors),
        None => {
            errors.push(FieldError::new("attributes", "required"));
            None
        }
    };
    match patch {
        Some(patch) if errors.is_empty() => Ok(patch),
        _ => Err(errors),
    }
}

/// The body of `PUT /users/{id}/ban`: `{"banned": true|false}`.
pub fn parse_ban_body(value: &Value) -> Result<bool, Vec<FieldError>> {
    let mut errors = Vec::new();
    let Some(map) = expect_object(value, "", &mut errors) else {
        return Err(errors);
    };
    refuse_unknown_keys(map, &["banned"], "", &mut errors);
    let banned = match map.get("banned") {
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => {
            errors.push(FieldError::new(
                "banned",
                format!("must be a boolean, not {}", json_type_name(other)),
            ));
            None
        }
        None => {
            errors.push(FieldError::new("banned", "required"));
            None
        }
    };
    match banned {
        Some(b) if errors.is_empty() => Ok(b),
        _ => Err(errors),
    }
}

/// The body of the `/users/{id}/segments` routes: an array of 1..100 segment
/// ids (`[]` too when `allow_empty`, for `PUT`).
pub fn parse_segment_ids(
    value: &Value,
    allow_empty: bool,
) -> Result<BTreeSet<ObjectId>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let Value::Array(items) = value else {
        return Err(vec![FieldError::new(
            "body",
            format!(
                "must be an array of segment ids, not {}",
                json_type_name(value)
            ),
        )]);
    };
    let min = usize::from(!allow_empty);
    if items.len() < min || items.len() > MAX_BULK {
        return Err(vec![FieldError::new(
            "body",
            format!("must hold {min} to {MAX_BULK} segment ids"),
        )]);
    }
    let ids = items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| parse_object_id(item, &i.to_string(), &mut errors))
        .collect();
    if errors.is_empty() {
        Ok(ids)
    } else {
        Err(errors)
    }
}

/// The body of `POST /segments` and `PUT /segments/{id}`: `{"name": String(1,256)}`.
pub fn parse_segment_body(value: &Value) -> Result<String, Vec<FieldError>> {
    let mut errors = Vec::new();
    let Some(map) = expect_object(value, "", &mut errors) else {
        return Err(errors);
    };
    refuse_unknown_keys(map, &["name"], "", &mut errors);
    let name = match map.get("name") {
        Some(v) => string_within(v, 1, MAX_SEGMENT_NAME_CHARS, "name", &mut errors),
        None => {
            errors.push(FieldError::new("name", "required"));
            None
        }
    };
    match name {
        Some(name) if errors.is_empty() => Ok(name),
        _ => Err(errors),
    }
}

/// The query of `GET /users/{id}/conversations`: `limit` (1 to
/// [`MAX_CONVERSATIONS_PAGE`], default [`DETAILS_CONVERSATIONS`]) and
/// `after` (a conversation id). Unknown parameters are `400`.
pub fn parse_conversations_query(
    raw_query: Option<&str>,
) -> Result<(Option<ObjectId>, usize), Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut after = None;
    let mut limit = DETAILS_CONVERSATIONS;
    let mut seen = BTreeSet::new();
    for (name, value) in form_urlencoded::parse(raw_query.unwrap_or("").as_bytes()) {
        if !seen.insert(name.to_string()) {
            errors.push(FieldError::new(name.as_ref(), "given more than once"));
            continue;
        }
        match name.as_ref() {
            "after" => match value.parse::<ObjectId>() {
                Ok(id) => after = Some(id),
                Err(_) => errors.push(FieldError::new(
                    "after",
                    format!("must be a conversation id ({ID_SHAPE})"),
                )),
            },
            "limit" => match value.parse::<usize>() {
                Ok(n)
                    if value.bytes().all(|b| b.is_ascii_digit())
                        && (1..=MAX_CONVERSATIONS_PAGE).contains(&n) =>
                {
                    limit = n
                }
                _ => errors.push(FieldError::new(
                    "limit",
                    format!("must be an integer from 1 to {MAX_CONVERSATIONS_PAGE}"),
                )),
            },
            other => errors.push(FieldError::new(
                other,
                "unknown query parameter; accepted: limit, after",
            )),
        }
    }
    if errors.is_empty() {
        Ok((after, limit))
    } else {
        Err(errors)
    }
}

/// The body of `POST /users/{id}/conversations`.
pub fn parse_conversation_body(value: &Value) -> Result<NewConversation, Vec<FieldError>> {
    let mut errors = Vec::new();
    let Some(map) = expect_object(value, "", &mut errors) else {
        return Err(errors);
    };
    refuse_unknown_keys(map, &["firstMessage", "sessionAttributes"], "", &mut errors);
    let first_message = match map.get("firstMessage") {
        None | Some(Value::Null) => None,
        Some(v) => string_within(v, 1, MAX_VALUE_CHARS * 4, "firstMessage", &mut errors),
    };
    let session_attributes = map
        .get("sessionAttributes")
        .and_then(|v| parse_session_attributes(v, "sessionAttributes", &mut errors))
        .unwrap_or_default();
    if errors.is_empty() {
        Ok(NewConversation {
            first_message,
            session_attributes,
        })
    } else {
        Err(errors)
    }
}

/// A request body parsed from its JSON by the API's rules, every offending
/// field named: what a handler takes (`http::Valid`).
pub trait FromJson: Sized {
    fn from_json(value: &Value) -> Result<Self, Vec<FieldError>>;
}

/// The body of `PUT /users/{id}`.
#[derive(Debug)]
pub struct AttributeUpdate(pub AttributePatch);

impl FromJson for AttributeUpdate {
    fn from_json(value: &Value) -> Result<Self, Vec<FieldError>> {
        parse_update_body(value).map(Self)
    }
}

/// The body of `PUT /users/{id}/ban`.
#[derive(Debug)]
pub struct Ban(pub bool);

impl FromJson for Ban {
    fn from_json(value: &Value) -> Result<Self, Vec<FieldError>> {
        parse_ban_body(value).map(Self)
    }
}

/// The body of `POST /segments` and `PUT /segments/{id}`.
#[derive(Debug)]
pub struct SegmentName(pub String);

impl FromJson for SegmentName {
    fn from_json(value: &Value) -> Result<Self, Vec<FieldError>> {
        parse_segment_body(value).map(Self)
    }
}

/// The body of `POST` and `DELETE /users/{id}/segments`: 1..100 ids.
#[derive(Debug)]
pub struct SegmentIds(pub BTreeSet<ObjectId>);

impl FromJson for SegmentIds {
    fn from_json(value: &Value) -> Result<Self, Vec<FieldError>> {
        parse_segment_ids(value, false).map(Self)
    }
}

/// The body of `PUT /users/{id}/segments`: 0..100 ids (`[]` clears).
#[derive(Debug)]
pub struct SegmentSet(pub BTreeSet<ObjectId>);

impl FromJson for SegmentSet {
    fn from_json(value: &Value) -> Result<Self, Vec<FieldError>> {
        parse_segment_ids(value, true).map(Self)
    }
}

impl FromJson for NewConversation {
    fn from_json(value: &Value) -> Result<Self, Vec<FieldError>> {
        parse_conversation_body(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn a_minimal_user_is_accepted() {
        let user = parse_new_user(&json!({"userId": "u1", "attributes": {"default_name": "Joe"}}))
            .unwrap();
        assert_eq!(user.user_id, "u1");
        assert_eq!(
            user.attributes.get("default_name").map(String::as_str),
            Some("Joe")
        );
        assert!(user.segments.is_empty());
    }

    #[test]
    fn user_id_is_generated_when_an_email_is_given() {
        let user =
            parse_new_user(&json!({"attributes": {"default_email": "joe@doe.com"}})).unwrap();
        let parsed = uuid::Uuid::parse_str(&user.user_id).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
    }

    #[test]
    fn user_id_is_required_without_an_email() {
        let errors = parse_new_user(&json!({"attributes": {"default_name": "Joe"}})).unwrap_err();
        assert_eq!(fields(&errors), ["userId"]);
        let errors = parse_new_user(&json!({"attributes": {"default_email": null}})).unwrap_err();
        assert_eq!(fields(&errors), ["userId"]);
    }

    #[test]
    fn user_id_length_and_type() {
        assert!(
            parse_new_user(&json!({"userId": "x".repeat(256), "attributes": {"a": "1"}})).is_ok()
        );
        for bad in [json!(""), json!("x".repeat(257)), json!(7), json!(null)] {
            let errors =
                parse_new_user(&json!({"userId": bad, "attributes": {"a": "1"}})).unwrap_err();
            assert_eq!(fields(&errors), ["userId"], "{bad}");
        }
    }

    #[test]
    fn attributes_are_required_and_hold_1_to_99_keys() {
        assert_eq!(
            fields(&parse_new_user(&json!({"userId": "u"})).unwrap_err()),
            ["attributes"]
        );
        assert_eq!(
            fields(&parse_new_user(&json!({"userId": "u", "attributes": {}})).unwrap_err()),
            ["attributes"]
        );
        let many: Map<String, Value> = (0..100).map(|i| (format!("k{i}"), json!("v"))).collect();
        assert_eq!(
            fields(&parse_new_user(&json!({"userId": "u", "attributes": many})).unwrap_err()),
            ["attributes"]
        );
        let ok: Map<String, Value> = (0..99).map(|i| (format!("k{i}"), json!("v"))).collect();
        assert!(parse_new_user(&json!({"userId": "u", "attributes": ok})).is_ok());
        assert_eq!(
            fields(&parse_new_user(&json!({"userId": "u", "attributes": ["a"]})).unwrap_err()),
            ["attributes"]
        );
    }

    #[test]
    fn every_bad_attribute_is_named() {
        let errors = parse_new_user(&json!({
            "userId": "u",
            "attributes": {
                "default_colour": "red",
                "bad key": "x",
                "default_name": "n".repeat(257),
                "default_city": "c".repeat(1025),
                "default_email": "not an email",
                "empty": "",
                "number": 5,
                "fine": "ok",
            }
        }))
        .unwrap_err();
        let mut named = fields(&errors);
        named.sort();
        assert_eq!(
            named,
            [
                "attributes.bad key",
                "attributes.default_city",
                "attributes.default_colour",
                "attributes.default_email",
                "attributes.default_name",
                "attributes.empty",
                "attributes.number",
            ]
        );
    }

    #[test]
    fn value_limits_are_inclusive() {
        let ok = json!({"userId": "u", "attributes": {"default_name": "n".repeat(256), "default_city": "c".repeat(1024), "default_source": "web"}});
        assert!(parse_new_user(&ok).is_ok());
        let unicode = json!({"userId": "u", "attributes": {"default_name": "ż".repeat(256)}});
        assert!(parse_new_user(&unicode).is_ok());
    }

    #[test]
    fn nulls_on_create_are_dropped() {
        let user = parse_new_user(
            &json!({"userId": "u", "attributes": {"default_name": "Joe", "default_city": null}}),
        )
        .unwrap();
        assert_eq!(user.attributes.len(), 1);
    }

    #[test]
    fn email_shape() {
        assert!(looks_like_email("joe@doe.com"));
        assert!(looks_like_email("a@b"));
        for bad in [
            "joe",
            "@doe.com",
            "joe@",
            "a@b@c",
            "joe @doe.com",
            "joe@doe.com\t",
        ] {
            assert!(!looks_like_email(bad), "{bad:?}");
        }
    }

    #[test]
    fn unknown_fields_and_wrong_shapes_are_refused() {
        let errors =
            parse_new_user(&json!({"userId": "u", "attributes": {"a": "1"}, "banned": true}))
                .unwrap_err();
        assert_eq!(fields(&errors), ["banned"]);
        assert_eq!(fields(&parse_new_user(&json!("u")).unwrap_err()), ["body"]);
    }

    #[test]
    fn segments_take_one_id_or_an_array() {
        let id = "5c46d514bda7873576a30c48";
        let one = parse_new_user(&json!({"userId": "u", "attributes": {"a": "1"}, "segments": id}))
            .unwrap();
        assert_eq!(one.segments.len(), 1);
        let many =
            parse_new_user(&json!({"userId": "u", "attributes": {"a": "1"}, "segments": [id, id]}))
                .unwrap();
        assert_eq!(many.segments.len(), 1);
        let errors = parse_new_user(
            &json!({"userId": "u", "attributes": {"a": "1"}, "segments": [id, "nope", 3]}),
        )
        .unwrap_err();
        assert_eq!(fields(&errors), ["segments.1", "segments.2"]);
    }

    #[test]
    fn bulk_bodies_hold_1_to_100_users() {
        assert!(!split_create_body(json!({"userId": "u"})).unwrap().1);
        assert!(split_create_body(json!([{"userId": "u"}])).unwrap().1);
        assert!(split_create_body(json!([])).is_err());
        assert!(split_create_body(json!(vec![json!({}); 101])).is_err());
        assert!(split_create_body(json!(vec![json!({}); 100])).is_ok());
        assert!(split_create_body(json!("x")).is_err());
    }

    #[test]
    fn update_body() {
        let patch =
            parse_update_body(&json!({"attributes": {"default_name": null, "plan": "pro"}}))
                .unwrap();
        assert_eq!(patch.get("default_name"), Some(&None));
        assert_eq!(patch.get("plan"), Some(&Some("pro".to_owned())));
        assert_eq!(
            fields(&parse_update_body(&json!({})).unwrap_err()),
            ["attributes"]
        );
        assert_eq!(
            fields(&parse_update_body(&json!({"attributes": {"a": "1"}, "x": 1})).unwrap_err()),
            ["x"]
        );
    }

    #[test]
    fn ban_body() {
        assert_eq!(parse_ban_body(&json!({"banned": true})), Ok(true));
        assert_eq!(parse_ban_body(&json!({"banned": false})), Ok(false));
        for bad in [
            json!({}),
            json!({"banned": "true"}),
            json!({"banned": 1}),
            json!({"banned": null}),
        ] {
            assert_eq!(
                fields(&parse_ban_body(&bad).unwrap_err()),
                ["banned"],
                "{bad}"
            );
        }
    }

    #[test]
    fn segment_id_lists() {
        let id = "5c46d514bda7873576a30c48";
        assert_eq!(parse_segment_ids(&json!([id]), false).unwrap().len(), 1);
        assert!(parse_segment_ids(&json!([]), false).is_err());
        assert!(parse_segment_ids(&json!([]), true).unwrap().is_empty());
        assert!(parse_segment_ids(&json!(vec![id; 101]), true).is_err());
        assert_eq!(
            fields(&parse_segment_ids(&json!([id, "x"]), false).unwrap_err()),
            ["1"]
        );
        assert!(parse_segment_ids(&json!({"ids": [id]}), false).is_err());
    }

    #[test]
    fn conversation_paging_query() {
        assert_eq!(
            parse_conversations_query(None).unwrap(),
            (None, DETAILS_CONVERSATIONS)
        );
        let id = ObjectId::new();
        assert_eq!(
            parse_conversations_query(Some(&format!("after={id}&limit=100"))).unwrap(),
            (Some(id), 100)
        );
        for bad in [
            "limit=0",
            "limit=101",
            "limit=+5",
            "after=xyz",
            "page=2",
            "limit=1&limit=2",
        ] {
            assert!(parse_conversations_query(Some(bad)).is_err(), "{bad}");
        }
        assert_eq!(
            fields(&parse_conversations_query(Some("page=2&limit=0")).unwrap_err()),
            ["page", "limit"]
        );
    }

    #[test]
    fn segment_and_conversation_bodies() {
        assert_eq!(
            parse_segment_body(&json!({"name": "Leads"})),
            Ok("Leads".to_owned())
        );
        assert!(parse_segment_body(&json!({"name": ""})).is_err());
        assert!(parse_segment_body(&json!({"name": "n".repeat(257)})).is_err());
        let c = parse_conversation_body(&json!({"firstMessage": "hello", "sessionAttributes": {"group-selected": "14", "old": null}})).unwrap();
        assert_eq!(c.first_message.as_deref(), Some("hello"));
        assert_eq!(c.session_attributes.get("old"), Some(&None));
        assert!(
            parse_conversation_body(&json!({"firstMessage": null}))
                .unwrap()
                .first_message
                .is_none()
        );
        assert!(parse_conversation_body(&json!({"firstMessage": 3})).is_err());
        assert!(parse_conversation_body(&json!({"sessionAttributes": {"bad key": "x"}})).is_err());
    }
}
