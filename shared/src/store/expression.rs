//! Translates a [`FilterSet`] into a DynamoDB `FilterExpression` over the
//! stored profile item. Pure text building, no AWS types: the store turns
//! [`Expression::names`] and [`Expression::values`] into
//! `ExpressionAttributeNames` / `ExpressionAttributeValues`.
//!
//! The profile item holds `attrs` (a map of set attribute keys to strings),
//! `userId` (S), `banned` (BOOL), `convs` (N), `createdAt` and `lastSeen`
//! (N, epoch millis) and `segs` (a string set of segment ids, absent when the
//! user is in no segment).
//!
//! The expression selects exactly the users [`FilterSet::matches`] selects,
//! missing attributes included: negative operators (`ne`, `notContains`)
//! also hold when the attribute is absent. Every attribute name and value goes
//! through a placeholder (attribute keys may be reserved words or hold `-` and
//! `.`), and every placeholder starts with `f` (`#fa`, `#fk0`, `:fv0`) so that
//! it cannot collide with the store's own.

use std::collections::BTreeMap;

use crate::filter::{Filter, FilterField, FilterSet, FilterValue, Match, Operator};

/// A filter expression with the placeholders it uses (and only those).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expression {
    /// One parenthesised term, safe to combine with `AND` as it is.
    pub text: String,
    /// Name placeholder (`#fa`) -> attribute name (`attrs`).
    pub names: BTreeMap<String, String>,
    /// Value placeholder (`:fv0`) -> value.
    pub values: BTreeMap<String, ExprValue>,
}

/// A DynamoDB scalar value an expression compares with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExprValue {
    S(String),
    N(i64),
    Bool(bool),
}

/// The stored attribute names a filter looks at.
mod stored {
    pub const ATTRS: &str = "attrs";
    pub const USER_ID: &str = "userId";
    pub const BANNED: &str = "banned";
    pub const CONVERSATIONS: &str = "convs";
    pub const CREATED_AT: &str = "createdAt";
    pub const LAST_SEEN: &str = "lastSeen";
    pub const SEGMENTS: &str = "segs";
}

/// The translation of `filters`, or `None` when there are none (every user matches).
pub fn filter_expression(filters: &FilterSet) -> Option<Expression> {
    if filters.filters.is_empty() {
        return None;
    }
    let mut builder = Builder::default();
    let terms: Vec<String> = filters
        .filters
        .iter()
        .map(|filter| format!("({})", builder.term(filter)))
        .collect();
    let joiner = match filters.match_mode {
        Match::All => " AND ",
        Match::Any => " OR ",
    };
    let text = if terms.len() == 1 {
        terms.into_iter().next().unwrap_or_default()
    } else {
        format!("({})", terms.join(joiner))
    };
    Some(Expression {
        text,
        names: builder.names,
        values: builder.values,
    })
}

#[derive(Default)]
struct Builder {
    names: BTreeMap<String, String>,
    values: BTreeMap<String, ExprValue>,
    /// Attribute key -> its `#fkN` placeholder, so a key repeated across filters shares one.
    keys: BTreeMap<String, String>,
}

impl Builder {
    fn name(&mut self, placeholder: &str, name: &str) -> String {
        self.names.insert(placeholder.to_owned(), name.to_owned());
        placeholder.to_owned()
    }

    /// `#fa.#fkN` for an attribute key.
    fn attribute_path(&mut self, key: &str) -> String {
        let attrs = self.name("#fa", stored::ATTRS);
        let next = self.keys.len();
        let placeholder = self
            .keys
            .entry(key.to_owned())
            .or_insert_with(|| format!("#fk{next}"))
            .clone();
        self.names.insert(placeholder.clone(), key.to_owned());
        format!("{attrs}.{placeholder}")
    }

    fn value(&mut self, value: ExprValue) -> String {
        let placeholder = format!(":fv{}", self.values.len());
        self.values.insert(placeholder.clone(), value);
        placeholder
    }

    /// A condition no item satisfies, for filters whose operator or value does
    /// not fit the field (which [`Filter::matches`] rejects for everyone).
    fn never(&mut self) -> String {
        let user_id = self.name("#fu", stored::USER_ID);
        format!("attribute_exists({user_id}) AND attribute_not_exists({user_id})")
    }

