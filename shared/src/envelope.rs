//! The answer envelope of write operations and errors:
//! `{"id", "timestamp", "status": {"code", "type", "message"?, "errors"?}}`.

use serde::Serialize;

use crate::error::FieldError;
use crate::model::Timestamp;

#[derive(Debug, Clone, Serialize)]
pub struct Envelope {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub timestamp: String,
    pub status: Status,
}

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub code: u16,
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
}

impl Envelope {
    /// `200 success`, with the id of the object written where the reference shows one.
    pub fn success(id: Option<String>) -> Self {
        Self {
            id,
            timestamp: Timestamp::now().envelope_format(),
            status: Status {
                code: 200,
                kind: "success",
                message: None,
                errors: None,
            },
        }
    }

    pub fn error(
        code: u16,
        message: String,
        id: Option<String>,
        errors: Option<Vec<FieldError>>,
    ) -> Self {
        Self {
            id,
            timestamp: Timestamp::now().envelope_format(),
            status: Status {
                code,
                kind: "error",
                message: Some(message),
                errors,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_matches_the_reference_shape() {
        let json = serde_json::to_value(Envelope::success(Some("5c486eeebda7873576a379e4".into())))
            .unwrap();
        assert_eq!(
            json["status"],
            serde_json::json!({"code": 200, "type": "success"})
        );
        assert_eq!(json["id"], "5c486eeebda7873576a379e4");
        let ts = json["timestamp"].as_str().unwrap();
        assert_eq!(ts.len(), 24);
        assert_eq!(&ts[10..11], "T");
        assert!(ts.ends_with('Z'));
        let without_id = serde_json::to_value(Envelope::success(None)).unwrap();
        assert!(without_id.get("id").is_none());
    }
}
