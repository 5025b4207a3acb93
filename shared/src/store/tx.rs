//! Conditional writes, and the one loop that retries them.
//!
//! Every multi-item change (a user and its `userId` claim, a membership and
//! its segment's counter) is one `TransactWriteItems`, so it happens whole or
//! not at all; every write that depends on what was read carries a condition.
//! How such a write ends is read from DynamoDB's own answer ([`Outcome`]):
//! the transaction's `CancellationReasons`, or the error's code for a single
//! item. A failed condition means "the world moved": the caller re-reads and
//! decides (`404`, `409`, `400`, or another try). A conflict with another
//! transaction or throttling means "not now": the same write is tried again.
//! A write DynamoDB refuses as invalid can never pass and is answered at once.
//! [`Store::until_decided`] runs those attempts within a bounded budget, and
//! never past the request's deadline; then it answers `503` (with
//! `Retry-After`), which is only ever said of a write that may pass later.

use std::collections::HashMap;
use std::future::Future;
use std::ops::ControlFlow;
use std::time::Duration;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};

use super::items::{Item, s};
use tokio::time::Instant;

use super::{Store, keys, sdk_error};
use crate::deadline::Deadline;
use crate::error::ApiError;
use crate::model::ObjectId;

/// Most actions DynamoDB accepts in one transaction.
pub const MAX_TRANSACTION_ITEMS: usize = 100;

/// An expression with its placeholders: a condition, or an update (written
/// out, or built clause by clause with [`UpdateExpr`]). The one form every
/// conditional write of the store takes, in a transaction or alone.
#[derive(Debug, Default, Clone)]
pub struct Expr {
    pub text: String,
    pub names: HashMap<String, String>,
    pub values: HashMap<String, AttributeValue>,
}

impl Expr {
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            ..Self::default()
        }
    }

    pub fn name(mut self, placeholder: &str, name: &str) -> Self {
        self.names.insert(placeholder.to_owned(), name.to_owned());
        self
    }

    pub fn value(mut self, placeholder: &str, value: AttributeValue) -> Self {
        self.values.insert(placeholder.to_owned(), value);
        self
    }

    /// This condition and `other`.
    pub fn and(self, other: Expr) -> Self {
        self.joined("AND", other)
    }

    /// This condition or `other`.
    pub fn or(self, other: Expr) -> Self {
        self.joined("OR", other)
    }

    fn joined(mut self, operator: &str, other: Expr) -> Self {
        self.text = format!("({}) {operator} ({})", self.text, other.text);
        merge_placeholders(&mut self.names, other.names);
        merge_placeholders(&mut self.values, other.values);
        self
    }
}

/// Adds `more` placeholders to `into`. A request gives each placeholder one
/// meaning, so one used by both parts must mean the same in each: otherwise
/// one part would silently test or write the other's value.
fn merge_placeholders<T: PartialEq + std::fmt::Debug>(
    into: &mut HashMap<String, T>,
    more: HashMap<String, T>,
) {
    for (placeholder, meaning) in more {
        if let Some(earlier) = into.get(&placeholder) {
            debug_assert_eq!(earlier, &meaning, "{placeholder} given two meanings");
        }
        into.insert(placeholder, meaning);
    }
}

/// An update and its condition as one request states them: the two texts,
/// and the placeholders of both in one set (DynamoDB takes one set per
/// request).
struct Conditional {
    update: String,
    condition: Option<String>,
    names: Option<HashMap<String, String>>,
    values: Option<HashMap<String, AttributeValue>>,
}

impl Conditional {
    fn new(update: Expr, condition: Option<Expr>) -> Self {
        let (mut names, mut values) = (update.names, update.values);
        let condition = condition.map(|condition| {
            merge_placeholders(&mut names, condition.names);
            merge_placeholders(&mut values, condition.values);
            condition.text
        });
        Conditional {
            update: update.text,
            condition,
            names: non_empty(names),
            values: non_empty(values),
        }
    }
}

/// The item is there (the condition of a write to an existing item).
pub(crate) fn exists() -> Expr {
    Expr::new("attribute_exists(#pk)").name("#pk", keys::PK)
}

/// The item is not there yet (the condition of a new item).
pub(crate) fn absent() -> Expr {
    Expr::new("attribute_not_exists(#pk)").name("#pk", keys::PK)
}