    fn term(&mut self, filter: &Filter) -> String {
        let op = filter.operator;
        match (&filter.field, &filter.value) {
            (FilterField::Attribute(_) | FilterField::UserId, value) if !fits_text(op, value) => {
                self.never()
            }
            (FilterField::Attribute(key), value) => {
                let path = self.attribute_path(key);
                self.text_term(path, op, value)
            }
            (FilterField::UserId, value) => {
                let path = self.name("#fu", stored::USER_ID);
                self.text_term(path, op, value)
            }
            (FilterField::Banned, FilterValue::Bool(b))
                if matches!(op, Operator::Eq | Operator::Ne) =>
            {
                let path = self.name("#fb", stored::BANNED);
                let v = self.value(ExprValue::Bool(*b));
                compare(&path, op, &v)
            }
            (FilterField::Segments, value) => match (op, value) {
                (Operator::Eq, FilterValue::Segment(id)) => {
                    let path = self.name("#fs", stored::SEGMENTS);
                    let v = self.value(ExprValue::S(id.to_string()));
                    format!("contains({path}, {v})")
                }
                (Operator::Ne, FilterValue::Segment(id)) => {
                    let path = self.name("#fs", stored::SEGMENTS);
                    let v = self.value(ExprValue::S(id.to_string()));
                    format!("attribute_not_exists({path}) OR NOT contains({path}, {v})")
                }
                (Operator::Exists, _) => {
                    let path = self.name("#fs", stored::SEGMENTS);
                    format!("attribute_exists({path})")
                }
                (Operator::NotExists, _) => {
                    let path = self.name("#fs", stored::SEGMENTS);
                    format!("attribute_not_exists({path})")
                }
                _ => self.never(),
            },
            (FilterField::CreatedAt, FilterValue::Date(t)) if is_ordering(op) => {
                let path = self.name("#fc", stored::CREATED_AT);
                let v = self.value(ExprValue::N(t.millis()));
                compare(&path, op, &v)
            }
            (FilterField::LastSeen, FilterValue::Date(t)) if is_ordering(op) => {
                let path = self.name("#fl", stored::LAST_SEEN);
                let v = self.value(ExprValue::N(t.millis()));
                compare(&path, op, &v)
            }
            (FilterField::Conversations, FilterValue::Number(n)) if is_ordering(op) => {
                let path = self.name("#fn", stored::CONVERSATIONS);
                let v = self.value(ExprValue::N(i64::try_from(*n).unwrap_or(i64::MAX)));
                compare(&path, op, &v)
            }
            _ => self.never(),
        }
    }

    /// A string attribute at `path` (possibly absent) against a text operator.
    fn text_term(&mut self, path: String, op: Operator, value: &FilterValue) -> String {
        match (op, value) {
            (Operator::Exists, _) => format!("attribute_exists({path})"),
            (Operator::NotExists, _) => format!("attribute_not_exists({path})"),
            (Operator::Eq | Operator::Ne, FilterValue::Text(text)) => {
                let v = self.value(ExprValue::S(text.clone()));
                compare(&path, op, &v)
            }
            (Operator::Contains, FilterValue::Text(text)) => {
                let v = self.value(ExprValue::S(text.clone()));
                format!("contains({path}, {v})")
            }
            (Operator::NotContains, FilterValue::Text(text)) => {
                let v = self.value(ExprValue::S(text.clone()));
                format!("attribute_not_exists({path}) OR NOT contains({path}, {v})")
            }
            (Operator::StartsWith, FilterValue::Text(text)) => {
                let v = self.value(ExprValue::S(text.clone()));
                format!("begins_with({path}, {v})")
            }
            _ => self.never(),
        }
    }
}

/// Whether a text operator and value go together (else the filter selects nobody).
fn fits_text(op: Operator, value: &FilterValue) -> bool {
    match op {
        Operator::Exists | Operator::NotExists => true,
        Operator::Eq
        | Operator::Ne
        | Operator::Contains
        | Operator::NotContains
        | Operator::StartsWith => matches!(value, FilterValue::Text(_)),
        _ => false,
    }
}

fn is_ordering(op: Operator) -> bool {
    matches!(
        op,
        Operator::Eq | Operator::Ne | Operator::Gt | Operator::Gte | Operator::Lt | Operator::Lte
    )
}

