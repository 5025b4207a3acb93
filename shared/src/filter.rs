//! Filters, match mode and sort: the grammar of `GET /users` and
//! `POST /users/export`, parsed from both query forms (URL-encoded JSON array
//! and bracket form) and from JSON bodies, and an evaluator
//! [`FilterSet::matches`]: the one place filters are decided, for lists and
//! exports alike (the store fetches the profiles an index walk keeps and
//! applies it to them).
//!
//! Field names `userId`, `banned`, `segments`, `createdAt`, `lastSeen` and
//! `conversations` name those user properties; every other field name must be
//! an attribute key (a known `default_*` key or a valid custom key).

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

use crate::error::{ApiError, FieldError, join_path};
use crate::model::{
    DEFAULT_PREFIX, MAX_VALUE_CHARS, ObjectId, Timestamp, User, is_known_default_key,
    is_valid_custom_key,
};
use crate::validate::json_type_name;

/// Most filters a request may carry.
pub const MAX_FILTERS: usize = 5;

/// Longest `userId` filter value, in characters (as long as a `userId` may be).
pub const MAX_USER_ID_CHARS: usize = 256;

/// What a filter looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterField {
    /// Any attribute key (`default_*` known key or a valid custom key).
    Attribute(String),
    UserId,
    Banned,
    /// Membership of a segment (value: a segment id).
    Segments,
    CreatedAt,
    LastSeen,
    Conversations,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Eq,
    Ne,
    Contains,
    NotContains,
    StartsWith,
    Exists,
    NotExists,
    Gt,
    Gte,
    Lt,
    Lte,
}

/// A filter's value, typed by its field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterValue {
    /// `exists` / `notExists` take none.
    None,
    Text(String),
    Bool(bool),
    Date(Timestamp),
    Number(u64),
    Segment(ObjectId),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub field: FilterField,
    pub operator: Operator,
    pub value: FilterValue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Match {
    #[default]
    All,
    Any,
}

