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
    DEFAULT_PREFIX, ID_SHAPE, MAX_VALUE_CHARS, ObjectId, Timestamp, User, is_known_default_key,
    is_valid_custom_key,
};
use crate::validate::{MAX_USER_ID_CHARS, json_type_name};

/// Most filters a request may carry.
pub const MAX_FILTERS: usize = 5;

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

use Operator::{
    Contains, Eq as OpEq, Exists, Gt, Gte, Lt, Lte, Ne, NotContains, NotExists, StartsWith,
};

/// The messages of the names the grammar and both query forms refuse.
pub(crate) const MATCH_MESSAGE: &str = "must be all or any";
const SORT_FIELD_MESSAGE: &str = "must be createdAt or lastSeen";
const SORT_ORDER_MESSAGE: &str = "must be asc or desc";

mod evaluate;
mod grammar;
mod query;
#[cfg(test)]
mod tests;

pub use grammar::{FieldNameError, PROPERTY_FIELDS, parse_filters_json};