/// `path <op> v`; `ne` also holds when the attribute is absent. `op` is one of
/// eq, ne, gt, gte, lt, lte.
fn compare(path: &str, op: Operator, v: &str) -> String {
    let symbol = match op {
        Operator::Ne => return format!("attribute_not_exists({path}) OR {path} <> {v}"),
        Operator::Gt => ">",
        Operator::Gte => ">=",
        Operator::Lt => "<",
        Operator::Lte => "<=",
        _ => "=",
    };
    format!("{path} {symbol} {v}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Timestamp;

    const SEG: &str = "5c486eeebda7873576a379e4";

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

    fn text(s: &str) -> FilterValue {
        FilterValue::Text(s.to_owned())
    }

    fn all(filters: Vec<Filter>) -> FilterSet {
        FilterSet {
            match_mode: Match::All,
            filters,
        }
    }

    fn any(filters: Vec<Filter>) -> FilterSet {
        FilterSet {
            match_mode: Match::Any,
            filters,
        }
    }

    fn names(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn values(pairs: Vec<(&str, ExprValue)>) -> BTreeMap<String, ExprValue> {
        pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    fn single(f: Filter) -> Expression {
        filter_expression(&all(vec![f])).unwrap()
    }

    /// Every placeholder the text uses is defined, and every defined one is used
    /// (DynamoDB refuses unused placeholders); all start with `#f` / `:f`.
    fn assert_consistent(e: &Expression) {
        for name in e.names.keys() {
            assert!(name.starts_with("#f"), "{name}");
            assert!(
                e.text.contains(name.as_str()),
                "{name} unused in {}",
                e.text
            );
        }
        for value in e.values.keys() {
            assert!(value.starts_with(":f"), "{value}");
            assert!(
                e.text.contains(value.as_str()),
                "{value} unused in {}",
                e.text
            );
        }
        for token in e
            .text
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '#' || c == ':'))
        {
            if token.starts_with('#') {
                assert!(e.names.contains_key(token), "{token} undefined");
            } else if token.starts_with(':') {
                assert!(e.values.contains_key(token), "{token} undefined");
            }
        }
        assert_eq!(
            e.text.matches('(').count(),
            e.text.matches(')').count(),
            "{}",
            e.text
        );
    }

    #[test]
    fn no_filters_no_expression() {
        assert_eq!(filter_expression(&FilterSet::default()), None);
        assert_eq!(filter_expression(&any(vec![])), None);
    }

    #[test]
    fn attribute_eq() {
        let e = single(filter(attr("default_country"), Operator::Eq, text("PL")));
        assert_eq!(e.text, "(#fa.#fk0 = :fv0)");
        assert_eq!(
            e.names,
            names(&[("#fa", "attrs"), ("#fk0", "default_country")])
        );
        assert_eq!(e.values, values(vec![(":fv0", ExprValue::S("PL".into()))]));
        assert_consistent(&e);
    }

    #[test]
    fn attribute_text_operators() {
        let cases = [
            (
                Operator::Ne,
                "(attribute_not_exists(#fa.#fk0) OR #fa.#fk0 <> :fv0)",
            ),
            (Operator::Contains, "(contains(#fa.#fk0, :fv0))"),
            (
                Operator::NotContains,
                "(attribute_not_exists(#fa.#fk0) OR NOT contains(#fa.#fk0, :fv0))",
            ),
            (Operator::StartsWith, "(begins_with(#fa.#fk0, :fv0))"),
        ];
        for (op, expected) in cases {
            let e = single(filter(attr("plan"), op, text("pro")));
            assert_eq!(e.text, expected, "{op}");
            assert_eq!(e.names, names(&[("#fa", "attrs"), ("#fk0", "plan")]));
            assert_eq!(e.values, values(vec![(":fv0", ExprValue::S("pro".into()))]));
            assert_consistent(&e);
        }
        let e = single(filter(attr("plan"), Operator::Exists, FilterValue::None));
        assert_eq!(e.text, "(attribute_exists(#fa.#fk0))");
        assert!(e.values.is_empty());
        let e = single(filter(attr("plan"), Operator::NotExists, FilterValue::None));
        assert_eq!(e.text, "(attribute_not_exists(#fa.#fk0))");
        assert_consistent(&e);
    }

    #[test]
    fn reserved_and_dotted_keys_only_appear_as_values_of_names() {
        let e = filter_expression(&all(vec![
            filter(attr("group.selected-x"), Operator::Eq, text("a")),
            filter(attr("size"), Operator::Eq, text("b")),
            filter(attr("group.selected-x"), Operator::Ne, text("c")),
        ]))
        .unwrap();
        assert_eq!(
            e.text,
            "((#fa.#fk0 = :fv0) AND (#fa.#fk1 = :fv1) AND (attribute_not_exists(#fa.#fk0) OR #fa.#fk0 <> :fv2))"
        );
        assert_eq!(
            e.names,
            names(&[
                ("#fa", "attrs"),
                ("#fk0", "group.selected-x"),
                ("#fk1", "size")
            ])
        );
        assert!(!e.text.contains("size") && !e.text.contains("group"));
        assert_consistent(&e);
    }

    #[test]
    fn user_id_and_banned() {
        let e = single(filter(
            FilterField::UserId,
            Operator::StartsWith,
            text("07"),
        ));
        assert_eq!(e.text, "(begins_with(#fu, :fv0))");
        assert_eq!(e.names, names(&[("#fu", "userId")]));
        let e = single(filter(
            FilterField::UserId,
            Operator::NotContains,
            text("x"),
        ));
        assert_eq!(
            e.text,
            "(attribute_not_exists(#fu) OR NOT contains(#fu, :fv0))"
        );
        let e = single(filter(
            FilterField::Banned,
            Operator::Eq,
            FilterValue::Bool(true),
        ));
        assert_eq!(e.text, "(#fb = :fv0)");
        assert_eq!(e.names, names(&[("#fb", "banned")]));
        assert_eq!(e.values, values(vec![(":fv0", ExprValue::Bool(true))]));
        let e = single(filter(
            FilterField::Banned,
            Operator::Ne,
            FilterValue::Bool(false),
        ));
        assert_eq!(e.text, "(attribute_not_exists(#fb) OR #fb <> :fv0)");
        assert_eq!(e.values, values(vec![(":fv0", ExprValue::Bool(false))]));
        assert_consistent(&e);
    }

    #[test]
    fn segments() {
        let seg = FilterValue::Segment(SEG.parse().unwrap());
        let e = single(filter(FilterField::Segments, Operator::Eq, seg.clone()));
        assert_eq!(e.text, "(contains(#fs, :fv0))");
        assert_eq!(e.names, names(&[("#fs", "segs")]));
        assert_eq!(e.values, values(vec![(":fv0", ExprValue::S(SEG.into()))]));
        let e = single(filter(FilterField::Segments, Operator::Ne, seg));
        assert_eq!(
            e.text,
            "(attribute_not_exists(#fs) OR NOT contains(#fs, :fv0))"
        );
        assert_consistent(&e);
        let e = single(filter(
            FilterField::Segments,
            Operator::Exists,
            FilterValue::None,
        ));
        assert_eq!(e.text, "(attribute_exists(#fs))");
        assert!(e.values.is_empty());
        let e = single(filter(
            FilterField::Segments,
            Operator::NotExists,
            FilterValue::None,
        ));
        assert_eq!(e.text, "(attribute_not_exists(#fs))");
        assert_consistent(&e);
    }

    #[test]
    fn dates_and_conversations() {
        let t = Timestamp::from_millis(1_548_250_350_163);
        let cases = [
            (Operator::Eq, "#fc = :fv0"),
            (Operator::Ne, "attribute_not_exists(#fc) OR #fc <> :fv0"),
            (Operator::Gt, "#fc > :fv0"),
            (Operator::Gte, "#fc >= :fv0"),
            (Operator::Lt, "#fc < :fv0"),
            (Operator::Lte, "#fc <= :fv0"),
        ];
        for (op, expected) in cases {
            let e = single(filter(FilterField::CreatedAt, op, FilterValue::Date(t)));
            assert_eq!(e.text, format!("({expected})"));
            assert_eq!(e.names, names(&[("#fc", "createdAt")]));
            assert_eq!(
                e.values,
                values(vec![(":fv0", ExprValue::N(1_548_250_350_163))])
            );
            assert_consistent(&e);
        }
        let e = single(filter(
            FilterField::LastSeen,
            Operator::Lt,
            FilterValue::Date(t),
        ));
        assert_eq!(e.text, "(#fl < :fv0)");
        assert_eq!(e.names, names(&[("#fl", "lastSeen")]));
        let e = single(filter(
            FilterField::Conversations,
            Operator::Gte,
            FilterValue::Number(3),
        ));
        assert_eq!(e.text, "(#fn >= :fv0)");
        assert_eq!(e.names, names(&[("#fn", "convs")]));
        assert_eq!(e.values, values(vec![(":fv0", ExprValue::N(3))]));
        assert_consistent(&e);
    }

    #[test]
    fn any_mode_mixing_fields() {
        let e = filter_expression(&any(vec![
            filter(attr("default_country"), Operator::Eq, text("PL")),
            filter(
                FilterField::Segments,
                Operator::NotExists,
                FilterValue::None,
            ),
            filter(
                FilterField::Conversations,
                Operator::Ne,
                FilterValue::Number(0),
            ),
            filter(
                attr("default_email"),
                Operator::NotContains,
                text("@example.com"),
            ),
            filter(FilterField::Banned, Operator::Eq, FilterValue::Bool(false)),
        ]))
        .unwrap();
        assert_eq!(
            e.text,
            "((#fa.#fk0 = :fv0) OR (attribute_not_exists(#fs)) OR \
             (attribute_not_exists(#fn) OR #fn <> :fv1) OR \
             (attribute_not_exists(#fa.#fk1) OR NOT contains(#fa.#fk1, :fv2)) OR (#fb = :fv3))"
        );
        assert_eq!(
            e.names,
            names(&[
                ("#fa", "attrs"),
                ("#fb", "banned"),
                ("#fk0", "default_country"),
                ("#fk1", "default_email"),
                ("#fn", "convs"),
                ("#fs", "segs"),
            ])
        );
        assert_eq!(
            e.values,
            values(vec![
                (":fv0", ExprValue::S("PL".into())),
                (":fv1", ExprValue::N(0)),
                (":fv2", ExprValue::S("@example.com".into())),
                (":fv3", ExprValue::Bool(false)),
            ])
        );
        assert_consistent(&e);
    }

    #[test]
    fn all_mode_with_parsed_query() {
        let query = crate::filter::ListQuery::parse(Some(
            "filters[0][field]=createdAt&filters[0][operator]=gte&filters[0][value]=2019-01-01\
             &filters[1][field]=lastSeen&filters[1][operator]=lt&filters[1][value]=2019-02-01\
             &filters[2][field]=userId&filters[2][operator]=ne&filters[2][value]=abc",
        ))
        .unwrap();
        let e = filter_expression(&query.filters).unwrap();
        assert_eq!(
            e.text,
            "((#fc >= :fv0) AND (#fl < :fv1) AND (attribute_not_exists(#fu) OR #fu <> :fv2))"
        );
        assert_eq!(
            e.values,
            values(vec![
                (":fv0", ExprValue::N(1_546_300_800_000)),
                (":fv1", ExprValue::N(1_548_979_200_000)),
                (":fv2", ExprValue::S("abc".into())),
            ])
        );
        assert_consistent(&e);
    }

    #[test]
    fn ill_typed_filters_select_nobody() {
        for f in [
            filter(FilterField::Banned, Operator::Gt, FilterValue::Bool(true)),
            filter(FilterField::Conversations, Operator::Eq, text("1")),
            filter(attr("plan"), Operator::Gt, text("a")),
            filter(FilterField::Segments, Operator::Eq, FilterValue::None),
        ] {
            let e = single(f);
            assert_eq!(
                e.text,
                "(attribute_exists(#fu) AND attribute_not_exists(#fu))"
            );
            assert_eq!(e.names, names(&[("#fu", "userId")]));
            assert!(e.values.is_empty());
            assert_consistent(&e);
        }
        let e = filter_expression(&any(vec![
            filter(attr("plan"), Operator::Lt, text("a")),
            filter(attr("plan"), Operator::Eq, text("a")),
        ]))
        .unwrap();
        assert_eq!(
            e.text,
            "((attribute_exists(#fu) AND attribute_not_exists(#fu)) OR (#fa.#fk0 = :fv0))"
        );
        assert_consistent(&e);
    }
}
