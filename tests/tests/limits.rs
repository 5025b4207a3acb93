//! DynamoDB's limits are in bytes, the contract's in characters: input in a
//! non-Latin script, within every character limit, must either be stored
//! (keys carry only digests of client text) or be refused with a `400`
//! naming the field before anything is written (a user's profile must fit
//! one item). Run on every engine; Amazon's DynamoDB Local enforces the real
//! limits, so these tests fail there if anything slips.

use http::StatusCode;
use serde_json::{Map, Value, json};
use shared::model::{AccountId, Attributes, ObjectId, Timestamp, User};
use shared::store::items::{ProfileItem, to_item};
use shared::store::size::{MAX_PROFILE_BYTES, item_size};
use users_api_tests::{NewUser, TestApi, assert_error, error_fields};

/// A four-byte character (UTF-8), repeated.
fn wide(chars: usize) -> String {
    "\u{1F600}".repeat(chars)
}

/// `count` custom attributes, each key `width` ASCII characters and each
/// value `value_chars` four-byte characters.
fn wide_attributes(count: usize, value_chars: usize) -> Map<String, Value> {
    (0..count)
        .map(|i| (format!("{i:0>128}"), Value::String(wide(value_chars))))
        .collect()
}

#[tokio::test]
async fn keys_from_client_text_fit_at_every_character_limit() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    // GIVEN the longest userId, e-mail, name and segment name, every
    // character four bytes (an e-mail of 1,024 characters is 4 KB, twice
    // what a DynamoDB partition key may hold).
    let user_id = wide(256);
    let email = format!("{}@x.y", wide(1020));
    let segment_name = wide(256);
    // WHEN they are stored
    let segment = acme.create_segment(&segment_name).await;
    let answer = acme
        .post("/users", json!({"userId": user_id, "segments": [segment], "attributes": { "default_email": email, "default_name": wide(256), "city": wide(1024)}}))
        .await;
    // THEN they are, and every lookup through them works
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let id = answer.body[0]["id"].as_str().unwrap().to_owned();
    let again = acme
        .post(
            "/users",
            json!({"userId": user_id, "attributes": {"a": "1"}}),
        )
        .await;
    assert_error(&again, 409);
    assert_eq!(again.body["id"], id);
    assert_error(
        &acme.post("/segments", json!({"name": segment_name})).await,
        409,
    );
    for (field, value) in [("userId", &user_id), ("default_email", &email)] {
        let filters = json!([{"field": field, "operator": "eq", "value": value}]).to_string();
        let uri = format!(
            "/users?filters={}",
            form_urlencoded::byte_serialize(filters.as_bytes()).collect::<String>()
        );
        let page = acme.get(&uri).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        assert_eq!(page.body["count"], 1, "{field}: {}", page.text);
    }
    let renamed = acme
        .put(&format!("/segments/{segment}"), json!({"name": wide(255)}))
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.text);
    let updated = acme
        .put(
            &format!("/users/{id}"),
            json!({"attributes": {"default_email": format!("{}@z", wide(1022))}}),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.text);
    let conversation = acme
        .post(
            &format!("/users/{id}/conversations"),
            json!({"firstMessage": wide(4096), "sessionAttributes": {"topic": wide(1024)}}),
        )
        .await;
    assert_eq!(conversation.status, StatusCode::OK, "{}", conversation.text);
    let details = acme.get(&format!("/users/{id}")).await;
    assert_eq!(details.body["userId"], user_id.as_str());
    assert_eq!(details.body["segments"][0]["name"], wide(255).as_str());
    assert_eq!(
        details.body["conversations"][0]["firstMessage"],
        wide(4096).as_str()
    );
    // Erasing frees the userId again.
    assert_eq!(
        acme.delete(&format!("/users/{id}")).await.status,
        StatusCode::OK
    );
    acme.create_user(NewUser::new(user_id).with("a", "1")).await;
}

