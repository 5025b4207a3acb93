//! The names of filters, operators, match and sort, and a filter object or
//! sort object parsed from JSON, each value typed for its field.

use super::*;
use crate::validate::object_at;

// ---------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------

const ATTRIBUTE_OPERATORS: &[Operator] = &[
    OpEq,
    Ne,
    Contains,
    NotContains,
    StartsWith,
    Exists,
    NotExists,
];
const USER_ID_OPERATORS: &[Operator] = &[OpEq, Ne, Contains, NotContains, StartsWith];
const BANNED_OPERATORS: &[Operator] = &[OpEq, Ne];
const SEGMENTS_OPERATORS: &[Operator] = &[OpEq, Ne, Exists, NotExists];
const ORDERED_OPERATORS: &[Operator] = &[OpEq, Ne, Gt, Gte, Lt, Lte];

/// The field names that are not attribute keys.
pub const PROPERTY_FIELDS: [&str; 6] = [
    "userId",
    "banned",
    "segments",
    "createdAt",
    "lastSeen",
    "conversations",
];

// `Operator::as_str` reads a name at the operator's index.
const _: () = {
    let mut i = 0;
    while i < Operator::NAMED.len() {
        assert!(
            Operator::NAMED[i].0 as usize == i,
            "Operator::NAMED is out of order"
        );
        i += 1;
    }
};

impl Operator {
    /// Every operator, with its name as the API spells it, in the enum's
    /// order (checked when compiling), so an operator's name is at its index.
    pub const NAMED: [(Operator, &'static str); 11] = [
        (OpEq, "eq"),
        (Ne, "ne"),
        (Contains, "contains"),
        (NotContains, "notContains"),
        (StartsWith, "startsWith"),
        (Exists, "exists"),
        (NotExists, "notExists"),
        (Gt, "gt"),
        (Gte, "gte"),
        (Lt, "lt"),
        (Lte, "lte"),
    ];

    /// Every operator, in the order of [`Operator::NAMED`].
    pub const ALL: [Operator; 11] = {
        let mut all = [OpEq; 11];
        let mut i = 0;
        while i < all.len() {
            all[i] = Self::NAMED[i].0;
            i += 1;
        }
        all
    };

    /// The operator named `text` (case-sensitive, as the API spells it).
    pub fn parse(text: &str) -> Option<Self> {
        Self::NAMED
            .into_iter()
            .find_map(|(op, name)| (name == text).then_some(op))
    }

    pub fn as_str(self) -> &'static str {
        Self::NAMED[self as usize].1
    }

    /// Whether the operator compares with a value (all but `exists`/`notExists`).
    pub fn takes_value(self) -> bool {
        !matches!(self, Exists | NotExists)
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a field name was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldNameError {
    /// Starts with `default_` but is none of the known keys.
    UnknownDefault,
    /// Not a valid attribute key.
    Invalid,
}

impl fmt::Display for FieldNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownDefault => write!(
                f,
                "unknown default attribute; keys starting with {DEFAULT_PREFIX} must be one of the known ones"
            ),
            Self::Invalid => write!(
                f,
                "must be an attribute key (1 to 128 of A-Z a-z 0-9 _ - .) or one of {}",
                PROPERTY_FIELDS.join(", ")
            ),
        }
    }
}

impl FilterField {
    /// The field named `name`: a user property or an attribute key.
    pub fn parse(name: &str) -> Result<Self, FieldNameError> {
        Ok(match name {
            "userId" => Self::UserId,
            "banned" => Self::Banned,
            "segments" => Self::Segments,
            "createdAt" => Self::CreatedAt,
            "lastSeen" => Self::LastSeen,
            "conversations" => Self::Conversations,
            key if is_known_default_key(key) || is_valid_custom_key(key) => {
                Self::Attribute(key.to_owned())
            }
            key if key.starts_with(DEFAULT_PREFIX) => return Err(FieldNameError::UnknownDefault),
            _ => return Err(FieldNameError::Invalid),
        })
    }

    /// The name as a filter spells it.
    pub fn name(&self) -> &str {
        match self {
            Self::Attribute(key) => key,
            Self::UserId => "userId",
            Self::Banned => "banned",
            Self::Segments => "segments",
            Self::CreatedAt => "createdAt",
            Self::LastSeen => "lastSeen",
            Self::Conversations => "conversations",
        }
    }

    /// The operators this field accepts.
    pub fn operators(&self) -> &'static [Operator] {
        match self {
            Self::Attribute(_) => ATTRIBUTE_OPERATORS,
            Self::UserId => USER_ID_OPERATORS,
            Self::Banned => BANNED_OPERATORS,
            Self::Segments => SEGMENTS_OPERATORS,
            Self::CreatedAt | Self::LastSeen | Self::Conversations => ORDERED_OPERATORS,
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Attribute(_) => "attribute fields".to_owned(),
            other => format!("field {}", other.name()),
        }
    }
}

fn operator_list(operators: &[Operator]) -> String {
    operators
        .iter()
        .map(|op| op.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Match {
    /// `all` or `any`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "all" => Some(Self::All),
            "any" => Some(Self::Any),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Any => "any",
        }
    }
}

