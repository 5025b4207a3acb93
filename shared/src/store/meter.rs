//! What the store costs in DynamoDB: requests sent, items read, and the
//! read and write units DynamoDB says each call consumed.
//!
//! DynamoDB bills by the unit, and a Lambda process serves one request at a
//! time, so the difference of two readings around an API call is that call's
//! bill. The counting is one SDK interceptor on the store's client, not code
//! at every call site: it asks every call for `ReturnConsumedCapacity =
//! INDEXES` (a few bytes more per answer) and adds up what comes back. The
//! time between sending a request and its answer is kept apart, so a
//! benchmark can report the handler's own time without the engine's.
//!
//! Engines differ in what they report: DynamoDB and DynamoDB Local compute
//! the units by DynamoDB's rules; an engine that reports none leaves the
//! unit counters at zero while requests and items are still counted.

use std::ops::{Add, Sub};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::interceptors::{
    AfterDeserializationInterceptorContextRef, BeforeDeserializationInterceptorContextRef,
    BeforeSerializationInterceptorContextMut, BeforeTransmitInterceptorContextRef,
    FinalizerInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::operation::{
    batch_get_item::{BatchGetItemInput, BatchGetItemOutput},
    batch_write_item::{BatchWriteItemInput, BatchWriteItemOutput},
    delete_item::{DeleteItemInput, DeleteItemOutput},
    get_item::{GetItemInput, GetItemOutput},
    put_item::{PutItemInput, PutItemOutput},
    query::{QueryInput, QueryOutput},
    scan::{ScanInput, ScanOutput},
    transact_get_items::{TransactGetItemsInput, TransactGetItemsOutput},
    transact_write_items::{TransactWriteItemsInput, TransactWriteItemsOutput},
    update_item::{UpdateItemInput, UpdateItemOutput},
};
use aws_sdk_dynamodb::types::{ConsumedCapacity, ReturnConsumedCapacity};
use aws_smithy_types::config_bag::{Storable, StoreReplace};

/// Running totals since the store was made. Cheap to clone: clones share
/// the counters.
#[derive(Clone, Debug, Default)]
pub struct Meter(Arc<Counters>);

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    items_read: AtomicU64,
    read_milli_units: AtomicU64,
    write_milli_units: AtomicU64,
    index_write_milli_units: AtomicU64,
    engine_nanos: AtomicU64,
    in_flight: Mutex<InFlight>,
}

/// Requests on the wire now, and since when at least one has been: time in
/// flight is counted once however many requests overlap.
#[derive(Debug, Default)]
struct InFlight {
    requests: u32,
    since: Option<Instant>,
}

/// One reading of a [`Meter`]; the difference of two readings is what was
/// spent between them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MeterReading {
    /// HTTP requests sent to DynamoDB, retries included.
    pub requests: u64,
    /// Items DynamoDB read: scanned by queries (before any filter), found by
    /// gets and batch gets.
    pub items_read: u64,
    /// Read units consumed (strongly consistent reads count twice).
    pub read_units: f64,
    /// Write units consumed, table and indexes together (transactions
    /// count twice, as DynamoDB bills them).
    pub write_units: f64,
    /// The part of `write_units` spent on global secondary indexes.
    pub index_write_units: f64,
    /// Time during which at least one request was waiting for its answer
    /// (overlapping requests count once).
    pub engine_time: Duration,
}

impl Sub for MeterReading {
    type Output = MeterReading;

    fn sub(self, earlier: MeterReading) -> MeterReading {
        MeterReading {
            requests: self.requests - earlier.requests,
            items_read: self.items_read - earlier.items_read,
            read_units: self.read_units - earlier.read_units,
            write_units: self.write_units - earlier.write_units,
            index_write_units: self.index_write_units - earlier.index_write_units,
            engine_time: self.engine_time.saturating_sub(earlier.engine_time),
        }
    }
}

impl Add for MeterReading {
    type Output = MeterReading;

    fn add(self, more: MeterReading) -> MeterReading {
        MeterReading {
            requests: self.requests + more.requests,
            items_read: self.items_read + more.items_read,
            read_units: self.read_units + more.read_units,
            write_units: self.write_units + more.write_units,
            index_write_units: self.index_write_units + more.index_write_units,
            engine_time: self.engine_time + more.engine_time,
        }
    }
}