/// One more pass counted on a job's item: a change, so that the table's
/// stream starts a worker for the job (AWS).
pub(crate) fn passed() -> Expr {
    Expr::new("ADD passes :one").value(":one", super::items::n(1))
}

/// The condition for removing a claim: it is the object's (or already gone,
/// so that a claim lost to an earlier crash never blocks the removal).
pub(crate) fn claim_of(id: ObjectId) -> Expr {
    absent().or(Expr::new("id = :id").value(":id", s(id.to_string())))
}

/// An update [`Expr`] built clause by clause (`SET`, `REMOVE`, `ADD`), for
/// updates whose clauses depend on what is changed.
#[derive(Debug, Default)]
pub struct UpdateExpr {
    set: Vec<String>,
    remove: Vec<String>,
    add: Vec<String>,
    placeholders: Expr,
}

impl UpdateExpr {
    pub fn set(mut self, clause: impl Into<String>) -> Self {
        self.set.push(clause.into());
        self
    }

    pub fn remove(mut self, path: impl Into<String>) -> Self {
        self.remove.push(path.into());
        self
    }

    pub fn add(mut self, clause: impl Into<String>) -> Self {
        self.add.push(clause.into());
        self
    }

    pub fn name(mut self, placeholder: &str, name: &str) -> Self {
        self.placeholders = self.placeholders.name(placeholder, name);
        self
    }

    pub fn value(mut self, placeholder: &str, value: AttributeValue) -> Self {
        self.placeholders = self.placeholders.value(placeholder, value);
        self
    }

    /// Applies `patch` to the map attribute `map` key by key: `SET
    /// #map.#k = :v` for a value, `REMOVE #map.#k` for `None`. The request
    /// carries only what changes, never the whole map (and an engine that
    /// counts a replaced map twice against the item limit is not misled).
    /// `tag` keeps the placeholders apart from others of the expression.
    pub fn patch_map(
        mut self,
        map: &str,
        tag: &str,
        patch: &std::collections::BTreeMap<String, Option<String>>,
    ) -> Self {
        let map_placeholder = format!("#{tag}");
        if !patch.is_empty() {
            self = self.name(&map_placeholder, map);
        }
        for (i, (key, value)) in patch.iter().enumerate() {
            let key_placeholder = format!("#{tag}{i}");
            self = self.name(&key_placeholder, key);
            let path = format!("{map_placeholder}.{key_placeholder}");
            self = match value {
                Some(value) => {
                    let value_placeholder = format!(":{tag}{i}");
                    self.set(format!("{path} = {value_placeholder}"))
                        .value(&value_placeholder, AttributeValue::S(value.clone()))
                }
                None => self.remove(path),
            }
        }
        self
    }

    /// The expression, for [`Transaction::update`] or an `UpdateItem`.
    pub fn build(self) -> Expr {
        let mut text = Vec::new();
        for (keyword, clauses) in [
            ("SET", self.set),
            ("REMOVE", self.remove),
            ("ADD", self.add),
        ] {
            if !clauses.is_empty() {
                text.push(format!("{keyword} {}", clauses.join(", ")));
            }
        }
        Expr {
            text: text.join(" "),
            ..self.placeholders
        }
    }
}

fn non_empty<K, V>(map: HashMap<K, V>) -> Option<HashMap<K, V>> {
    (!map.is_empty()).then_some(map)
}

/// The actions of one transaction.
#[derive(Debug, Default)]
pub struct Transaction {
    items: Vec<TransactWriteItem>,
}

impl Transaction {
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Puts `item` if `condition` holds (e.g. [`absent`]).
    pub fn put(&mut self, table: &str, item: Item, condition: Option<Expr>) -> &mut Self {
        let condition = condition.unwrap_or_default();
        let put = Put::builder()
            .table_name(table)
            .set_item(Some(item))
            .set_condition_expression((!condition.text.is_empty()).then_some(condition.text))
            .set_expression_attribute_names(non_empty(condition.names))
            .set_expression_attribute_values(non_empty(condition.values))
            .build()
            .expect("put has table and item");
        self.items
            .push(TransactWriteItem::builder().put(put).build());
        self
    }

