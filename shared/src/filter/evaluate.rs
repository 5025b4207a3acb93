//! The reference evaluator: whether a user matches a filter, or a filter set
//! under its match mode. Lists and exports decide with it alone.

use super::*;

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
