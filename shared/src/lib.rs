//! The Users API model crate: everything the functions share.
//!
//! Domain rules live here once — ids, dates, attributes, validation, filters,
//! export rows — and are unit-tested here; [`store`] translates them to
//! DynamoDB; [`http`] holds the plumbing every function's router uses.

pub mod aws;
pub mod deadline;
pub mod envelope;
pub mod error;
pub mod export;
pub mod filter;
pub mod import;
pub mod model;
pub mod store;

pub use envelope::Envelope;
pub use error::{ApiError, ApiResult, FieldError};
#[cfg(feature = "embedded")]
pub mod engine;
pub mod http;
pub mod validate;