    /// Applies `update` (whose text may name placeholders of `condition`) if `condition` holds.
    pub fn update(
        &mut self,
        table: &str,
        key: Item,
        update: Expr,
        condition: Option<Expr>,
    ) -> &mut Self {
        let update = Conditional::new(update, condition);
        let action = Update::builder()
            .table_name(table)
            .set_key(Some(key))
            .update_expression(update.update)
            .set_condition_expression(update.condition)
            .set_expression_attribute_names(update.names)
            .set_expression_attribute_values(update.values)
            .build()
            .expect("update has table, key and expression");
        self.items
            .push(TransactWriteItem::builder().update(action).build());
        self
    }

    pub fn delete(&mut self, table: &str, key: Item, condition: Option<Expr>) -> &mut Self {
        let condition = condition.unwrap_or_default();
        let delete = Delete::builder()
            .table_name(table)
            .set_key(Some(key))
            .set_condition_expression((!condition.text.is_empty()).then_some(condition.text))
            .set_expression_attribute_names(non_empty(condition.names))
            .set_expression_attribute_values(non_empty(condition.values))
            .build()
            .expect("delete has table and key");
        self.items
            .push(TransactWriteItem::builder().delete(delete).build());
        self
    }
}

/// How a conditional write ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Committed,
    /// A condition failed: what was read has changed. Re-read and decide.
    /// For a transaction, the positions of the actions whose condition
    /// failed, when the engine says (empty when it does not).
    ConditionFailed(Vec<usize>),
    /// Another transaction held an item, or DynamoDB throttled: the same
    /// write may pass in a moment.
    Busy,
}

impl Outcome {
    /// `Break` when committed, `Continue` (re-read, try again) otherwise:
    /// what most attempts of [`Store::until_decided`] answer.
    pub fn committed(&self) -> ControlFlow<()> {
        match self {
            Self::Committed => ControlFlow::Break(()),
            _ => ControlFlow::Continue(()),
        }
    }
}

/// Error codes (and cancellation reason codes) that mean "not now".
const BUSY_CODES: [&str; 11] = [
    "TransactionConflictException",
    "TransactionConflict",
    "TransactionInProgressException",
    "ProvisionedThroughputExceededException",
    "ProvisionedThroughputExceeded",
    "ThrottlingException",
    "ThrottlingError",
    "RequestLimitExceeded",
    "LimitExceededException",
    "ServiceUnavailable",
    "InternalServerError",
];

/// Words of DynamoDB's validation messages about its size limits.
const LIMIT_WORDS: [&str; 4] = ["size", "exceed", "too large", "maximum"];

/// A write DynamoDB refused as invalid: it can never pass. One against a
/// size limit is the client's (`400`; requests are measured before they
/// are written, so this is a last line); anything else is our bug (`500`).
/// The engine's message is logged, never sent.
fn refused(operation: &str, message: Option<&str>) -> ApiError {
    let message = message.unwrap_or_default();
    let lower = message.to_ascii_lowercase();
    if LIMIT_WORDS.iter().any(|word| lower.contains(word)) {
        tracing::warn!(
            operation,
            reason = message,
            "write refused by a DynamoDB limit"
        );
        ApiError::BadRequest("the change does not fit DynamoDB's size limits".into())
    } else {
        ApiError::internal(format!("{operation}: refused as invalid: {message}"))
    }
}

/// How a single-item conditional write (or an unconditional one) ended.
fn outcome_of<T, E, R>(
    operation: &str,
    result: Result<T, SdkError<E, R>>,
) -> Result<Outcome, ApiError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let error = match result {
        Ok(_) => return Ok(Outcome::Committed),
        Err(error) => error,
    };
    match error.as_service_error().and_then(|e| e.code()) {
        Some("ConditionalCheckFailedException") => Ok(Outcome::ConditionFailed(Vec::new())),
        Some(code) if BUSY_CODES.contains(&code) => Ok(Outcome::Busy),
        Some("ValidationException") => Err(refused(
            operation,
            error.as_service_error().and_then(|e| e.message()),
        )),
        _ => Err(sdk_error(operation, error)),
    }
}

