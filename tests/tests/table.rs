//! The table's definition: a table made by an older version (user indexes
//! projecting whole profiles, under their old names) gains the slim indexes
//! this version reads when it starts, and its users are listed from them.

use aws_sdk_dynamodb::config::Credentials;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use http::StatusCode;
use serde_json::json;
use shared::store::{Store, keys};
use users_api_tests::{NewUser, TestApi, ids_of};

fn key(name: &str, kind: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .unwrap()
}

/// The global indexes of the table as the previous version created them.
fn old_index(name: &str, pk: &str, sk: &str) -> GlobalSecondaryIndex {
    GlobalSecondaryIndex::builder()
        .index_name(name)
        .key_schema(key(pk, KeyType::Hash))
        .key_schema(key(sk, KeyType::Range))
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_table_from_before_the_slim_indexes_gains_them_and_keeps_its_users() {
    // GIVEN a table with the old indexes, holding users
    let api = TestApi::new().await;
    let table = format!("{}-old", api.store.table());
    // DynamoDB Local keeps one database per access key, and in a database
    // where other suites' tables have come and gone its background index
    // builder can leave a new index CREATING for good (seen with 3.3.0 after
    // the users suite; a fresh database builds it in a second). This table
    // gets a database of its own; the other engines ignore the key.
    let access_key: String = table.chars().filter(char::is_ascii_alphanumeric).collect();
    let client = aws_sdk_dynamodb::Client::from_conf(
        api.store
            .client()
            .config()
            .to_builder()
            .credentials_provider(Credentials::new(
                access_key,
                "local",
                None,
                None,
                "table-test",
            ))
            .build(),
    );
    let attributes = [
        "pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk", "gsi3pk", "gsi4pk", "gsi4sk",
    ]
    .map(|name| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    });
    client
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .set_attribute_definitions(Some(attributes.to_vec()))
        .global_secondary_indexes(old_index("by_created", "gsi1pk", "gsi1sk"))
        .global_secondary_indexes(old_index("by_seen", "gsi2pk", "gsi2sk"))
        .global_secondary_indexes(old_index("by_email", "gsi3pk", "gsi1sk"))
        .global_secondary_indexes(old_index("by_segment", "gsi4pk", "gsi4sk"))
        .send()
        .await
        .expect("the old table is created");
    let old = Store::new(client, table.as_str());
    // The token and users are written before the new indexes exist.
    let acme = api.on_store(old.clone()).client("acme").await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let user = NewUser::new(format!("u{i}")).with("default_email", format!("u{i}@example.com"));
        let answer = acme.post("/users", user.json()).await;
        // Writing needs no index; the answer is the created user.
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        ids.push(answer.body[0]["id"].as_str().unwrap().to_owned());
    }

    // WHEN this version starts on it
    old.ensure_table()
        .await
        .expect("the missing indexes are added");

    // THEN the new indexes are there, filled from the items already stored
    let described = old
        .client()
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let names: Vec<&str> = described
        .table()
        .unwrap()
        .global_secondary_indexes()
        .iter()
        .filter_map(|index| index.index_name())
        .collect();
    for index in keys::INDEXES {
        assert!(names.contains(&index.name), "{} in {names:?}", index.name);
    }
    let listed = acme.get("/users?sort.order=asc").await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    assert_eq!(ids_of(&listed.body), ids);
    let by_email = acme
        .get("/users?filters[0][field]=default_email&filters[0][operator]=eq&filters[0][value]=u1@example.com")
        .await;
    assert_eq!(ids_of(&by_email.body), [ids[1].clone()]);
    // AND starting again changes nothing
    old.ensure_table().await.expect("nothing is missing");
    old.delete_table().await.expect("the old table is removed");
}

