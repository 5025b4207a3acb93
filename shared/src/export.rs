//! The CSV export (`POST /users/export`): its 17 fields and their headers, the
//! rules of its request body, and the writing of RFC 4180 rows.
//!
//! Everything here is pure, so the rules are unit-tested once; the store
//! (`store::export`) reads the users and the export function streams the
//! bytes these functions produce.
//!
//! Decisions where API.md is silent:
//! - An empty body (the reference's own `curl` example sends none) means `{}`:
//!   every user, newest first, all 17 fields. A `null` member means absent.
//! - `users` keeps the requested sort (default `createdAt desc`), not the order
//!   the ids were given in; unknown ids, ids of other accounts and repeated
//!   ids are skipped (each user is exported once). Malformed ids are `400`.
//! - `users` together with `filters` or `match` is `400` naming `users`.
//! - `fields` holds 1..16 distinct names, as the reference's `Field[1,16]`
//!   says; leaving it out exports all 17.
//! - `banned`, `conversations`, segments and custom attributes are not export
//!   fields (the reference's table has none of them).
//! - No match is still `200`: the header line alone.
//! - Rows end with CRLF (RFC 4180), cells are quoted only when they must be,
//!   dates are in the object format (`2019-01-23 13:32:30.163Z`), unset values
//!   are empty cells, and there is no byte-order mark (it would become part of
//!   the first header for every parser that is not a spreadsheet).
//! - The formula-injection guard prefixes `'` to any cell starting with `=`,
//!   `+`, `-`, `@`, tab or CR, whatever the field (phone numbers such as
//!   `+48…` included: the contract names the characters, not the fields).

use std::borrow::Cow;
use std::collections::HashSet;

use serde_json::Value;

use crate::error::{ApiError, FieldError, join_path};
use crate::filter::{FilterSet, MATCH_MESSAGE, Match, Sort, parse_filters_json};
use crate::model::{ID_SHAPE, ObjectId, User};
use crate::validate::{json_type_name, object_at};

/// Most fields a request may select (the reference's `Field[1,16]`).
pub const MAX_FIELDS: usize = 16;
/// Most user ids a request may list.
pub const MAX_EXPORT_USERS: usize = 1000;
/// The first characters that make a spreadsheet read a cell as a formula.
pub const FORMULA_TRIGGERS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// One column of the export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExportField {
    Name,
    Email,
    FirstSeen,
    LastSeen,
    Integration,
    Source,
    UserId,
    Avatar,
    Language,
    Timezone,
    Gender,
    Ip,
    City,
    Region,
    Country,
    Referrer,
    Username,
}

/// Where a field's value comes from.
enum Origin {
    Attribute(&'static str),
    UserId,
    CreatedAt,
    LastSeen,
}

impl ExportField {
    /// Every field, in the reference's table order (the default selection).
    pub const ALL: [ExportField; 17] = [
        Self::Name,
        Self::Email,
        Self::FirstSeen,
        Self::LastSeen,
        Self::Integration,
        Self::Source,
        Self::UserId,
        Self::Avatar,
        Self::Language,
        Self::Timezone,
        Self::Gender,
        Self::Ip,
        Self::City,
        Self::Region,
        Self::Country,
        Self::Referrer,
        Self::Username,
    ];

    /// The name a request uses for the field.
    pub fn name(self) -> &'static str {
        match self.origin() {
            Origin::Attribute(key) => key,
            Origin::UserId => "userId",
            Origin::CreatedAt => "createdAt",
            Origin::LastSeen => "lastSeen",
        }
    }