/// How a transaction ended, from its `CancellationReasons` when it was
/// cancelled. An engine that gives no reasons is taken to mean a failed
/// condition: the caller's re-read decides.
fn outcome_of_transaction<R: std::fmt::Debug + Send + Sync + 'static>(
    error: SdkError<TransactWriteItemsError, R>,
) -> Result<Outcome, ApiError> {
    let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
        error.as_service_error()
    else {
        return outcome_of::<(), _, _>("TransactWriteItems", Err(error));
    };
    let reasons = cancelled.cancellation_reasons();
    if let Some(invalid) = reasons.iter().find(|r| r.code() == Some("ValidationError")) {
        return Err(refused("TransactWriteItems", invalid.message()));
    }
    let failed: Vec<usize> = reasons
        .iter()
        .enumerate()
        .filter(|(_, r)| r.code() == Some("ConditionalCheckFailed"))
        .map(|(position, _)| position)
        .collect();
    let busy = reasons
        .iter()
        .any(|r| r.code().is_some_and(|c| BUSY_CODES.contains(&c)));
    Ok(if failed.is_empty() && busy {
        Outcome::Busy
    } else {
        Outcome::ConditionFailed(failed)
    })
}

/// The state an attempt of [`Store::until_decided`] carries to the next
/// (what is still unprocessed), behind a lock held only between awaits.
pub(crate) fn lock<T>(shared: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Takes the value out of `shared`, leaving the default.
pub(crate) fn take<T: Default>(shared: &std::sync::Mutex<T>) -> T {
    std::mem::take(&mut *lock(shared))
}

/// The most one write may spend retrying before it answers `503`.
pub const WRITE_BUDGET: Duration = Duration::from_secs(3);
/// What a request keeps in hand before its deadline to answer at all.
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(500);

/// A pause before another attempt: grows with the attempt, jittered so that
/// racing writers spread out.
fn pause(attempt: u32) -> Duration {
    let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0]) % 10;
    Duration::from_millis((5u64 << attempt.min(6)) + jitter)
}

impl Store {
    /// Writes `item` whole if `condition` holds.
    pub(crate) async fn put_if(
        &self,
        operation: &str,
        item: Item,
        condition: Expr,
    ) -> Result<Outcome, ApiError> {
        let written = self
            .client
            .put_item()
            .table_name(self.table())
            .set_item(Some(item))
            .condition_expression(condition.text)
            .set_expression_attribute_names(non_empty(condition.names))
            .set_expression_attribute_values(non_empty(condition.values))
            .send()
            .await;
        outcome_of(operation, written)
    }

    /// Applies `update` to the item at `key` if `condition` holds.
    pub(crate) async fn update_if(
        &self,
        operation: &str,
        key: Item,
        update: Expr,
        condition: Expr,
    ) -> Result<Outcome, ApiError> {
        let update = Conditional::new(update, Some(condition));
        let written = self
            .client
            .update_item()
            .table_name(self.table())
            .set_key(Some(key))
            .update_expression(update.update)
            .set_condition_expression(update.condition)
            .set_expression_attribute_names(update.names)
            .set_expression_attribute_values(update.values)
            .send()
            .await;
        outcome_of(operation, written)
    }