#[tokio::test]
async fn a_profile_that_would_pass_400_kb_is_refused_before_anything_is_written() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    // WHEN a user is created with 99 attributes of 1,024 four-byte characters
    // (each within the contract; about 418 KB in all)
    let answer = acme
        .post(
            "/users",
            json!({"userId": "big", "attributes": wide_attributes(99, 1024)}),
        )
        .await;
    // THEN it is 400 naming `attributes`, and nothing is stored
    assert_error(&answer, 400);
    assert_eq!(error_fields(&answer), ["attributes"]);
    assert_eq!(acme.get("/users").await.body["count"], 0);
    assert_eq!(
        acme.post("/users", json!({"userId": "big", "attributes": {"a": "1"}}))
            .await
            .status,
        StatusCode::OK,
        "the userId was not claimed"
    );

    // GIVEN a user of 80 such attributes (about 338 KB: it fits)
    let id = acme
        .create_user(NewUser::new("fits").with_attributes(wide_attributes(80, 1024)))
        .await;
    let uri = format!("/users/{id}");
    // WHEN ten more are set, or the session grows past the limit
    let more: Map<String, Value> = (80..90)
        .map(|i| (format!("{i:0>128}"), Value::String(wide(1024))))
        .collect();
    let update = acme.put(&uri, json!({"attributes": more})).await;
    let session: Map<String, Value> = (0..10)
        .map(|i| (format!("s{i}"), Value::String(wide(1024))))
        .collect();
    let activity = acme
        .post(
            &format!("{uri}/conversations"),
            json!({"firstMessage": "hi", "sessionAttributes": session}),
        )
        .await;
    // THEN each is 400 naming its field, and the user is as it was
    assert_error(&update, 400);
    assert_eq!(error_fields(&update), ["attributes"]);
    assert_error(&activity, 400);
    assert_eq!(error_fields(&activity), ["sessionAttributes"]);
    let details = acme.get(&uri).await;
    assert_eq!(details.status, StatusCode::OK, "{}", details.text);
    assert_eq!(
        details.body["attributes"].as_object().unwrap().len(),
        13 + 80
    );
    assert_eq!(details.body["conversations"], json!([]));
    assert_eq!(details.body["conversationsCount"], 0);
    assert_eq!(details.body["sessionAttributes"], json!({}));
    // Unsetting makes room again.
    let unset: Map<String, Value> = (0..40)
        .map(|i| (format!("{i:0>128}"), Value::Null))
        .collect();
    let answer = acme.put(&uri, json!({"attributes": unset})).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let activity = acme
        .post(
            &format!("{uri}/conversations"),
            json!({"firstMessage": "hi", "sessionAttributes": {"s": wide(1024)}}),
        )
        .await;
    assert_eq!(activity.status, StatusCode::OK, "{}", activity.text);
}

/// The custom attributes that make a new user's profile item exactly
/// `target` bytes (as the store measures it).
fn attributes_of_size(target: usize) -> Map<String, Value> {
    let account = AccountId::parse("acme").unwrap();
    let size_with = |attributes: &Map<String, Value>| {
        let user = User {
            id: ObjectId::new(),
            user_id: "edge".into(),
            banned: false,
            attributes: Attributes(
                attributes
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                    .collect(),
            ),
            session_attributes: Default::default(),
            conversations: 0,
            segments: Default::default(),
            created_at: Timestamp::now(),
            last_seen: Timestamp::now(),
        };
        item_size(&to_item(&ProfileItem::new(&account, &user, 1)).unwrap())
    };
    // Full attributes while another one still fits, then one value of
    // four- and one-byte characters (at most 1,024) that lands on the byte.
    let last = "last".to_owned();
    let with_full = |count: usize| {
        let mut attributes = wide_attributes(count, 1024);
        attributes.insert(last.clone(), Value::String(String::new()));
        attributes
    };
    let mut full = 0;
    while size_with(&with_full(full + 1)) < target {
        full += 1;
    }
    let mut attributes = with_full(full);
    let missing = target - size_with(&attributes);
    assert!((1..=4000).contains(&missing), "{missing}");
    let value = format!("{}{}", wide(missing / 4), "x".repeat(missing % 4));
    attributes.insert(last, Value::String(value));
    assert_eq!(size_with(&attributes), target);
    attributes
}

#[tokio::test]
async fn segments_that_would_not_fit_are_refused_naming_segments() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let mut segments = Vec::new();
    for i in 0..5 {
        segments.push(acme.create_segment(&format!("S{i}")).await);
    }
    // GIVEN a user whose profile is 60 bytes short of the limit
    let id = acme
        .create_user(
            NewUser::new("edge").with_attributes(attributes_of_size(MAX_PROFILE_BYTES - 60)),
        )
        .await;
    let uri = format!("/users/{id}/segments");
    // WHEN five segments (24 bytes of id each) are added: 400 naming segments
    let answer = acme.post(&uri, json!(segments)).await;
    assert_error(&answer, 400);
    assert_eq!(error_fields(&answer), ["segments"]);
    let counts = acme.get("/segments").await;
    assert!(
        counts
            .body
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["users"] == 0),
        "{}",
        counts.text
    );
    // AND two of them fit
    let answer = acme.post(&uri, json!(segments[..2])).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(
        acme.get(&format!("/users/{id}")).await.body["segments"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}