impl SortField {
    /// `createdAt` or `lastSeen`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "createdAt" => Some(Self::CreatedAt),
            "lastSeen" => Some(Self::LastSeen),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreatedAt => "createdAt",
            Self::LastSeen => "lastSeen",
        }
    }
}

impl SortOrder {
    /// `asc` or `desc`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "asc" => Some(Self::Asc),
            "desc" => Some(Self::Desc),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Asc => "asc",
            Self::Desc => "desc",
        }
    }
}

// ---------------------------------------------------------------------------
// JSON parsing
// ---------------------------------------------------------------------------

/// A string of `1..=max` characters.
fn text_value(value: &Value, max: usize) -> Result<String, String> {
    let message = || format!("must be a string of 1 to {max} characters");
    match value {
        Value::String(text) => {
            let chars = text.chars().count();
            if (1..=max).contains(&chars) {
                Ok(text.clone())
            } else {
                Err(message())
            }
        }
        _ => Err(format!("{}, not {}", message(), json_type_name(value))),
    }
}

fn bool_value(value: &Value) -> Result<bool, String> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::String(text) if text == "true" => Ok(true),
        Value::String(text) if text == "false" => Ok(false),
        _ => Err("must be true or false".to_owned()),
    }
}

fn segment_value(value: &Value) -> Result<ObjectId, String> {
    match value {
        Value::String(text) => text
            .parse()
            .map_err(|_| format!("must be a segment id ({ID_SHAPE})")),
        _ => Err(format!(
            "must be a segment id ({ID_SHAPE}), not {}",
            json_type_name(value)
        )),
    }
}

fn date_value(value: &Value) -> Result<Timestamp, String> {
    match value {
        Value::String(text) => Timestamp::parse(text).map_err(|e| e.to_string()),
        _ => Err(format!(
            "must be a date-time string such as 2019-01-23T13:32:30.163Z, not {}",
            json_type_name(value)
        )),
    }
}

/// Largest `conversations` value: what DynamoDB's signed 64-bit view can compare.
const MAX_NUMBER: u64 = i64::MAX as u64;

fn number_value(value: &Value) -> Result<u64, String> {
    let message = "must be a non-negative integer";
    let number = match value {
        Value::Number(n) => n.as_u64(),
        Value::String(text) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => {
            text.parse::<u64>().ok()
        }
        _ => None,
    };
    match number {
        Some(n) if n <= MAX_NUMBER => Ok(n),
        Some(_) => Err(format!("{message} no larger than {MAX_NUMBER}")),
        None => Err(message.to_owned()),
    }
}

/// Types a value for a field (the operator is known to take one).
fn typed_value(field: &FilterField, value: &Value) -> Result<FilterValue, String> {
    Ok(match field {
        FilterField::Attribute(_) => FilterValue::Text(text_value(value, MAX_VALUE_CHARS)?),
        FilterField::UserId => FilterValue::Text(text_value(value, MAX_USER_ID_CHARS)?),
        FilterField::Banned => FilterValue::Bool(bool_value(value)?),
        FilterField::Segments => FilterValue::Segment(segment_value(value)?),
        FilterField::CreatedAt | FilterField::LastSeen => FilterValue::Date(date_value(value)?),
        FilterField::Conversations => FilterValue::Number(number_value(value)?),
    })
}

impl Filter {
    /// Parses one filter object `{"field", "operator", "value"}`; errors name
    /// `path.field`, `path.operator`, `path.value` and any unknown key.
    pub fn parse_json(value: &Value, path: &str) -> Result<Filter, Vec<FieldError>> {
        let object = object_at(
            value,
            path,
            "a filter object with field, operator and value",
        )
        .map_err(|error| vec![error])?;
        let mut errors = Vec::new();
        let field = field_of(object.get("field"), &join_path(path, "field"), &mut errors);
        let operator = operator_of(
            object.get("operator"),
            field.as_ref(),
            &join_path(path, "operator"),
            &mut errors,
        );
        let typed = match (&field, operator) {
            (Some(field), Some(operator)) => value_of(
                object.get("value").filter(|v| !v.is_null()),
                field,
                operator,
                &join_path(path, "value"),
                &mut errors,
            ),
            _ => None,
        };
        for key in object.keys() {
            if !matches!(key.as_str(), "field" | "operator" | "value") {
                errors.push(FieldError::new(
                    join_path(path, key),
                    "unknown key; a filter has field, operator and value",
                ));
            }
        }
        match (field, operator, typed) {
            (Some(field), Some(operator), Some(value)) if errors.is_empty() => Ok(Filter {
                field,
                operator,
                value,
            }),
            _ => Err(errors),
        }
    }
}

