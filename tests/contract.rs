//! The published contract, checked on every answer the contract tests get:
//! [`check`] finds the operation of `openapi.json` a request was for, and
//! fails the test when the answer's status is not one the document lists
//! for it, a header it requires is missing, or the body does not match the
//! schema of its content type. Requests for paths or methods the document
//! does not have (the tests of 404 and 405) are not checked.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use http::Method;
use serde_json::Value;

use crate::Answer;

/// The document, as the local server serves it.
const DOCUMENT: &str = include_str!("../openapi.json");

fn document() -> &'static Value {
    static PARSED: OnceLock<Value> = OnceLock::new();
    PARSED.get_or_init(|| serde_json::from_str(DOCUMENT).expect("openapi.json is JSON"))
}

/// A validator per schema (by its JSON pointer in the document).
fn validator(pointer: &str) -> Arc<jsonschema::Validator> {
    static BUILT: OnceLock<Mutex<HashMap<String, Arc<jsonschema::Validator>>>> = OnceLock::new();
    let mut built = BUILT
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    built
        .entry(pointer.to_owned())
        .or_insert_with(|| {
            // The whole document is the root, so that its `#/components/...`
            // references resolve; its other members are unknown keywords.
            let mut root = document().clone();
            root["$ref"] = Value::String(format!("#{}", uri_fragment(pointer)));
            let validator = jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .build(&root)
                .unwrap_or_else(|e| panic!("schema at {pointer}: {e}"));
            Arc::new(validator)
        })
        .clone()
}

/// A JSON pointer as a URI fragment (`{id}` becomes `%7Bid%7D`).
fn uri_fragment(pointer: &str) -> String {
    pointer
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// The path template of the document that `path` is an instance of; a
/// template with more literal segments wins (`/users/export` over
/// `/users/{id}`).
fn template_of(path: &str) -> Option<&'static str> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    document()["paths"]
        .as_object()?
        .keys()
        .filter_map(|template| {
            let parts: Vec<&str> = template.split('/').collect();
            let fits = parts.len() == segments.len()
                && parts
                    .iter()
                    .zip(&segments)
                    .all(|(part, segment)| part.starts_with('{') || part == segment);
            let literal = parts.iter().filter(|part| !part.starts_with('{')).count();
            fits.then_some((literal, template.as_str()))
        })
        .max_by_key(|(literal, _)| *literal)
        .map(|(_, template)| template)
}

/// The object at `pointer`, following one `$ref` (responses and headers are
/// referenced from `#/components`); returns it with its own pointer.
fn resolved(pointer: String) -> (String, &'static Value) {
    let value = document().pointer(&pointer).unwrap_or(&Value::Null);
    referenced(value).unwrap_or((pointer, value))
}

/// What `value`'s `$ref` points at, with its pointer, when it is a reference.
fn referenced(value: &Value) -> Option<(String, &'static Value)> {
    let target = value
        .get("$ref")?
        .as_str()?
        .trim_start_matches('#')
        .to_owned();
    let found = document().pointer(&target).unwrap_or(&Value::Null);
    Some((target, found))
}

/// Fails (panics) when `answer` breaks the document for `method path`.
pub fn check(method: &Method, path: &str, answer: &Answer) {
    let Some(template) = template_of(path) else {
        return;
    };
    let operation = format!(
        "/paths/{}/{}",
        escape(template),
        method.as_str().to_ascii_lowercase()
    );
    if document().pointer(&operation).is_none() {
        return;
    }
    let what = format!("{method} {path} answered {}", answer.status.as_u16());
    let status = answer.status.as_u16().to_string();
    let (response, definition) = resolved(format!("{operation}/responses/{status}"));
    assert!(
        !definition.is_null(),
        "{what}, a status openapi.yaml does not list for {method} {template}: {}",
        answer.text
    );
    if let Some(headers) = definition.get("headers").and_then(Value::as_object) {
        for (name, header) in headers {
            if resolved_header(header).get("required") == Some(&Value::Bool(true)) {
                assert!(
                    answer.headers.contains_key(name.as_str()),
                    "{what} without the header {name} that openapi.yaml requires"
                );
            }
        }
    }
    let Some(content) = definition.get("content").and_then(Value::as_object) else {
        return;
    };
    let content_type = answer
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = |media: &str| {
        media
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    };
    let Some(media) = content
        .keys()
        .find(|media| essence(media) == essence(content_type))
    else {
        panic!(
            "{what} as {content_type:?}; openapi.yaml says {:?}",
            content.keys().collect::<Vec<_>>()
        );
    };
    if essence(media) != "application/json" {
        return;
    }
    let schema = format!("{response}/content/{}/schema", escape(media));
    let validator = validator(&schema);
    let errors: Vec<String> = validator
        .iter_errors(&answer.body)
        .map(|error| format!("{} at {}", error, error.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} with a body openapi.yaml does not allow: {}\n{}",
        errors.join("; "),
        answer.text
    );
}

/// A header object, following its `$ref`.
fn resolved_header(header: &'static Value) -> &'static Value {
    referenced(header).map_or(header, |(_, found)| found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_find_their_templates() {
        assert_eq!(template_of("/users"), Some("/users"));
        assert_eq!(template_of("/users/export"), Some("/users/export"));
        assert_eq!(
            template_of("/users/6b0f7a85a13630f5580ab523"),
            Some("/users/{id}")
        );
        assert_eq!(
            template_of("/users/6b0f7a85a13630f5580ab523/segments"),
            Some("/users/{id}/segments")
        );
        assert_eq!(template_of("/nothing/here"), None);
    }

    fn answer(status: u16, body: Value) -> Answer {
        let mut headers = http::HeaderMap::new();
        headers.insert("content-type", "application/json".parse().unwrap());
        headers.insert("x-request-id", "r-1".parse().unwrap());
        Answer {
            status: http::StatusCode::from_u16(status).unwrap(),
            headers,
            text: body.to_string(),
            body,
        }
    }

    #[test]
    fn a_page_as_the_document_says_passes() {
        let page = serde_json::json!({"data": [], "count": 0, "next": null});
        check(&Method::GET, "/users", &answer(200, page));
    }

    #[test]
    #[should_panic(expected = "a body openapi.yaml does not allow")]
    fn a_page_without_next_fails() {
        check(
            &Method::GET,
            "/users",
            &answer(200, serde_json::json!({"data": [], "count": 0})),
        );
    }

    #[test]
    #[should_panic(expected = "a status openapi.yaml does not list")]
    fn an_unlisted_status_fails() {
        check(&Method::GET, "/users", &answer(500, serde_json::json!({})));
    }

    #[test]
    #[should_panic(expected = "without the header x-request-id")]
    fn a_missing_required_header_fails() {
        let mut page = answer(
            200,
            serde_json::json!({"data": [], "count": 0, "next": null}),
        );
        page.headers.remove("x-request-id");
        check(&Method::GET, "/users", &page);
    }
}