    /// The column header.
    pub fn header(self) -> &'static str {
        match self {
            Self::Name => "Name",
            Self::Email => "Email",
            Self::FirstSeen => "First Seen",
            Self::LastSeen => "Last Seen",
            Self::Integration => "Integration",
            Self::Source => "Source",
            Self::UserId => "User ID",
            Self::Avatar => "Avatar",
            Self::Language => "Language",
            Self::Timezone => "Timezone",
            Self::Gender => "Gender",
            Self::Ip => "IP",
            Self::City => "City",
            Self::Region => "Region",
            Self::Country => "Country",
            Self::Referrer => "Referrer",
            Self::Username => "Username",
        }
    }

    /// The field a request names `name` (case-sensitive, as the API spells it).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|field| field.name() == name)
    }

    fn origin(self) -> Origin {
        match self {
            Self::Name => Origin::Attribute("default_name"),
            Self::Email => Origin::Attribute("default_email"),
            Self::FirstSeen => Origin::CreatedAt,
            Self::LastSeen => Origin::LastSeen,
            Self::Integration => Origin::Attribute("default_source"),
            Self::Source => Origin::Attribute("default_url"),
            Self::UserId => Origin::UserId,
            Self::Avatar => Origin::Attribute("default_avatar"),
            Self::Language => Origin::Attribute("default_language"),
            Self::Timezone => Origin::Attribute("default_timezone"),
            Self::Gender => Origin::Attribute("default_gender"),
            Self::Ip => Origin::Attribute("default_ip"),
            Self::City => Origin::Attribute("default_city"),
            Self::Region => Origin::Attribute("default_region"),
            Self::Country => Origin::Attribute("default_country"),
            Self::Referrer => Origin::Attribute("default_referrer"),
            Self::Username => Origin::Attribute("default_username"),
        }
    }

    /// The user's value for this field, `None` when unset (before the guard).
    pub fn value(self, user: &User) -> Option<Cow<'_, str>> {
        match self.origin() {
            Origin::Attribute(key) => user.attributes.get(key).map(Cow::Borrowed),
            Origin::UserId => Some(Cow::Borrowed(&user.user_id)),
            Origin::CreatedAt => Some(Cow::Owned(user.created_at.object_format())),
            Origin::LastSeen => Some(Cow::Owned(user.last_seen.object_format())),
        }
    }
}

/// The cell as written: prefixed with `'` when a spreadsheet would otherwise
/// run it as a formula.
pub fn guard_cell(cell: &str) -> Cow<'_, str> {
    if cell.starts_with(FORMULA_TRIGGERS) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// Which users an export covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportScope {
    /// Every user matching the filters (none: every user of the account).
    Filters(FilterSet),
    /// The listed users that exist in the account, each once.
    Users(Vec<ObjectId>),
}

/// A parsed `POST /users/export` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRequest {
    pub sort: Sort,
    pub scope: ExportScope,
    /// The columns, in the requested order.
    pub fields: Vec<ExportField>,
}

impl Default for ExportRequest {
    fn default() -> Self {
        Self {
            sort: Sort::default(),
            scope: ExportScope::Filters(FilterSet::default()),
            fields: ExportField::ALL.to_vec(),
        }
    }
}

const BODY_KEYS: &str = "sort, match, filters, users, fields";

/// The members of `object` other than `null`.
fn member<'a>(object: &'a serde_json::Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.get(key).filter(|value| !value.is_null())
}

impl ExportRequest {
    /// Parses the body (`{}` for an empty one), naming every offending field
    /// by its dotted path (`filters.0.operator`, `users.3`, `fields.1`).
    pub fn parse(body: &Value) -> Result<ExportRequest, Vec<FieldError>> {
        let described = format!("a JSON object with any of {BODY_KEYS}");
        let object = object_at(body, "", &described).map_err(|error| vec![error])?;
        let mut errors = Vec::new();
        let mut request = ExportRequest::default();

        for key in object.keys() {
            if !matches!(
                key.as_str(),
                "sort" | "match" | "filters" | "users" | "fields"
            ) {
                errors.push(FieldError::new(
                    key,
                    format!("unknown field; accepted: {BODY_KEYS}"),
                ));
            }
        }
        if let Some(sort) = member(object, "sort") {
            match Sort::parse_json(sort, "sort") {
                Ok(sort) => request.sort = sort,
                Err(mut more) => errors.append(&mut more),
            }
        }
        request.scope = scope_of(object, &mut errors);
        if let Some(fields) = member(object, "fields") {
            match parse_fields(fields) {
                Ok(fields) => request.fields = fields,
                Err(mut more) => errors.append(&mut more),
            }
        }
        if errors.is_empty() {
            Ok(request)
        } else {
            Err(errors)
        }
    }
}