/// The table of template.yaml, as a DynamoDB description would say it: key
/// schema, attribute definitions, each index (name, keys, projection) and
/// the TTL attribute, in a form that compares.
fn template_table() -> serde_json::Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml"))
        .expect("template.yaml");
    let template: serde_norway::Value =
        serde_norway::from_str(&text).expect("template.yaml is YAML");
    let table = &template["Resources"]["UsersTable"]["Properties"];
    let text_of = |value: &serde_norway::Value| value.as_str().expect("a string").to_owned();
    let keys = |schema: &serde_norway::Value| -> Vec<(String, String)> {
        schema
            .as_sequence()
            .expect("a key schema")
            .iter()
            .map(|key| (text_of(&key["AttributeName"]), text_of(&key["KeyType"])))
            .collect()
    };
    let mut attributes: Vec<(String, String)> = table["AttributeDefinitions"]
        .as_sequence()
        .expect("attribute definitions")
        .iter()
        .map(|a| (text_of(&a["AttributeName"]), text_of(&a["AttributeType"])))
        .collect();
    attributes.sort();
    let mut indexes: Vec<serde_json::Value> = table["GlobalSecondaryIndexes"]
        .as_sequence()
        .expect("indexes")
        .iter()
        .map(|index| {
            let mut non_key: Vec<String> = index["Projection"]["NonKeyAttributes"]
                .as_sequence()
                .map(|names| names.iter().map(text_of).collect())
                .unwrap_or_default();
            non_key.sort();
            json!({
                "name": text_of(&index["IndexName"]),
                "keys": keys(&index["KeySchema"]),
                "projection": text_of(&index["Projection"]["ProjectionType"]),
                "nonKey": non_key,
            })
        })
        .collect();
    indexes.sort_by_key(|index| index["name"].to_string());
    json!({
        "keys": keys(&table["KeySchema"]),
        "attributes": attributes,
        "indexes": indexes,
        "ttl": text_of(&table["TimeToLiveSpecification"]["AttributeName"]),
    })
}

/// The same of the table the store creates, read back from the engine.
async fn created_table(store: &Store) -> serde_json::Value {
    let described = store
        .client()
        .describe_table()
        .table_name(store.table())
        .send()
        .await
        .expect("DescribeTable")
        .table
        .expect("a table");
    let keys = |schema: &[KeySchemaElement]| -> Vec<(String, String)> {
        schema
            .iter()
            .map(|key| {
                (
                    key.attribute_name().to_owned(),
                    key.key_type().as_str().to_owned(),
                )
            })
            .collect()
    };
    let mut attributes: Vec<(String, String)> = described
        .attribute_definitions()
        .iter()
        .map(|a| {
            (
                a.attribute_name().to_owned(),
                a.attribute_type().as_str().to_owned(),
            )
        })
        .collect();
    attributes.sort();
    let mut indexes: Vec<serde_json::Value> = described
        .global_secondary_indexes()
        .iter()
        .map(|index| {
            let projection = index.projection().expect("a projection");
            let mut non_key: Vec<String> = projection.non_key_attributes().to_vec();
            non_key.sort();
            json!({
                "name": index.index_name().unwrap_or_default(),
                "keys": keys(index.key_schema()),
                "projection": projection.projection_type().map(|p| p.as_str()).unwrap_or_default(),
                "nonKey": non_key,
            })
        })
        .collect();
    indexes.sort_by_key(|index| index["name"].to_string());
    let ttl = store
        .client()
        .describe_time_to_live()
        .table_name(store.table())
        .send()
        .await
        .expect("DescribeTimeToLive")
        .time_to_live_description
        .and_then(|ttl| ttl.attribute_name)
        .unwrap_or_default();
    json!({
        "keys": keys(described.key_schema()),
        "attributes": attributes,
        "indexes": indexes,
        "ttl": ttl,
    })
}

#[tokio::test]
async fn the_template_declares_the_table_the_store_creates() {
    // GIVEN the table as the store makes it on a real engine
    let test = users_api_tests::TestStore::new().await;
    // THEN template.yaml declares the same keys, attributes, indexes and TTL
    assert_eq!(template_table(), created_table(&test.store).await);
    // AND every index the store reads is among them
    let names: Vec<&str> = keys::INDEXES.iter().map(|index| index.name).collect();
    assert_eq!(
        template_table()["indexes"].as_array().unwrap().len(),
        names.len()
    );
    for name in names {
        assert!(
            template_table()
                .to_string()
                .contains(&format!("\"{name}\"")),
            "{name}"
        );
    }
}