const MILLI: f64 = 1000.0;

impl Meter {
    pub fn reading(&self) -> MeterReading {
        let c = &self.0;
        let units = |counter: &AtomicU64| counter.load(Ordering::Relaxed) as f64 / MILLI;
        MeterReading {
            requests: c.requests.load(Ordering::Relaxed),
            items_read: c.items_read.load(Ordering::Relaxed),
            read_units: units(&c.read_milli_units),
            write_units: units(&c.write_milli_units),
            index_write_units: units(&c.index_write_milli_units),
            engine_time: Duration::from_nanos(c.engine_nanos.load(Ordering::Relaxed)),
        }
    }

    /// The interceptor that feeds this meter, for the store's client.
    pub(crate) fn interceptor(&self) -> MeterInterceptor {
        MeterInterceptor(self.clone())
    }

    fn sent(&self) {
        let mut in_flight = self.0.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if in_flight.requests == 0 {
            in_flight.since = Some(Instant::now());
        }
        in_flight.requests += 1;
    }

    fn answered(&self) {
        let mut in_flight = self.0.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        in_flight.requests = in_flight.requests.saturating_sub(1);
        if in_flight.requests == 0
            && let Some(since) = in_flight.since.take()
        {
            let nanos = since.elapsed().as_nanos().min(u64::MAX as u128) as u64;
            self.0.engine_nanos.fetch_add(nanos, Ordering::Relaxed);
        }
    }

    fn add_items(&self, items: usize) {
        self.0.items_read.fetch_add(items as u64, Ordering::Relaxed);
    }