/// Whom an export covers: the listed `users`, or the users `filters` and
/// `match` pick (everyone by default).
fn scope_of(object: &serde_json::Map<String, Value>, errors: &mut Vec<FieldError>) -> ExportScope {
    let mut filters = FilterSet::default();
    if let Some(mode) = member(object, "match") {
        match mode.as_str().and_then(Match::parse) {
            Some(mode) => filters.match_mode = mode,
            None => errors.push(FieldError::new("match", MATCH_MESSAGE)),
        }
    }
    if let Some(list) = member(object, "filters") {
        match parse_filters_json(list, "filters") {
            Ok(list) => filters.filters = list,
            Err(mut more) => errors.append(&mut more),
        }
    }
    let Some(users) = member(object, "users") else {
        return ExportScope::Filters(filters);
    };
    if member(object, "filters").is_some() || member(object, "match").is_some() {
        errors.push(FieldError::new(
            "users",
            "not allowed together with filters or match",
        ));
    }
    match parse_users(users) {
        Ok(ids) => ExportScope::Users(ids),
        Err(mut more) => {
            errors.append(&mut more);
            ExportScope::Filters(filters)
        }
    }
}

/// 1..=[`MAX_EXPORT_USERS`] user ids; repeats are dropped, first one kept.
fn parse_users(value: &Value) -> Result<Vec<ObjectId>, Vec<FieldError>> {
    let Value::Array(items) = value else {
        return Err(vec![FieldError::new(
            "users",
            format!(
                "must be an array of 1 to {MAX_EXPORT_USERS} user ids, not {}",
                json_type_name(value)
            ),
        )]);
    };
    let mut errors = Vec::new();
    if items.is_empty() || items.len() > MAX_EXPORT_USERS {
        errors.push(FieldError::new(
            "users",
            format!(
                "must hold 1 to {MAX_EXPORT_USERS} user ids, not {}",
                items.len()
            ),
        ));
    }
    let mut seen = HashSet::with_capacity(items.len());
    let mut ids = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        match item.as_str().map(str::parse::<ObjectId>) {
            Some(Ok(id)) => {
                if seen.insert(id) {
                    ids.push(id);
                }
            }
            Some(Err(_)) => errors.push(FieldError::new(
                join_path("users", index),
                format!("must be a user id ({ID_SHAPE})"),
            )),
            None => errors.push(FieldError::new(
                join_path("users", index),
                format!("must be a user id string, not {}", json_type_name(item)),
            )),
        }
    }
    if errors.is_empty() {
        Ok(ids)
    } else {
        Err(errors)
    }
}

/// 1..=[`MAX_FIELDS`] distinct, known field names.
fn parse_fields(value: &Value) -> Result<Vec<ExportField>, Vec<FieldError>> {
    let names = ExportField::ALL.map(ExportField::name).join(", ");
    let Value::Array(items) = value else {
        return Err(vec![FieldError::new(
            "fields",
            format!(
                "must be an array of 1 to {MAX_FIELDS} field names, not {}",
                json_type_name(value)
            ),
        )]);
    };
    let mut errors = Vec::new();
    if items.is_empty() || items.len() > MAX_FIELDS {
        errors.push(FieldError::new(
            "fields",
            format!(
                "must hold 1 to {MAX_FIELDS} field names, not {} (leave fields out to export all {})",
                items.len(),
                ExportField::ALL.len()
            ),
        ));
    }
    let mut fields: Vec<ExportField> = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let path = join_path("fields", index);
        match item.as_str().map(|name| (name, ExportField::parse(name))) {
            Some((_, Some(field))) if fields.contains(&field) => {
                errors.push(FieldError::new(
                    path,
                    format!("{} is given more than once", field.name()),
                ));
            }
            Some((_, Some(field))) => fields.push(field),
            Some((_, None)) => errors.push(FieldError::new(
                path,
                format!("unknown field; use one of {names}"),
            )),
            None => errors.push(FieldError::new(
                path,
                format!("must be a field name string, not {}", json_type_name(item)),
            )),
        }
    }
    if errors.is_empty() {
        Ok(fields)
    } else {
        Err(errors)
    }
}

/// Writes the export's CSV: the header line, then one row per user, each call
/// returning its bytes so that they can be sent as a chunk of a stream.
#[derive(Debug, Clone)]
pub struct CsvRows {
    fields: Vec<ExportField>,
}

/// Room for one typical row, to size a chunk's buffer.
const TYPICAL_ROW_BYTES: usize = 256;

