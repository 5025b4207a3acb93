//! The domain objects, independent of HTTP and of storage.

mod account;
mod attributes;
mod id;
mod segment;
mod time;
mod user;

pub use account::{AccountId, MalformedAccount};
pub use attributes::*;
pub use id::{ID_SHAPE, IdSeed, MalformedId, ObjectId, new_uuid};
pub use segment::{MAX_SEGMENT_NAME_CHARS, Segment};
pub use time::{MalformedDate, Timestamp};
pub use user::{Conversation, SegmentRef, User, UserDetails, UserSummary};

#[cfg(test)]
pub(crate) use user::tests::sample_user;