/// Filters with their match mode; empty means every user matches.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FilterSet {
    pub match_mode: Match,
    pub filters: Vec<Filter>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortField {
    #[default]
    CreatedAt,
    LastSeen,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortOrder {
    Asc,
    #[default]
    Desc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sort {
    pub field: SortField,
    pub order: SortOrder,
}

/// Most users a page may hold, and the default.
pub const MAX_LIMIT: u32 = 40;

/// The parsed query of `GET /users`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub limit: u32,
    pub after: Option<ObjectId>,
    pub sort: Sort,
    pub filters: FilterSet,
}

impl Default for ListQuery {
    fn default() -> Self {
        Self {
            limit: MAX_LIMIT,
            after: None,
            sort: Sort::default(),
            filters: FilterSet::default(),
        }
    }
}

// ---------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------

use Operator::{
    Contains, Eq as OpEq, Exists, Gt, Gte, Lt, Lte, Ne, NotContains, NotExists, StartsWith,
};

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

impl Operator {
    pub const ALL: [Operator; 11] = [
        OpEq,
        Ne,
        Contains,
        NotContains,
        StartsWith,
        Exists,
        NotExists,
        Gt,
        Gte,
        Lt,
        Lte,
    ];

    /// The operator named `text` (case-sensitive, as the API spells it).
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OpEq => "eq",
            Ne => "ne",
            Contains => "contains",
            NotContains => "notContains",
            StartsWith => "startsWith",
            Exists => "exists",
            NotExists => "notExists",
            Gt => "gt",
            Gte => "gte",
            Lt => "lt",
            Lte => "lte",
        }
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

const MATCH_MESSAGE: &str = "must be all or any";
const SORT_FIELD_MESSAGE: &str = "must be createdAt or lastSeen";
const SORT_ORDER_MESSAGE: &str = "must be asc or desc";

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
            .map_err(|_| "must be a segment id (24 hexadecimal characters)".to_owned()),
        _ => Err(format!(
            "must be a segment id (24 hexadecimal characters), not {}",
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
        let Value::Object(object) = value else {
            return Err(vec![FieldError::new(
                path,
                format!(
                    "must be a filter object with field, operator and value, not {}",
                    json_type_name(value)
                ),
            )]);
        };
        let mut errors = Vec::new();
        let field_path = join_path(path, "field");
        let operator_path = join_path(path, "operator");
        let value_path = join_path(path, "value");

        let field = match object.get("field") {
            None | Some(Value::Null) => {
                errors.push(FieldError::new(&field_path, "is required"));
                None
            }
            Some(Value::String(name)) => match FilterField::parse(name) {
                Ok(field) => Some(field),
                Err(e) => {
                    errors.push(FieldError::new(&field_path, e.to_string()));
                    None
                }
            },
            Some(other) => {
                errors.push(FieldError::new(
                    &field_path,
                    format!("must be a string, not {}", json_type_name(other)),
                ));
                None
            }
        };

        let all_operators = operator_list(&Operator::ALL);
        let operator = match object.get("operator") {
            None | Some(Value::Null) => {
                errors.push(FieldError::new(&operator_path, "is required"));
                None
            }
            Some(Value::String(name)) => match Operator::parse(name) {
                Some(operator) => match &field {
                    Some(field) if !field.operators().contains(&operator) => {
                        errors.push(FieldError::new(
                            &operator_path,
                            format!(
                                "operator {operator} does not apply to {}; it accepts {}",
                                field.describe(),
                                operator_list(field.operators())
                            ),
                        ));
                        None
                    }
                    _ => Some(operator),
                },
                None => {
                    let accepted = match &field {
                        Some(field) => operator_list(field.operators()),
                        None => all_operators,
                    };
                    errors.push(FieldError::new(
                        &operator_path,
                        format!("unknown operator; use one of {accepted}"),
                    ));
                    None
                }
            },
            Some(other) => {
                errors.push(FieldError::new(
                    &operator_path,
                    format!("must be a string, not {}", json_type_name(other)),
                ));
                None
            }
        };

        let raw_value = object.get("value").filter(|v| !v.is_null());
        let mut typed = None;
        if let (Some(field), Some(operator)) = (&field, operator) {
            match (operator.takes_value(), raw_value) {
                (false, None) => typed = Some(FilterValue::None),
                (false, Some(_)) => errors.push(FieldError::new(
                    &value_path,
                    format!("operator {operator} takes no value"),
                )),
                (true, None) => errors.push(FieldError::new(
                    &value_path,
                    format!("is required with operator {operator}"),
                )),
                (true, Some(raw)) => match typed_value(field, raw) {
                    Ok(value) => typed = Some(value),
                    Err(message) => errors.push(FieldError::new(&value_path, message)),
                },
            }
        }

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
    let mut filters = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        match Filter::parse_json(item, &join_path(path, index)) {
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
        let Value::Object(object) = value else {
            return Err(vec![FieldError::new(
                path,
                format!(
                    "must be an object with field and order, not {}",
                    json_type_name(value)
                ),
            )]);
        };
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

// ---------------------------------------------------------------------------
// The query of GET /users
// ---------------------------------------------------------------------------

/// What one query parameter name means.
enum Param {
    Limit,
    After,
    SortField,
    SortOrder,
    Match,
    /// `filters=[...]`: the JSON form.
    FiltersJson,
    /// `filters[index][key]`: the bracket form.
    FilterPart {
        index: usize,
        key: String,
    },
    /// `filters[index][key]` with an index of [`MAX_FILTERS`] or more.
    FilterOutOfRange,
}

impl Param {
    fn parse(name: &str) -> Option<Param> {
        Some(match name {
            "limit" => Param::Limit,
            "after" => Param::After,
            "sort.field" | "sort[field]" => Param::SortField,
            "sort.order" | "sort[order]" => Param::SortOrder,
            "match" => Param::Match,
            "filters" => Param::FiltersJson,
            _ => {
                let rest = name.strip_prefix("filters[")?;
                let (index, rest) = rest.split_once("][")?;
                let key = rest.strip_suffix(']')?;
                if index.is_empty()
                    || !index.bytes().all(|b| b.is_ascii_digit())
                    || (index.len() > 1 && index.starts_with('0'))
                    || key.is_empty()
                    || key.contains(['[', ']'])
                {
                    return None;
                }
                match index.parse::<usize>() {
                    Ok(index) if index < MAX_FILTERS => Param::FilterPart {
                        index,
                        key: key.to_owned(),
                    },
                    _ => Param::FilterOutOfRange,
                }
            }
        })
    }

    /// The canonical name, for duplicate detection and error paths.
    fn canonical(&self, raw: &str) -> String {
        match self {
            Param::Limit => "limit".into(),
            Param::After => "after".into(),
            Param::SortField => "sort.field".into(),
            Param::SortOrder => "sort.order".into(),
            Param::Match => "match".into(),
            Param::FiltersJson => "filters".into(),
            Param::FilterPart { index, key } => format!("filters.{index}.{key}"),
            Param::FilterOutOfRange => raw.to_owned(),
        }
    }
}

const UNKNOWN_PARAMETER: &str =
    "unknown query parameter; accepted: limit, after, sort.field, sort.order, match, filters";

impl ListQuery {
    /// Parses the raw (still URL-encoded) query string of `GET /users`.
    /// Every offending parameter is named in one validation error.
    pub fn parse(raw_query: Option<&str>) -> Result<ListQuery, ApiError> {
        let mut errors: Vec<FieldError> = Vec::new();
        let mut query = ListQuery::default();
        let mut seen: Vec<String> = Vec::new();
        let mut json_filters: Option<String> = None;
        let mut bracket: BTreeMap<usize, Map<String, Value>> = BTreeMap::new();
        let mut out_of_range = false;

        for (name, value) in form_urlencoded::parse(raw_query.unwrap_or("").as_bytes()) {
            let Some(param) = Param::parse(&name) else {
                errors.push(FieldError::new(name.as_ref(), UNKNOWN_PARAMETER));
                continue;
            };
            let canonical = param.canonical(&name);
            if seen.contains(&canonical) {
                errors.push(FieldError::new(&canonical, "given more than once"));
                continue;
            }
            seen.push(canonical);
            match param {
                Param::Limit => match value.parse::<u32>() {
                    Ok(limit)
                        if value.bytes().all(|b| b.is_ascii_digit())
                            && (1..=MAX_LIMIT).contains(&limit) =>
                    {
                        query.limit = limit
                    }
                    _ => errors.push(FieldError::new(
                        "limit",
                        format!("must be an integer from 1 to {MAX_LIMIT}"),
                    )),
                },
                Param::After => match value.parse::<ObjectId>() {
                    Ok(id) => query.after = Some(id),
                    Err(_) => errors.push(FieldError::new(
                        "after",
                        "must be a user id (24 hexadecimal characters)",
                    )),
                },
                Param::SortField => match SortField::parse(&value) {
                    Some(field) => query.sort.field = field,
                    None => errors.push(FieldError::new("sort.field", SORT_FIELD_MESSAGE)),
                },
                Param::SortOrder => match SortOrder::parse(&value) {
                    Some(order) => query.sort.order = order,
                    None => errors.push(FieldError::new("sort.order", SORT_ORDER_MESSAGE)),
                },
                Param::Match => match Match::parse(&value) {
                    Some(mode) => query.filters.match_mode = mode,
                    None => errors.push(FieldError::new("match", MATCH_MESSAGE)),
                },
                Param::FiltersJson => json_filters = Some(value.into_owned()),
                Param::FilterPart { index, key } => {
                    bracket
                        .entry(index)
                        .or_default()
                        .insert(key, Value::String(value.into_owned()));
                }
                Param::FilterOutOfRange => out_of_range = true,
            }
        }

        let bracket_given = !bracket.is_empty() || out_of_range;
        if json_filters.is_some() && bracket_given {
            errors.push(FieldError::new(
                "filters",
                "give filters either as a JSON array or in bracket form, not both",
            ));
        } else if let Some(text) = json_filters {
            match serde_json::from_str::<Value>(&text) {
                Ok(value) => match parse_filters_json(&value, "filters") {
                    Ok(filters) => query.filters.filters = filters,
                    Err(mut more) => errors.append(&mut more),
                },
                Err(_) => errors.push(FieldError::new(
                    "filters",
                    format!(
                        "must be a JSON array of 1 to {MAX_FILTERS} filter objects, or use the bracket form filters[0][field]"
                    ),
                )),
            }
        } else if bracket_given {
            match Self::bracket_filters(bracket, out_of_range) {
                Ok(filters) => query.filters.filters = filters,
                Err(mut more) => errors.append(&mut more),
            }
        }

        if errors.is_empty() {
            Ok(query)
        } else {
            Err(ApiError::validation(errors))
        }
    }

    fn bracket_filters(
        parts: BTreeMap<usize, Map<String, Value>>,
        out_of_range: bool,
    ) -> Result<Vec<Filter>, Vec<FieldError>> {
        let mut errors = Vec::new();
        if out_of_range {
            errors.push(FieldError::new(
                "filters",
                format!(
                    "at most {MAX_FILTERS} filters, indexed filters[0] to filters[{}]",
                    MAX_FILTERS - 1
                ),
            ));
        }
        if let Some(missing) = (0..parts.len()).find(|index| !parts.contains_key(index)) {
            errors.push(FieldError::new(
                "filters",
                format!(
                    "filter indexes must run from 0 without gaps; filters[{missing}] is missing"
                ),
            ));
        }
        let mut filters = Vec::with_capacity(parts.len());
        for (index, mut object) in parts {
            // `filters[0][value]=` with exists/notExists means "no value".
            let takes_no_value = object
                .get("operator")
                .and_then(Value::as_str)
                .and_then(Operator::parse)
                .is_some_and(|op| !op.takes_value());
            if takes_no_value && object.get("value").and_then(Value::as_str) == Some("") {
                object.remove("value");
            }
            match Filter::parse_json(&Value::Object(object), &join_path("filters", index)) {
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
}

// ---------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------

/// A string property (set or not) against a text operator.
fn text_matches(actual: Option<&str>, operator: Operator, value: &FilterValue) -> bool {
    match (operator, value) {
        (Exists, _) => actual.is_some(),
        (NotExists, _) => actual.is_none(),
        (OpEq, FilterValue::Text(text)) => actual == Some(text.as_str()),
        (Ne, FilterValue::Text(text)) => actual != Some(text.as_str()),
        (Contains, FilterValue::Text(text)) => actual.is_some_and(|a| a.contains(text.as_str())),
        (NotContains, FilterValue::Text(text)) => {
            !actual.is_some_and(|a| a.contains(text.as_str()))
        }
        (StartsWith, FilterValue::Text(text)) => {
            actual.is_some_and(|a| a.starts_with(text.as_str()))
        }
        _ => false,
    }
}

/// An ordered property against a comparison operator.
fn ordered_matches<T: Ord>(actual: T, operator: Operator, value: T) -> bool {
    match operator {
        OpEq => actual == value,
        Ne => actual != value,
        Gt => actual > value,
        Gte => actual >= value,
        Lt => actual < value,
        Lte => actual <= value,
        _ => false,
    }
}

impl Filter {
    /// Whether `user` satisfies this filter. A filter whose operator or value
    /// does not fit its field (only possible when built by hand) matches nobody.
    pub fn matches(&self, user: &User) -> bool {
        let op = self.operator;
        match (&self.field, &self.value) {
            (FilterField::Attribute(key), value) => {
                text_matches(user.attributes.get(key), op, value)
            }
            (FilterField::UserId, value) => text_matches(Some(&user.user_id), op, value),
            (FilterField::Banned, FilterValue::Bool(b)) => match op {
                OpEq => user.banned == *b,
                Ne => user.banned != *b,
                _ => false,
            },
            (FilterField::Segments, value) => match (op, value) {
                (OpEq, FilterValue::Segment(id)) => user.segments.contains(id),
                (Ne, FilterValue::Segment(id)) => !user.segments.contains(id),
                (Exists, _) => !user.segments.is_empty(),
                (NotExists, _) => user.segments.is_empty(),
                _ => false,
            },
            (FilterField::CreatedAt, FilterValue::Date(t)) => {
                ordered_matches(user.created_at.millis(), op, t.millis())
            }
            (FilterField::LastSeen, FilterValue::Date(t)) => {
                ordered_matches(user.last_seen.millis(), op, t.millis())
            }
            (FilterField::Conversations, FilterValue::Number(n)) => {
                ordered_matches(user.conversations, op, *n)
            }
            _ => false,
        }
    }
}

impl FilterSet {
    /// Whether `user` is selected: an empty set selects everyone; `All`
    /// needs every filter to hold, `Any` at least one.
    pub fn matches(&self, user: &User) -> bool {
        if self.filters.is_empty() {
            return true;
        }
        match self.match_mode {
            Match::All => self.filters.iter().all(|f| f.matches(user)),
            Match::Any => self.filters.iter().any(|f| f.matches(user)),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    /// Whether every filter looks only at what recording activity never
    /// changes (attributes, `userId`, `banned`, `segments`, `createdAt`):
    /// such a set can be decided on the copy of those the created-at index
    /// carries, before any profile is fetched.
    pub fn ignores_activity(&self) -> bool {
        self.filters.iter().all(|filter| {
            !matches!(
                filter.field,
                FilterField::LastSeen | FilterField::Conversations
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::sample_user;
    use serde_json::json;

    const SEG: &str = "5c486eeebda7873576a379e4";
    const OTHER_SEG: &str = "5c486eeebda7873576a379e5";

    fn parse(value: Value) -> Result<Filter, Vec<FieldError>> {
        Filter::parse_json(&value, "filters.0")
    }

    fn error_fields(result: Result<Filter, Vec<FieldError>>) -> Vec<String> {
        result.unwrap_err().into_iter().map(|e| e.field).collect()
    }

    fn query_errors(raw: &str) -> Vec<FieldError> {
        match ListQuery::parse(Some(raw)) {
            Err(ApiError::Validation { errors, .. }) => errors,
            other => panic!("{raw}: expected a validation error, got {other:?}"),
        }
    }

    fn query_error_fields(raw: &str) -> Vec<String> {
        query_errors(raw).into_iter().map(|e| e.field).collect()
    }

    fn filter(field: FilterField, operator: Operator, value: FilterValue) -> Filter {
        Filter {
            field,
            operator,
            value,
        }
    }

    fn attr(key: &str) -> FilterField {
        FilterField::Attribute(key.to_owned())
    }

    #[test]
    fn filters_on_activity_need_the_profile() {
        let set = |filters: Vec<Filter>| FilterSet {
            filters,
            match_mode: Match::Any,
        };
        let country = filter(
            attr("default_country"),
            OpEq,
            FilterValue::Text("PL".into()),
        );
        let seen = filter(
            FilterField::LastSeen,
            Gt,
            FilterValue::Date(Timestamp::from_millis(0)),
        );
        let conversations = filter(FilterField::Conversations, Gt, FilterValue::Number(1));
        assert!(set(vec![]).ignores_activity());
        assert!(set(vec![country.clone()]).ignores_activity());
        assert!(!set(vec![country.clone(), seen]).ignores_activity());
        assert!(!set(vec![conversations]).ignores_activity());
    }

    fn text(s: &str) -> FilterValue {
        FilterValue::Text(s.to_owned())
    }

    /// A sample value of the right JSON type for each field.
    fn good_value(field: &str) -> Value {
        match field {
            "banned" => json!(true),
            "segments" => json!(SEG),
            "createdAt" | "lastSeen" => json!("2019-01-23 13:32:30.163Z"),
            "conversations" => json!(3),
            _ => json!("x"),
        }
    }

    // ---- names -----------------------------------------------------------

    #[test]
    fn names_round_trip() {
        for op in Operator::ALL {
            assert_eq!(Operator::parse(op.as_str()), Some(op));
        }
        assert_eq!(Operator::parse("EQ"), None);
        assert_eq!(Operator::parse("startswith"), None);
        assert_eq!(Match::parse("all"), Some(Match::All));
        assert_eq!(Match::parse("any"), Some(Match::Any));
        assert_eq!(Match::parse("ANY"), None);
        assert_eq!(Match::parse(""), None);
        assert_eq!(SortField::parse("createdAt"), Some(SortField::CreatedAt));
        assert_eq!(SortField::parse("lastSeen"), Some(SortField::LastSeen));
        assert_eq!(SortField::parse("createdat"), None);
        assert_eq!(SortOrder::parse("asc"), Some(SortOrder::Asc));
        assert_eq!(SortOrder::parse("desc"), Some(SortOrder::Desc));
        assert_eq!(SortOrder::parse("up"), None);
    }

    #[test]
    fn field_names() {
        assert_eq!(FilterField::parse("userId"), Ok(FilterField::UserId));
        assert_eq!(
            FilterField::parse("conversations"),
            Ok(FilterField::Conversations)
        );
        assert_eq!(
            FilterField::parse("default_source"),
            Ok(attr("default_source"))
        );
        assert_eq!(
            FilterField::parse("group-selected.x_1"),
            Ok(attr("group-selected.x_1"))
        );
        assert_eq!(
            FilterField::parse("default_colour"),
            Err(FieldNameError::UnknownDefault)
        );
        assert_eq!(
            FilterField::parse("has space"),
            Err(FieldNameError::Invalid)
        );
        assert_eq!(FilterField::parse(""), Err(FieldNameError::Invalid));
        assert_eq!(
            FilterField::parse(&"k".repeat(129)),
            Err(FieldNameError::Invalid)
        );
    }

    // ---- Filter::parse_json -----------------------------------------------

    #[test]
    fn every_field_operator_combination_is_allowed_or_refused_on_operator() {
        let allowed: [(&str, &[&str]); 8] = [
            (
                "default_name",
                &[
                    "eq",
                    "ne",
                    "contains",
                    "notContains",
                    "startsWith",
                    "exists",
                    "notExists",
                ],
            ),
            (
                "plan",
                &[
                    "eq",
                    "ne",
                    "contains",
                    "notContains",
                    "startsWith",
                    "exists",
                    "notExists",
                ],
            ),
            (
                "userId",
                &["eq", "ne", "contains", "notContains", "startsWith"],
            ),
            ("banned", &["eq", "ne"]),
            ("segments", &["eq", "ne", "exists", "notExists"]),
            ("createdAt", &["eq", "ne", "gt", "gte", "lt", "lte"]),
            ("lastSeen", &["eq", "ne", "gt", "gte", "lt", "lte"]),
            ("conversations", &["eq", "ne", "gt", "gte", "lt", "lte"]),
        ];
        for (field, ops) in allowed {
            for op in Operator::ALL {
                let name = op.as_str();
                let mut object = json!({"field": field, "operator": name});
                if op.takes_value() {
                    object["value"] = good_value(field);
                }
                let result = parse(object);
                if ops.contains(&name) {
                    let parsed = result.unwrap_or_else(|e| panic!("{field} {name}: {e:?}"));
                    assert_eq!(parsed.operator, op);
                    assert_eq!(parsed.field.name(), field);
                } else {
                    let errors = result.expect_err(&format!("{field} {name} must be refused"));
                    assert_eq!(errors.len(), 1, "{field} {name}: {errors:?}");
                    assert_eq!(errors[0].field, "filters.0.operator");
                    assert!(
                        errors[0].message.contains(&ops.join(", ")),
                        "{}",
                        errors[0].message
                    );
                }
            }
        }
    }

    #[test]
    fn gt_on_banned_names_the_accepted_operators() {
        let errors =
            parse(json!({"field": "banned", "operator": "gt", "value": true})).unwrap_err();
        assert_eq!(errors[0].field, "filters.0.operator");
        assert!(
            errors[0].message.contains("eq, ne"),
            "{}",
            errors[0].message
        );
    }

    #[test]
    fn parses_typed_values() {
        let f =
            parse(json!({"field": "default_country", "operator": "eq", "value": "PL"})).unwrap();
        assert_eq!(f, filter(attr("default_country"), OpEq, text("PL")));
        let f = parse(json!({"field": "userId", "operator": "startsWith", "value": "07"})).unwrap();
        assert_eq!(f, filter(FilterField::UserId, StartsWith, text("07")));
        let f = parse(json!({"field": "banned", "operator": "eq", "value": "false"})).unwrap();
        assert_eq!(f.value, FilterValue::Bool(false));
        let f = parse(json!({"field": "banned", "operator": "ne", "value": true})).unwrap();
        assert_eq!(f.value, FilterValue::Bool(true));
        let f = parse(json!({"field": "segments", "operator": "eq", "value": SEG})).unwrap();
        assert_eq!(f.value, FilterValue::Segment(SEG.parse().unwrap()));
        let f = parse(
            json!({"field": "createdAt", "operator": "gte", "value": "2019-01-23T13:32:30.163Z"}),
        )
        .unwrap();
        assert_eq!(
            f.value,
            FilterValue::Date(Timestamp::from_millis(1_548_250_350_163))
        );
        let f =
            parse(json!({"field": "lastSeen", "operator": "lt", "value": "2019-01-23"})).unwrap();
        assert_eq!(
            f.value,
            FilterValue::Date(Timestamp::parse("2019-01-23").unwrap())
        );
        let f = parse(json!({"field": "conversations", "operator": "gt", "value": 0})).unwrap();
        assert_eq!(f.value, FilterValue::Number(0));
        let f = parse(json!({"field": "conversations", "operator": "lte", "value": "12"})).unwrap();
        assert_eq!(f.value, FilterValue::Number(12));
        for (field, op) in [
            ("plan", "exists"),
            ("default_email", "notExists"),
            ("segments", "exists"),
            ("segments", "notExists"),
        ] {
            let f = parse(json!({"field": field, "operator": op})).unwrap();
            assert_eq!(f.value, FilterValue::None);
            let f = parse(json!({"field": field, "operator": op, "value": null})).unwrap();
            assert_eq!(f.value, FilterValue::None);
        }
        let long = "a".repeat(MAX_VALUE_CHARS);
        assert!(parse(json!({"field": "plan", "operator": "eq", "value": long})).is_ok());
        let long = "ż".repeat(MAX_USER_ID_CHARS);
        assert!(parse(json!({"field": "userId", "operator": "eq", "value": long})).is_ok());
    }

    #[test]
    fn refuses_bad_values_on_value() {
        let cases = [
            json!({"field": "plan", "operator": "eq", "value": ""}),
            json!({"field": "plan", "operator": "eq", "value": "a".repeat(MAX_VALUE_CHARS + 1)}),
            json!({"field": "plan", "operator": "eq", "value": 5}),
            json!({"field": "plan", "operator": "contains", "value": ["a"]}),
            json!({"field": "plan", "operator": "eq"}),
            json!({"field": "plan", "operator": "eq", "value": null}),
            json!({"field": "plan", "operator": "exists", "value": "x"}),
            json!({"field": "userId", "operator": "eq", "value": ""}),
            json!({"field": "userId", "operator": "eq", "value": "u".repeat(MAX_USER_ID_CHARS + 1)}),
            json!({"field": "userId", "operator": "eq", "value": 17}),
            json!({"field": "banned", "operator": "eq", "value": "yes"}),
            json!({"field": "banned", "operator": "eq", "value": "True"}),
            json!({"field": "banned", "operator": "eq", "value": 1}),
            json!({"field": "banned", "operator": "eq"}),
            json!({"field": "segments", "operator": "eq", "value": "nope"}),
            json!({"field": "segments", "operator": "eq", "value": SEG.to_uppercase()}),
            json!({"field": "segments", "operator": "ne", "value": 5}),
            json!({"field": "segments", "operator": "eq"}),
            json!({"field": "segments", "operator": "exists", "value": SEG}),
            json!({"field": "createdAt", "operator": "gt", "value": "yesterday"}),
            json!({"field": "createdAt", "operator": "gt", "value": 1_548_250_350_163_i64}),
            json!({"field": "lastSeen", "operator": "lt", "value": "1548250350163"}),
            json!({"field": "conversations", "operator": "gt", "value": -1}),
            json!({"field": "conversations", "operator": "gt", "value": 1.5}),
            json!({"field": "conversations", "operator": "gt", "value": "1.0"}),
            json!({"field": "conversations", "operator": "gt", "value": "-1"}),
            json!({"field": "conversations", "operator": "gt", "value": "+1"}),
            json!({"field": "conversations", "operator": "gt", "value": ""}),
            json!({"field": "conversations", "operator": "gt", "value": u64::MAX}),
            json!({"field": "conversations", "operator": "gt", "value": true}),
        ];
        for case in cases {
            assert_eq!(
                error_fields(parse(case.clone())),
                ["filters.0.value"],
                "{case}"
            );
        }
    }

    #[test]
    fn refuses_bad_fields_operators_and_keys() {
        assert_eq!(
            error_fields(parse(
                json!({"field": "default_colour", "operator": "eq", "value": "x"})
            )),
            ["filters.0.field"]
        );
        assert_eq!(
            error_fields(parse(
                json!({"field": "bad key", "operator": "eq", "value": "x"})
            )),
            ["filters.0.field"]
        );
        assert_eq!(
            error_fields(parse(json!({"field": 5, "operator": "eq", "value": "x"}))),
            ["filters.0.field"]
        );
        assert_eq!(
            error_fields(parse(json!({"operator": "eq", "value": "x"}))),
            ["filters.0.field"]
        );
        assert_eq!(
            error_fields(parse(
                json!({"field": "plan", "operator": "like", "value": "x"})
            )),
            ["filters.0.operator"]
        );
        assert_eq!(
            error_fields(parse(
                json!({"field": "plan", "operator": true, "value": "x"})
            )),
            ["filters.0.operator"]
        );
        assert_eq!(
            error_fields(parse(json!({"field": "plan", "value": "x"}))),
            ["filters.0.operator"]
        );
        assert_eq!(
            error_fields(parse(
                json!({"field": "plan", "operator": "eq", "value": "x", "colour": 1})
            )),
            ["filters.0.colour"]
        );
        // Everything wrong at once: every offending path is named.
        assert_eq!(
            error_fields(parse(
                json!({"field": "default_x", "operator": "like", "colour": 1})
            )),
            ["filters.0.field", "filters.0.operator", "filters.0.colour"]
        );
        assert_eq!(error_fields(parse(json!("eq"))), ["filters.0"]);
        assert_eq!(error_fields(parse(json!(null))), ["filters.0"]);
        let errors = parse(json!({"field": "plan", "operator": "gt", "value": "x"})).unwrap_err();
        assert_eq!(errors[0].field, "filters.0.operator");
        assert!(
            errors[0]
                .message
                .contains("eq, ne, contains, notContains, startsWith, exists, notExists")
        );
    }

    #[test]
    fn filter_arrays() {
        let one = json!([{"field": "plan", "operator": "exists"}]);
        assert_eq!(parse_filters_json(&one, "filters").unwrap().len(), 1);
        let five = Value::Array(vec![one[0].clone(); 5]);
        assert_eq!(parse_filters_json(&five, "filters").unwrap().len(), 5);
        let six = Value::Array(vec![one[0].clone(); 6]);
        let errors = parse_filters_json(&six, "filters").unwrap_err();
        assert_eq!(
            errors.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(),
            ["filters"]
        );
        assert_eq!(
            parse_filters_json(&json!([]), "filters").unwrap_err()[0].field,
            "filters"
        );
        assert_eq!(
            parse_filters_json(&json!({}), "filters").unwrap_err()[0].field,
            "filters"
        );
        let mixed = json!([
            {"field": "plan", "operator": "gt", "value": "x"},
            {"field": "plan", "operator": "eq", "value": "ok"},
            {"field": "banned", "operator": "eq", "value": "maybe", "colour": "red"},
        ]);
        let fields: Vec<String> = parse_filters_json(&mixed, "filters")
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            ["filters.0.operator", "filters.2.value", "filters.2.colour"]
        );
    }

    #[test]
    fn sort_from_json() {
        assert_eq!(Sort::parse_json(&json!({}), "sort"), Ok(Sort::default()));
        assert_eq!(
            Sort::parse_json(&json!({"field": "lastSeen", "order": "asc"}), "sort"),
            Ok(Sort {
                field: SortField::LastSeen,
                order: SortOrder::Asc
            })
        );
        assert_eq!(
            Sort::parse_json(&json!({"order": "asc", "field": null}), "sort"),
            Ok(Sort {
                field: SortField::CreatedAt,
                order: SortOrder::Asc
            })
        );
        let errors =
            Sort::parse_json(&json!({"field": "name", "order": 1, "by": "x"}), "sort").unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["sort.field", "sort.order", "sort.by"]);
        assert_eq!(
            Sort::parse_json(&json!("createdAt"), "sort").unwrap_err()[0].field,
            "sort"
        );
    }

    // ---- ListQuery::parse -------------------------------------------------

    #[test]
    fn empty_query_takes_defaults() {
        let expected = ListQuery {
            limit: 40,
            after: None,
            sort: Sort {
                field: SortField::CreatedAt,
                order: SortOrder::Desc,
            },
            filters: FilterSet {
                match_mode: Match::All,
                filters: vec![],
            },
        };
        assert_eq!(ListQuery::parse(None).unwrap(), expected);
        assert_eq!(ListQuery::parse(Some("")).unwrap(), expected);
        assert_eq!(ListQuery::default(), expected);
    }

    #[test]
    fn parses_every_parameter() {
        let q = ListQuery::parse(Some(&format!(
            "limit=7&after={SEG}&sort.field=lastSeen&sort.order=asc&match=any"
        )))
        .unwrap();
        assert_eq!(q.limit, 7);
        assert_eq!(q.after, Some(SEG.parse().unwrap()));
        assert_eq!(
            q.sort,
            Sort {
                field: SortField::LastSeen,
                order: SortOrder::Asc
            }
        );
        assert_eq!(q.filters.match_mode, Match::Any);
        assert!(q.filters.filters.is_empty());
        let bracket = ListQuery::parse(Some(&format!(
            "limit=7&after={SEG}&sort%5Bfield%5D=lastSeen&sort[order]=asc&match=any"
        )))
        .unwrap();
        assert_eq!(bracket, q);
    }

    #[test]
    fn limit_bounds() {
        assert_eq!(ListQuery::parse(Some("limit=1")).unwrap().limit, 1);
        assert_eq!(ListQuery::parse(Some("limit=40")).unwrap().limit, 40);
        for bad in [
            "0",
            "41",
            "abc",
            "",
            "-1",
            "+5",
            "4.0",
            "99999999999999999999",
        ] {
            assert_eq!(
                query_error_fields(&format!("limit={bad}")),
                ["limit"],
                "{bad}"
            );
        }
    }

    #[test]
    fn after_must_be_an_id() {
        for bad in [
            "",
            "xyz",
            "5C486EEEBDA7873576A379E4",
            "5c486eeebda7873576a379e",
        ] {
            assert_eq!(
                query_error_fields(&format!("after={bad}")),
                ["after"],
                "{bad}"
            );
        }
    }

    #[test]
    fn bad_sort_and_match() {
        assert_eq!(query_error_fields("sort.field=name"), ["sort.field"]);
        assert_eq!(query_error_fields("sort[order]=up"), ["sort.order"]);
        assert_eq!(query_error_fields("match=some"), ["match"]);
    }

    #[test]
    fn unknown_and_duplicate_parameters() {
        assert_eq!(query_error_fields("page=2"), ["page"]);
        assert_eq!(query_error_fields("sort=createdAt"), ["sort"]);
        assert_eq!(query_error_fields("filters[0]=x"), ["filters[0]"]);
        assert_eq!(
            query_error_fields("filters[a][field]=x"),
            ["filters[a][field]"]
        );
        assert_eq!(
            query_error_fields("filters[01][field]=x"),
            ["filters[01][field]"]
        );
        assert_eq!(query_error_fields("limit=5&limit=6"), ["limit"]);
        assert_eq!(
            query_error_fields("sort.field=lastSeen&sort[field]=lastSeen"),
            ["sort.field"]
        );
        assert_eq!(query_error_fields("match=any&match=any"), ["match"]);
        assert_eq!(
            query_error_fields(
                "filters[0][field]=plan&filters[0][field]=plan&filters[0][operator]=exists"
            ),
            ["filters.0.field"]
        );
        // Every offending parameter is named.
        assert_eq!(
            query_error_fields("limit=0&after=x&colour=red&match=no"),
            ["limit", "after", "colour", "match"]
        );
    }

    #[test]
    fn both_filter_forms_give_the_same_query() {
        let json = r#"[{"field":"default_country","operator":"eq","value":"PL"},{"field":"banned","operator":"eq","value":false},{"field":"conversations","operator":"gte","value":2},{"field":"segments","operator":"exists"},{"field":"createdAt","operator":"lt","value":"2019-01-23 13:32:30.163Z"}]"#;
        let encoded: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("match", "any")
            .append_pair("filters", json)
            .finish();
        let from_json = ListQuery::parse(Some(&encoded)).unwrap();
        let bracket = "match=any\
            &filters[0][field]=default_country&filters[0][operator]=eq&filters[0][value]=PL\
            &filters[1][field]=banned&filters[1][operator]=eq&filters[1][value]=false\
            &filters[2][field]=conversations&filters[2][operator]=gte&filters[2][value]=2\
            &filters[3][field]=segments&filters[3][operator]=exists\
            &filters[4][field]=createdAt&filters[4][operator]=lt&filters[4][value]=2019-01-23%2013%3A32%3A30.163Z";
        let from_brackets = ListQuery::parse(Some(bracket)).unwrap();
        assert_eq!(from_json, from_brackets);
        assert_eq!(from_json.filters.match_mode, Match::Any);
        assert_eq!(from_json.filters.filters.len(), 5);
        assert_eq!(
            from_json.filters.filters[0],
            filter(attr("default_country"), OpEq, text("PL"))
        );
        assert_eq!(from_json.filters.filters[3].value, FilterValue::None);
        // Percent-encoded brackets, any parameter order.
        let shuffled = "filters%5B0%5D%5Bvalue%5D=PL&filters%5B0%5D%5Boperator%5D=eq&filters%5B0%5D%5Bfield%5D=default_country";
        let unencoded =
            "filters=[{\"field\":\"default_country\",\"operator\":\"eq\",\"value\":\"PL\"}]";
        assert_eq!(
            ListQuery::parse(Some(shuffled)).unwrap(),
            ListQuery::parse(Some(unencoded)).unwrap()
        );
    }

    #[test]
    fn bracket_exists_with_empty_value_means_no_value() {
        let q = ListQuery::parse(Some(
            "filters[0][field]=plan&filters[0][operator]=notExists&filters[0][value]=",
        ))
        .unwrap();
        assert_eq!(q.filters.filters[0].value, FilterValue::None);
        assert_eq!(
            query_error_fields("filters[0][field]=plan&filters[0][operator]=eq&filters[0][value]="),
            ["filters.0.value"]
        );
    }

    #[test]
    fn filter_count_gaps_and_mixing() {
        let six_json = format!(
            "filters={}",
            serde_json::to_string(&vec![json!({"field": "plan", "operator": "exists"}); 6])
                .unwrap()
        );
        assert_eq!(query_error_fields(&six_json), ["filters"]);
        let mut six_brackets = String::new();
        for i in 0..6 {
            six_brackets.push_str(&format!(
                "&filters[{i}][field]=plan&filters[{i}][operator]=exists"
            ));
        }
        assert_eq!(query_error_fields(&six_brackets[1..]), ["filters"]);
        assert_eq!(
            query_error_fields(
                "filters[0][field]=plan&filters[0][operator]=exists&filters[2][field]=plan&filters[2][operator]=exists"
            ),
            ["filters"]
        );
        assert_eq!(
            query_error_fields("filters[1][field]=plan&filters[1][operator]=exists"),
            ["filters"]
        );
        assert_eq!(
            query_error_fields("filters[99999999999999999999999][field]=plan"),
            ["filters"]
        );
        assert_eq!(
            query_error_fields(
                r#"filters=[{"field":"plan","operator":"exists"}]&filters[0][field]=plan&filters[0][operator]=exists"#
            ),
            ["filters"]
        );
        assert_eq!(query_error_fields("filters=[]"), ["filters"]);
        assert_eq!(query_error_fields("filters=notjson"), ["filters"]);
        assert_eq!(query_error_fields("filters="), ["filters"]);
        assert_eq!(
            query_error_fields(r#"filters={"field":"plan"}"#),
            ["filters"]
        );
    }

    #[test]
    fn filter_errors_inside_the_query_are_named_by_path() {
        assert_eq!(
            query_error_fields(
                "filters[0][field]=banned&filters[0][operator]=gt&filters[0][value]=true&filters[0][colour]=red"
            ),
            ["filters.0.operator", "filters.0.colour"]
        );
        assert_eq!(
            query_error_fields(
                r#"filters=[{"field":"plan","operator":"exists"},{"field":"default_x","operator":"eq","value":"1"}]"#
            ),
            ["filters.1.field"]
        );
        assert_eq!(
            query_error_fields(
                "filters[0][field]=conversations&filters[0][operator]=gt&filters[0][value]=lots&limit=0"
            ),
            ["limit", "filters.0.value"]
        );
    }

    #[test]
    fn match_without_filters_is_fine() {
        let q = ListQuery::parse(Some("match=any")).unwrap();
        assert_eq!(q.filters.match_mode, Match::Any);
        assert!(q.filters.is_empty());
    }

    // ---- evaluation -------------------------------------------------------

    #[test]
    fn text_truth_table_on_set_and_unset_attributes() {
        let user = sample_user(); // default_name = "Joe", default_country unset
        let cases: [(Operator, &str, bool, bool); 14] = [
            // operator, value, result when set to "Joe", result when unset
            (OpEq, "Joe", true, false),
            (OpEq, "joe", false, false),
            (Ne, "Joe", false, true),
            (Ne, "Ann", true, true),
            (Contains, "o", true, false),
            (Contains, "O", false, false),
            (NotContains, "o", false, true),
            (NotContains, "x", true, true),
            (StartsWith, "Jo", true, false),
            (StartsWith, "jo", false, false),
            (StartsWith, "oe", false, false),
            (Exists, "", true, false),
            (NotExists, "", false, true),
            (Gt, "A", false, false),
        ];
        for (op, value, when_set, when_unset) in cases {
            let value = if op.takes_value() {
                text(value)
            } else {
                FilterValue::None
            };
            let set = filter(attr("default_name"), op, value.clone());
            let unset = filter(attr("default_country"), op, value.clone());
            assert_eq!(set.matches(&user), when_set, "{op} {value:?} on set");
            assert_eq!(unset.matches(&user), when_unset, "{op} {value:?} on unset");
        }
    }

    #[test]
    fn user_id_banned_segments_dates_and_conversations() {
        let mut user = sample_user();
        let uid = user.user_id.clone();
        assert!(filter(FilterField::UserId, OpEq, text(&uid)).matches(&user));
        assert!(!filter(FilterField::UserId, Ne, text(&uid)).matches(&user));
        assert!(filter(FilterField::UserId, Contains, text("6aaa")).matches(&user));
        assert!(!filter(FilterField::UserId, Contains, text("6AAA")).matches(&user));
        assert!(filter(FilterField::UserId, NotContains, text("zzz")).matches(&user));
        assert!(filter(FilterField::UserId, StartsWith, text("0735")).matches(&user));

        assert!(filter(FilterField::Banned, OpEq, FilterValue::Bool(false)).matches(&user));
        assert!(!filter(FilterField::Banned, Ne, FilterValue::Bool(false)).matches(&user));
        user.banned = true;
        assert!(filter(FilterField::Banned, OpEq, FilterValue::Bool(true)).matches(&user));
        assert!(filter(FilterField::Banned, Ne, FilterValue::Bool(false)).matches(&user));

        let seg: ObjectId = SEG.parse().unwrap();
        let other: ObjectId = OTHER_SEG.parse().unwrap();
        let eq = filter(FilterField::Segments, OpEq, FilterValue::Segment(seg));
        let ne = filter(FilterField::Segments, Ne, FilterValue::Segment(seg));
        let exists = filter(FilterField::Segments, Exists, FilterValue::None);
        let not_exists = filter(FilterField::Segments, NotExists, FilterValue::None);
        assert!(
            !eq.matches(&user)
                && ne.matches(&user)
                && !exists.matches(&user)
                && not_exists.matches(&user)
        );
        user.segments.insert(other);
        assert!(
            !eq.matches(&user)
                && ne.matches(&user)
                && exists.matches(&user)
                && !not_exists.matches(&user)
        );
        user.segments.insert(seg);
        assert!(
            eq.matches(&user)
                && !ne.matches(&user)
                && exists.matches(&user)
                && !not_exists.matches(&user)
        );

        let at = user.created_at;
        let before = Timestamp::from_millis(at.millis() - 1);
        let after = Timestamp::from_millis(at.millis() + 1);
        for (op, t, expected) in [
            (OpEq, at, true),
            (OpEq, after, false),
            (Ne, at, false),
            (Ne, before, true),
            (Gt, before, true),
            (Gt, at, false),
            (Gte, at, true),
            (Gte, after, false),
            (Lt, after, true),
            (Lt, at, false),
            (Lte, at, true),
            (Lte, before, false),
        ] {
            assert_eq!(
                filter(FilterField::CreatedAt, op, FilterValue::Date(t)).matches(&user),
                expected,
                "createdAt {op} {t}"
            );
        }
        user.last_seen = after;
        assert!(filter(FilterField::LastSeen, Gt, FilterValue::Date(at)).matches(&user));
        assert!(!filter(FilterField::LastSeen, Lte, FilterValue::Date(at)).matches(&user));

        user.conversations = 3;
        for (op, n, expected) in [
            (OpEq, 3, true),
            (OpEq, 2, false),
            (Ne, 3, false),
            (Ne, 0, true),
            (Gt, 2, true),
            (Gt, 3, false),
            (Gte, 3, true),
            (Gte, 4, false),
            (Lt, 4, true),
            (Lt, 3, false),
            (Lte, 3, true),
            (Lte, 2, false),
        ] {
            assert_eq!(
                filter(FilterField::Conversations, op, FilterValue::Number(n)).matches(&user),
                expected,
                "conversations {op} {n}"
            );
        }
    }

    #[test]
    fn ill_typed_filters_match_nobody() {
        let user = sample_user();
        assert!(!filter(FilterField::Banned, OpEq, text("false")).matches(&user));
        assert!(!filter(FilterField::Banned, Gt, FilterValue::Bool(false)).matches(&user));
        assert!(!filter(FilterField::Conversations, OpEq, text("0")).matches(&user));
        assert!(
            !filter(
                FilterField::CreatedAt,
                Contains,
                FilterValue::Date(user.created_at)
            )
            .matches(&user)
        );
        assert!(!filter(attr("default_name"), OpEq, FilterValue::Number(1)).matches(&user));
    }

    #[test]
    fn match_modes() {
        let user = sample_user();
        let yes = filter(attr("default_name"), OpEq, text("Joe"));
        let no = filter(attr("default_name"), OpEq, text("Ann"));
        let set = |mode, filters: Vec<Filter>| FilterSet {
            match_mode: mode,
            filters,
        };
        assert!(set(Match::All, vec![]).matches(&user));
        assert!(set(Match::Any, vec![]).matches(&user));
        assert!(set(Match::All, vec![yes.clone(), yes.clone()]).matches(&user));
        assert!(!set(Match::All, vec![yes.clone(), no.clone()]).matches(&user));
        assert!(set(Match::Any, vec![no.clone(), yes.clone()]).matches(&user));
        assert!(!set(Match::Any, vec![no.clone(), no]).matches(&user));
    }
}