impl CsvRows {
    pub fn new(fields: Vec<ExportField>) -> Self {
        Self { fields }
    }

    pub fn fields(&self) -> &[ExportField] {
        &self.fields
    }

    fn writer(rows: usize) -> csv::Writer<Vec<u8>> {
        csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(Vec::with_capacity(rows.max(1) * TYPICAL_ROW_BYTES))
    }

    fn finish(writer: csv::Writer<Vec<u8>>) -> Result<Vec<u8>, ApiError> {
        writer
            .into_inner()
            .map_err(|e| ApiError::internal(format!("write CSV: {}", e.error())))
    }

    /// The header line.
    pub fn header(&self) -> Result<Vec<u8>, ApiError> {
        let mut writer = Self::writer(1);
        writer
            .write_record(self.fields.iter().map(|field| field.header()))
            .map_err(|e| ApiError::internal_from("write CSV header", e))?;
        Self::finish(writer)
    }

    /// One row per user, in order.
    pub fn rows(&self, users: &[User]) -> Result<Vec<u8>, ApiError> {
        let mut writer = Self::writer(users.len());
        let mut cells: Vec<Cow<'_, str>> = Vec::with_capacity(self.fields.len());
        for user in users {
            cells.clear();
            cells.extend(self.fields.iter().map(|field| match field.value(user) {
                Some(Cow::Borrowed(value)) => guard_cell(value),
                Some(Cow::Owned(value)) => Cow::Owned(guard_cell(&value).into_owned()),
                None => Cow::Borrowed(""),
            }));
            writer
                .write_record(cells.iter().map(|cell| cell.as_bytes()))
                .map_err(|e| ApiError::internal_from("write CSV row", e))?;
        }
        Self::finish(writer)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::filter::{FilterField, SortField, SortOrder};
    use crate::model::{Attributes, Timestamp, sample_user};

    const ID: &str = "5b7ff84cc7ca3fb33c9249a8";
    const OTHER: &str = "5c486eeebda7873576a379e4";

    fn error_fields(body: Value) -> Vec<String> {
        ExportRequest::parse(&body)
            .expect_err("refused")
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    fn text(bytes: Vec<u8>) -> String {
        String::from_utf8(bytes).expect("UTF-8")
    }

    #[test]
    fn the_seventeen_fields_in_the_reference_order() {
        let pairs: Vec<(&str, &str)> = ExportField::ALL
            .iter()
            .map(|f| (f.name(), f.header()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("default_name", "Name"),
                ("default_email", "Email"),
                ("createdAt", "First Seen"),
                ("lastSeen", "Last Seen"),
                ("default_source", "Integration"),
                ("default_url", "Source"),
                ("userId", "User ID"),
                ("default_avatar", "Avatar"),
                ("default_language", "Language"),
                ("default_timezone", "Timezone"),
                ("default_gender", "Gender"),
                ("default_ip", "IP"),
                ("default_city", "City"),
                ("default_region", "Region"),
                ("default_country", "Country"),
                ("default_referrer", "Referrer"),
                ("default_username", "Username"),
            ]
        );
        for field in ExportField::ALL {
            assert_eq!(ExportField::parse(field.name()), Some(field));
        }
        assert_eq!(ExportField::parse("banned"), None);
        assert_eq!(ExportField::parse("Name"), None);
        assert_eq!(ExportField::parse("default_Name"), None);
    }

    #[test]
    fn an_empty_body_exports_everyone_newest_first_with_all_fields() {
        let request = ExportRequest::parse(&json!({})).unwrap();
        assert_eq!(request, ExportRequest::default());
        assert_eq!(request.fields.len(), 17);
        assert_eq!(
            request.sort,
            Sort {
                field: SortField::CreatedAt,
                order: SortOrder::Desc
            }
        );
        assert_eq!(request.scope, ExportScope::Filters(FilterSet::default()));
        let nulls =
            json!({"sort": null, "match": null, "filters": null, "users": null, "fields": null});
        assert_eq!(
            ExportRequest::parse(&nulls).unwrap(),
            ExportRequest::default()
        );
    }

    #[test]
    fn parses_every_member() {
        let request = ExportRequest::parse(&json!({
            "sort": {"field": "lastSeen", "order": "asc"},
            "match": "any",
            "filters": [{"field": "default_country", "operator": "eq", "value": "PL"}, {"field": "banned", "operator": "eq", "value": false}],
            "fields": ["userId", "default_email", "createdAt"]
        }))
        .unwrap();
        assert_eq!(
            request.sort,
            Sort {
                field: SortField::LastSeen,
                order: SortOrder::Asc
            }
        );
        let ExportScope::Filters(filters) = &request.scope else {
            panic!("filters")
        };
        assert_eq!(filters.match_mode, Match::Any);
        assert_eq!(filters.filters.len(), 2);
        assert_eq!(
            filters.filters[0].field,
            FilterField::Attribute("default_country".into())
        );
        assert_eq!(
            request.fields,
            [
                ExportField::UserId,
                ExportField::Email,
                ExportField::FirstSeen
            ]
        );

        let request =
            ExportRequest::parse(&json!({"users": [ID, OTHER, ID], "sort": {"order": "asc"}}))
                .unwrap();
        assert_eq!(
            request.scope,
            ExportScope::Users(vec![ID.parse().unwrap(), OTHER.parse().unwrap()])
        );
        assert_eq!(request.sort.order, SortOrder::Asc);
    }

    #[test]
    fn users_with_filters_or_match_is_refused() {
        assert_eq!(
            error_fields(json!({"users": [ID], "match": "all"})),
            ["users"]
        );
        assert_eq!(
            error_fields(json!({"users": [ID], "filters": [{"field": "a", "operator": "exists"}]})),
            ["users"]
        );
        assert_eq!(
            error_fields(json!({"users": [ID], "filters": [], "match": "x"})),
            ["match", "filters", "users"]
        );
        // With sort and fields it is fine.
        assert!(
            ExportRequest::parse(&json!({"users": [ID], "sort": {}, "fields": ["userId"]})).is_ok()
        );
    }

    #[test]
    fn user_ids_are_checked_one_by_one() {
        assert_eq!(error_fields(json!({"users": []})), ["users"]);
        assert_eq!(error_fields(json!({"users": ID})), ["users"]);
        assert_eq!(
            error_fields(json!({"users": [ID, "xyz", 5, ID.to_uppercase()]})),
            ["users.1", "users.2", "users.3"]
        );
        let thousand: Vec<String> = (0..1000).map(|_| ObjectId::new().to_string()).collect();
        assert!(ExportRequest::parse(&json!({"users": thousand})).is_ok());
        let too_many: Vec<String> = (0..1001).map(|_| ObjectId::new().to_string()).collect();
        assert_eq!(error_fields(json!({"users": too_many})), ["users"]);
    }

    #[test]
    fn fields_are_one_to_sixteen_distinct_known_names() {
        assert_eq!(error_fields(json!({"fields": []})), ["fields"]);
        assert_eq!(error_fields(json!({"fields": "userId"})), ["fields"]);
        let all: Vec<&str> = ExportField::ALL.iter().map(|f| f.name()).collect();
        assert_eq!(error_fields(json!({"fields": all})), ["fields"]);
        let sixteen = &all[1..];
        let request = ExportRequest::parse(&json!({"fields": sixteen})).unwrap();
        assert_eq!(request.fields, ExportField::ALL[1..]);
        assert_eq!(
            error_fields(json!({"fields": ["userId", "banned", "userId", 3, "Name"]})),
            ["fields.1", "fields.2", "fields.3", "fields.4"]
        );
    }

    #[test]
    fn bad_members_are_named_by_path() {
        assert_eq!(error_fields(json!([])), ["body"]);
        let mut unknown = error_fields(json!({"limit": 5, "after": ID}));
        unknown.sort();
        assert_eq!(unknown, ["after", "limit"]);
        assert_eq!(error_fields(json!({"sort": "createdAt"})), ["sort"]);
        assert_eq!(
            error_fields(json!({"sort": {"field": "name", "order": "up", "x": 1}})),
            ["sort.field", "sort.order", "sort.x"]
        );
        assert_eq!(error_fields(json!({"match": "some"})), ["match"]);
        assert_eq!(error_fields(json!({"match": true})), ["match"]);
        assert_eq!(
            error_fields(
                json!({"filters": [{"field": "banned", "operator": "gt", "value": true}]})
            ),
            ["filters.0.operator"]
        );
        let six = vec![json!({"field": "a", "operator": "exists"}); 6];
        assert_eq!(error_fields(json!({"filters": six})), ["filters"]);
        assert_eq!(error_fields(json!({"filters": []})), ["filters"]);
    }

    #[test]
    fn the_guard_prefixes_formula_triggers_only_at_the_start() {
        for (cell, expected) in [
            ("=SUM(A1:A2)", "'=SUM(A1:A2)"),
            ("+48 123 456", "'+48 123 456"),
            ("-1", "'-1"),
            ("@cmd", "'@cmd"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("a=b", "a=b"),
            ("Joe", "Joe"),
            ("", ""),
            ("'=x", "'=x"),
            (" =x", " =x"),
        ] {
            assert_eq!(guard_cell(cell), expected, "{cell:?}");
        }
    }

    fn user_with(attributes: &[(&str, &str)]) -> User {
        let mut user = sample_user();
        user.attributes = Attributes(
            attributes
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
        );
        user
    }

    #[test]
    fn header_and_rows_in_the_requested_order_with_empty_unset_cells() {
        let all = CsvRows::new(ExportField::ALL.to_vec());
        assert_eq!(
            text(all.header().unwrap()),
            "Name,Email,First Seen,Last Seen,Integration,Source,User ID,Avatar,Language,Timezone,Gender,IP,City,Region,Country,Referrer,Username\r\n"
        );
        let mut user = user_with(&[
            ("default_name", "Joe"),
            ("default_country", "PL"),
            ("default_source", "messenger"),
            ("plan", "pro"),
        ]);
        user.last_seen = Timestamp::from_millis(1_548_250_350_164);
        assert_eq!(
            text(all.rows(std::slice::from_ref(&user)).unwrap()),
            "Joe,,2019-01-23 13:32:30.163Z,2019-01-23 13:32:30.164Z,messenger,,0735887f-6aaa-47cc-908e-6c84d093f317,,,,,,,,PL,,\r\n"
        );
        let some = CsvRows::new(vec![
            ExportField::Country,
            ExportField::UserId,
            ExportField::Name,
        ]);
        assert_eq!(text(some.header().unwrap()), "Country,User ID,Name\r\n");
        let other = user_with(&[]);
        assert_eq!(
            text(some.rows(&[user, other]).unwrap()),
            "PL,0735887f-6aaa-47cc-908e-6c84d093f317,Joe\r\n,0735887f-6aaa-47cc-908e-6c84d093f317,\r\n"
        );
        assert_eq!(text(some.rows(&[]).unwrap()), "");
    }

    #[test]
    fn rows_are_rfc_4180_and_guarded() {
        let rows = CsvRows::new(vec![
            ExportField::Name,
            ExportField::City,
            ExportField::Email,
            ExportField::Referrer,
        ]);
        let user = user_with(&[
            ("default_name", "Doe, \"Joe\""),
            ("default_city", "line\r\nbreak"),
            ("default_email", "=HYPERLINK(\"http://x\")"),
            ("default_referrer", "Zażółć"),
        ]);
        let out = text(rows.rows(&[user]).unwrap());
        assert_eq!(
            out,
            "\"Doe, \"\"Joe\"\"\",\"line\r\nbreak\",\"'=HYPERLINK(\"\"http://x\"\")\",Zażółć\r\n"
        );
        // A lone empty cell is quoted, so the row is not an empty line.
        let one = CsvRows::new(vec![ExportField::Name]);
        assert_eq!(text(one.rows(&[user_with(&[])]).unwrap()), "\"\"\r\n");
        // The user id is guarded too.
        let mut user = user_with(&[]);
        user.user_id = "@evil".into();
        assert_eq!(
            text(
                CsvRows::new(vec![ExportField::UserId])
                    .rows(&[user])
                    .unwrap()
            ),
            "'@evil\r\n"
        );
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(out.as_bytes());
        let record = reader.records().next().unwrap().unwrap();
        assert_eq!(&record[0], "Doe, \"Joe\"");
        assert_eq!(&record[1], "line\r\nbreak");
        assert_eq!(&record[3], "Zażółć");
    }
}