    pub(crate) async fn commit(&self, transaction: Transaction) -> Result<Outcome, ApiError> {
        if transaction.is_empty() {
            return Ok(Outcome::Committed);
        }
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(transaction.items))
            .send()
            .await
        {
            Ok(_) => Ok(Outcome::Committed),
            Err(error) => outcome_of_transaction(error),
        }
    }

    /// Runs `attempt` until it decides: `Break(value)` is the answer, an
    /// error is answered as it is, and `Continue` (a failed condition or a
    /// busy item) runs it again after a pause, the attempt re-reading what it
    /// needs. Answers `503` once [`WRITE_BUDGET`] is spent or the request's
    /// deadline is near: only writes that could pass later get there.
    pub(crate) async fn until_decided<T, F, Fut>(
        &self,
        operation: &str,
        mut attempt: F,
    ) -> Result<T, ApiError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<ControlFlow<T>, ApiError>>,
    {
        let budget = Instant::now() + WRITE_BUDGET;
        let deadline =
            Deadline::current().map(|d| Instant::from_std(d.instant()) - DEADLINE_MARGIN);
        let stop = deadline.map_or(budget, |deadline| deadline.min(budget));
        for tries in 1u32.. {
            if let ControlFlow::Break(value) = attempt().await? {
                return Ok(value);
            }
            let wait = pause(tries);
            if Instant::now() + wait >= stop {
                return Err(ApiError::Unavailable {
                    detail: format!("{operation}: still contended after {tries} attempts"),
                });
            }
            tokio::time::sleep(wait).await;
        }
        unreachable!("the attempts end by the budget")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use aws_sdk_dynamodb::types::CancellationReason;
    use aws_sdk_dynamodb::types::error::TransactionCanceledException;

    use super::*;

    fn cancelled(codes: &[&str]) -> Result<Outcome, ApiError> {
        let mut exception = TransactionCanceledException::builder().message("cancelled");
        for code in codes {
            exception = exception.cancellation_reasons(
                CancellationReason::builder()
                    .code(*code)
                    .message("Item size has exceeded the maximum allowed size")
                    .build(),
            );
        }
        let error = SdkError::service_error(
            TransactWriteItemsError::TransactionCanceledException(exception.build()),
            (),
        );
        outcome_of_transaction(error)
    }

    #[test]
    fn compound_conditions_keep_each_part_and_every_placeholder() {
        let condition = claim_of(ObjectId::new()).and(
            Expr::new("#name = :name")
                .name("#name", "name")
                .value(":name", s("Leads")),
        );
        assert_eq!(
            condition.text,
            "((attribute_not_exists(#pk)) OR (id = :id)) AND (#name = :name)"
        );
        assert_eq!(condition.names.len(), 2);
        assert_eq!(condition.names["#pk"], keys::PK);
        assert_eq!(condition.values.len(), 2);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = ":name given two meanings")]
    fn a_placeholder_given_two_meanings_is_refused() {
        let _ = Expr::new("#n = :name")
            .value(":name", s("Leads"))
            .and(Expr::new("#n <> :name").value(":name", s("Trials")));
    }

    #[test]
    fn a_map_patch_sets_and_removes_key_by_key() {
        let patch = BTreeMap::from([
            ("city".to_owned(), Some("Paris".to_owned())),
            ("plan".to_owned(), None),
        ]);
        let expr = UpdateExpr::default()
            .set("#ver = :next")
            .patch_map("attrs", "a", &patch)
            .add("#n :one")
            .build();
        assert_eq!(
            expr.text,
            "SET #ver = :next, #a.#a0 = :a0 REMOVE #a.#a1 ADD #n :one"
        );
        assert_eq!(expr.names["#a"], "attrs");
        assert_eq!(expr.names["#a1"], "plan");
        assert_eq!(expr.values[":a0"], AttributeValue::S("Paris".into()));
    }

    #[test]
    fn cancellation_reasons_decide_the_outcome() {
        assert_eq!(
            cancelled(&["None", "ConditionalCheckFailed"]).unwrap(),
            Outcome::ConditionFailed(vec![1])
        );
        assert_eq!(
            cancelled(&["TransactionConflict", "None"]).unwrap(),
            Outcome::Busy
        );
        assert_eq!(cancelled(&["ThrottlingError"]).unwrap(), Outcome::Busy);
        // No reasons given: the caller re-reads.
        assert_eq!(cancelled(&[]).unwrap(), Outcome::ConditionFailed(vec![]));
        // Can never pass: answered at once, as the client's error.
        let error = cancelled(&["None", "ValidationError"]).unwrap_err();
        assert_eq!(error.status(), 400);
    }

    #[tokio::test(start_paused = true)]
    async fn contention_ends_in_503_within_the_budget() {
        let store = Store::new(
            aws_sdk_dynamodb::Client::from_conf(
                aws_sdk_dynamodb::Config::builder()
                    .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
                    .http_client(crate::aws::https_client(None))
                    .build(),
            ),
            "t",
        );
        let started = tokio::time::Instant::now();
        let mut attempts = 0;
        let answer: Result<(), ApiError> = store
            .until_decided("test", || {
                attempts += 1;
                async { Ok(ControlFlow::Continue(())) }
            })
            .await;
        assert_eq!(answer.unwrap_err().status(), 503);
        assert!(attempts > 5, "{attempts}");
        assert!(started.elapsed() <= WRITE_BUDGET);
    }
}
