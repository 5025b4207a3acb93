//! Segments: named groups of users within an account.

use serde::Serialize;

use super::{ObjectId, Timestamp};

/// Longest segment name, in characters.
pub const MAX_SEGMENT_NAME_CHARS: usize = 256;

/// A segment as `GET /segments` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Segment {
    pub id: ObjectId,
    pub name: String,
    /// Current number of members.
    pub users: u64,
    #[serde(rename = "createdAt")]
    pub created_at: Timestamp,
}
