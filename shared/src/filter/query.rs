//! The query of `GET /users`, in both forms: `filters` as a URL-encoded JSON
//! array, or in bracket form (`filters[0][field]=…`), with `sort.field` or
//! `sort[field]`, `match`, `limit` and `after`.

use super::*;

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
        let mut given = GivenQuery::default();
        let mut seen: Vec<String> = Vec::new();
        for (name, value) in form_urlencoded::parse(raw_query.unwrap_or("").as_bytes()) {
            let Some(param) = Param::parse(&name) else {
                given
                    .errors
                    .push(FieldError::new(name.as_ref(), UNKNOWN_PARAMETER));
                continue;
            };
            let canonical = param.canonical(&name);
            if seen.contains(&canonical) {
                given
                    .errors
                    .push(FieldError::new(&canonical, "given more than once"));
                continue;
            }
            seen.push(canonical);
            given.take(param, value.into_owned());
        }
        given.finish()
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
        let objects = parts.into_iter().map(|(index, mut object)| {
            // `filters[0][value]=` with exists/notExists means "no value".
            let takes_no_value = object
                .get("operator")
                .and_then(Value::as_str)
                .and_then(Operator::parse)
                .is_some_and(|op| !op.takes_value());
            if takes_no_value && object.get("value").and_then(Value::as_str) == Some("") {
                object.remove("value");
            }
            (index, Value::Object(object))
        });
        super::grammar::filters_of(objects, "filters", errors)
    }
}

/// The parameters of a `GET /users` query as they come, one at a time:
/// the scalar ones parsed at once, the filters gathered (JSON or bracket
/// form) and parsed at the end, every refusal kept.
#[derive(Default)]
struct GivenQuery {
    query: ListQuery,
    json_filters: Option<String>,
    bracket: BTreeMap<usize, Map<String, Value>>,
    out_of_range: bool,
    errors: Vec<FieldError>,
}

impl GivenQuery {
    fn take(&mut self, param: Param, value: String) {
        let refused = |name: &str, message: String| FieldError::new(name, message);
        match param {
            Param::Limit => match value.parse::<u32>() {
                Ok(limit)
                    if value.bytes().all(|b| b.is_ascii_digit())
                        && (1..=MAX_LIMIT).contains(&limit) =>
                {
                    self.query.limit = limit
                }
                _ => self.errors.push(refused(
                    "limit",
                    format!("must be an integer from 1 to {MAX_LIMIT}"),
                )),
            },
            Param::After => match value.parse::<ObjectId>() {
                Ok(id) => self.query.after = Some(id),
                Err(_) => self
                    .errors
                    .push(refused("after", format!("must be a user id ({ID_SHAPE})"))),
            },
            Param::SortField => match SortField::parse(&value) {
                Some(field) => self.query.sort.field = field,
                None => self
                    .errors
                    .push(refused("sort.field", SORT_FIELD_MESSAGE.into())),
            },
            Param::SortOrder => match SortOrder::parse(&value) {
                Some(order) => self.query.sort.order = order,
                None => self
                    .errors
                    .push(refused("sort.order", SORT_ORDER_MESSAGE.into())),
            },
            Param::Match => match Match::parse(&value) {
                Some(mode) => self.query.filters.match_mode = mode,
                None => self.errors.push(refused("match", MATCH_MESSAGE.into())),
            },
            Param::FiltersJson => self.json_filters = Some(value),
            Param::FilterPart { index, key } => {
                self.bracket
                    .entry(index)
                    .or_default()
                    .insert(key, Value::String(value));
            }
            Param::FilterOutOfRange => self.out_of_range = true,
        }
    }

    /// The query, with its filters from whichever form was given (not both).
    fn finish(mut self) -> Result<ListQuery, ApiError> {
        let bracket_given = !self.bracket.is_empty() || self.out_of_range;
        let filters = match self.json_filters.take() {
            Some(_) if bracket_given => Err(vec![FieldError::new(
                "filters",
                "give filters either as a JSON array or in bracket form, not both",
            )]),
            Some(text) => match serde_json::from_str::<Value>(&text) {
                Ok(value) => parse_filters_json(&value, "filters"),
                Err(_) => Err(vec![FieldError::new(
                    "filters",
                    format!(
                        "must be a JSON array of 1 to {MAX_FILTERS} filter objects, or use the bracket form filters[0][field]"
                    ),
                )]),
            },
            None if bracket_given => {
                ListQuery::bracket_filters(std::mem::take(&mut self.bracket), self.out_of_range)
            }
            None => Ok(Vec::new()),
        };
        match filters {
            Ok(filters) => self.query.filters.filters = filters,
            Err(mut more) => self.errors.append(&mut more),
        }
        if self.errors.is_empty() {
            Ok(self.query)
        } else {
            Err(ApiError::validation(self.errors))
        }
    }
}