/// A filter's `field`, or why it is none (reported at `path`).
fn field_of(raw: Option<&Value>, path: &str, errors: &mut Vec<FieldError>) -> Option<FilterField> {
    let refusal = match raw {
        None | Some(Value::Null) => "is required".to_owned(),
        Some(Value::String(name)) => match FilterField::parse(name) {
            Ok(field) => return Some(field),
            Err(e) => e.to_string(),
        },
        Some(other) => format!("must be a string, not {}", json_type_name(other)),
    };
    errors.push(FieldError::new(path, refusal));
    None
}

/// A filter's `operator`, one that `field` (when known) accepts, or why it
/// is none (reported at `path`).
fn operator_of(
    raw: Option<&Value>,
    field: Option<&FilterField>,
    path: &str,
    errors: &mut Vec<FieldError>,
) -> Option<Operator> {
    let accepted = field.map_or(&Operator::ALL[..], FilterField::operators);
    let refusal = match raw {
        None | Some(Value::Null) => "is required".to_owned(),
        Some(Value::String(name)) => match (Operator::parse(name), field) {
            (Some(operator), Some(field)) if !accepted.contains(&operator) => format!(
                "operator {operator} does not apply to {}; it accepts {}",
                field.describe(),
                operator_list(accepted)
            ),
            (Some(operator), _) => return Some(operator),
            (None, _) => format!("unknown operator; use one of {}", operator_list(accepted)),
        },
        Some(other) => format!("must be a string, not {}", json_type_name(other)),
    };
    errors.push(FieldError::new(path, refusal));
    None
}

/// A filter's `value`, typed for `field`, present exactly when `operator`
/// takes one, or why it is none (reported at `path`).
fn value_of(
    raw: Option<&Value>,
    field: &FilterField,
    operator: Operator,
    path: &str,
    errors: &mut Vec<FieldError>,
) -> Option<FilterValue> {
    let refusal = match (operator.takes_value(), raw) {
        (false, None) => return Some(FilterValue::None),
        (false, Some(_)) => format!("operator {operator} takes no value"),
        (true, None) => format!("is required with operator {operator}"),
        (true, Some(raw)) => match typed_value(field, raw) {
            Ok(value) => return Some(value),
            Err(message) => message,
        },
    };
    errors.push(FieldError::new(path, refusal));
    None
}

/// Parses a JSON array of 1..=[`MAX_FILTERS`] filter objects, naming elements
/// `path.0`, `path.1`, ...; returns every error of every element.
pub fn parse_filters_json(value: &Value, path: &str) -> Result<Vec<Filter>, Vec<FieldError>> {
    let Value::Array(items) = value else {
        return Err(vec![FieldError::new(
            path,
            format!(
                "must be an array of 1 to {MAX_FILTERS} filter objects, not {}",
                json_type_name(value)
            ),
        )]);
    };
    let mut errors = Vec::new();
    if items.is_empty() || items.len() > MAX_FILTERS {
        errors.push(FieldError::new(
            path,
            format!("must hold 1 to {MAX_FILTERS} filters, not {}", items.len()),
        ));
    }
    filters_of(items.iter().cloned().enumerate(), path, errors)
}

/// The filters of `objects`, each parsed at `path.{its index}`, after the
/// `errors` already found: every filter, or every error of every one.
pub(super) fn filters_of(
    objects: impl IntoIterator<Item = (usize, Value)>,
    path: &str,
    mut errors: Vec<FieldError>,
) -> Result<Vec<Filter>, Vec<FieldError>> {
    let mut filters = Vec::new();
    for (index, object) in objects {
        match Filter::parse_json(&object, &join_path(path, index)) {
            Ok(filter) => filters.push(filter),
            Err(mut more) => errors.append(&mut more),
        }
    }
    if errors.is_empty() {
        Ok(filters)
    } else {
        Err(errors)
    }
}

impl Sort {
    /// Parses `{"field"?: "createdAt"|"lastSeen", "order"?: "asc"|"desc"}`;
    /// a missing or `null` member takes its default.
    pub fn parse_json(value: &Value, path: &str) -> Result<Sort, Vec<FieldError>> {
        let object = object_at(value, path, "an object with field and order")
            .map_err(|error| vec![error])?;
        let mut errors = Vec::new();
        let mut sort = Sort::default();
        match object.get("field") {
            None | Some(Value::Null) => {}
            Some(Value::String(text)) if SortField::parse(text).is_some() => {
                sort.field = SortField::parse(text).unwrap_or_default();
            }
            Some(_) => errors.push(FieldError::new(
                join_path(path, "field"),
                SORT_FIELD_MESSAGE,
            )),
        }
        match object.get("order") {
            None | Some(Value::Null) => {}
            Some(Value::String(text)) if SortOrder::parse(text).is_some() => {
                sort.order = SortOrder::parse(text).unwrap_or_default();
            }
            Some(_) => errors.push(FieldError::new(
                join_path(path, "order"),
                SORT_ORDER_MESSAGE,
            )),
        }
        for key in object.keys() {
            if !matches!(key.as_str(), "field" | "order") {
                errors.push(FieldError::new(
                    join_path(path, key),
                    "unknown key; sort has field and order",
                ));
            }
        }
        if errors.is_empty() {
            Ok(sort)
        } else {
            Err(errors)
        }
    }
}