    fn add_capacity<'a>(
        &self,
        kind: Units,
        consumed: impl IntoIterator<Item = &'a ConsumedCapacity>,
    ) {
        let milli = |units: f64| (units * MILLI).round() as u64;
        for capacity in consumed {
            let total = milli(capacity.capacity_units().unwrap_or_default());
            match kind {
                Units::Read => {
                    self.0.read_milli_units.fetch_add(total, Ordering::Relaxed);
                }
                Units::Write => {
                    self.0.write_milli_units.fetch_add(total, Ordering::Relaxed);
                    let indexes: f64 = capacity
                        .global_secondary_indexes()
                        .into_iter()
                        .flat_map(|by_index| by_index.values())
                        .filter_map(|c| c.capacity_units())
                        .sum();
                    self.0
                        .index_write_milli_units
                        .fetch_add(milli(indexes), Ordering::Relaxed);
                }
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Units {
    Read,
    Write,
}

/// The SDK interceptor behind [`Meter`].
#[derive(Debug)]
pub(crate) struct MeterInterceptor(Meter);

/// Whether the current attempt is on the wire, kept in its config bag: an
/// attempt that fails in transmission gets no `read_after_transmit`, and is
/// closed in `read_after_attempt` instead.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Wire {
    Sent,
    Done,
}

impl Storable for Wire {
    type Storer = StoreReplace<Self>;
}

/// Sets `ReturnConsumedCapacity = INDEXES` on each input type that has it.
macro_rules! ask_for_capacity {
    ($input:expr, $($ty:ty),+) => {
        $(if let Some(input) = $input.downcast_mut::<$ty>() {
            input.return_consumed_capacity = Some(ReturnConsumedCapacity::Indexes);
            return Ok(());
        })+
    };
}

impl MeterInterceptor {
    fn close(&self, cfg: &mut ConfigBag) {
        if cfg.load::<Wire>() == Some(&Wire::Sent) {
            self.0.answered();
            cfg.interceptor_state().store_put(Wire::Done);
        }
    }
}

impl Intercept for MeterInterceptor {
    fn name(&self) -> &'static str {
        "DynamoDbMeter"
    }

    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let input = context.input_mut();
        ask_for_capacity!(
            input,
            GetItemInput,
            PutItemInput,
            UpdateItemInput,
            DeleteItemInput,
            QueryInput,
            ScanInput,
            BatchGetItemInput,
            BatchWriteItemInput,
            TransactGetItemsInput,
            TransactWriteItemsInput
        );
        Ok(())
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.0.requests.fetch_add(1, Ordering::Relaxed);
        self.0.sent();
        cfg.interceptor_state().store_put(Wire::Sent);
        Ok(())
    }

    fn read_after_transmit(
        &self,
        _context: &BeforeDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.close(cfg);
        Ok(())
    }

    fn read_after_attempt(
        &self,
        _context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.close(cfg);
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Ok(output) = context.output_or_error() else {
            return Ok(());
        };
        let meter = &self.0;
        if let Some(out) = output.downcast_ref::<GetItemOutput>() {
            meter.add_items(usize::from(out.item.is_some()));
            meter.add_capacity(Units::Read, &out.consumed_capacity);
        } else if let Some(out) = output.downcast_ref::<QueryOutput>() {
            meter.add_items(out.scanned_count.max(0) as usize);
            meter.add_capacity(Units::Read, &out.consumed_capacity);
        } else if let Some(out) = output.downcast_ref::<ScanOutput>() {
            meter.add_items(out.scanned_count.max(0) as usize);
            meter.add_capacity(Units::Read, &out.consumed_capacity);
        } else if let Some(out) = output.downcast_ref::<BatchGetItemOutput>() {
            meter.add_items(
                out.responses
                    .iter()
                    .flat_map(|r| r.values())
                    .map(Vec::len)
                    .sum(),
            );
            meter.add_capacity(Units::Read, out.consumed_capacity.iter().flatten());
        } else if let Some(out) = output.downcast_ref::<TransactGetItemsOutput>() {
            let found = out.responses.iter().flatten().filter(|r| r.item.is_some());
            meter.add_items(found.count());
            meter.add_capacity(Units::Read, out.consumed_capacity.iter().flatten());
        } else if let Some(out) = output.downcast_ref::<PutItemOutput>() {
            meter.add_capacity(Units::Write, &out.consumed_capacity);
        } else if let Some(out) = output.downcast_ref::<UpdateItemOutput>() {
            meter.add_capacity(Units::Write, &out.consumed_capacity);
        } else if let Some(out) = output.downcast_ref::<DeleteItemOutput>() {
            meter.add_capacity(Units::Write, &out.consumed_capacity);
        } else if let Some(out) = output.downcast_ref::<BatchWriteItemOutput>() {
            meter.add_capacity(Units::Write, out.consumed_capacity.iter().flatten());
        } else if let Some(out) = output.downcast_ref::<TransactWriteItemsOutput>() {
            meter.add_capacity(Units::Write, out.consumed_capacity.iter().flatten());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_requests_count_their_time_in_flight_once() {
        let meter = Meter::default();
        let started = Instant::now();
        meter.sent();
        meter.sent();
        std::thread::sleep(Duration::from_millis(20));
        meter.answered();
        meter.answered();
        let wall = started.elapsed();
        let engine = meter.reading().engine_time;
        assert!(
            engine >= Duration::from_millis(20) && engine <= wall,
            "{engine:?} of {wall:?}"
        );
        // An answer with nothing in flight changes nothing.
        meter.answered();
        assert_eq!(meter.reading().engine_time, engine);
    }

    #[test]
    fn a_difference_of_readings_is_what_was_spent_between_them() {
        let meter = Meter::default();
        let before = meter.reading();
        meter.0.requests.fetch_add(2, Ordering::Relaxed);
        meter.add_items(3);
        let capacity = ConsumedCapacity::builder()
            .capacity_units(3.0)
            .global_secondary_indexes(
                "by_created",
                aws_sdk_dynamodb::types::Capacity::builder()
                    .capacity_units(2.0)
                    .build(),
            )
            .build();
        meter.add_capacity(Units::Write, [&capacity]);
        meter.add_capacity(
            Units::Read,
            [&ConsumedCapacity::builder().capacity_units(0.5).build()],
        );
        let spent = meter.reading() - before;
        assert_eq!(spent.requests, 2);
        assert_eq!(spent.items_read, 3);
        assert_eq!(spent.write_units, 3.0);
        assert_eq!(spent.index_write_units, 2.0);
        assert_eq!(spent.read_units, 0.5);
    }
}
