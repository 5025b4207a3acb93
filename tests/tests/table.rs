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
use shared::model::AccountId;
use shared::store::{Store, keys};
use users_api_tests::{TestApi, ids_of};

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
    let old_api = api.on_store(old.clone());
    let token = old
        .create_token(&AccountId::parse("acme").unwrap())
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..3 {
        let answer = old_api
            .post(
                "/users",
                &token,
                json!({"userId": format!("u{i}"), "attributes": {"default_email": format!("u{i}@example.com")}}),
            )
            .await;
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
    let listed = old_api.get("/users?sort.order=asc", &token).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    assert_eq!(ids_of(&listed.body), ids);
    let by_email = old_api
        .get(
            "/users?filters[0][field]=default_email&filters[0][operator]=eq&filters[0][value]=u1@example.com",
            &token,
        )
        .await;
    assert_eq!(ids_of(&by_email.body), [ids[1].clone()]);
    // AND starting again changes nothing
    old.ensure_table().await.expect("nothing is missing");
    old.delete_table().await.expect("the old table is removed");
}

#[test]
fn the_template_declares_the_indexes_the_code_creates_and_reads() {
    let template =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml"))
            .expect("template.yaml");
    let table = template
        .split("GlobalSecondaryIndexes:")
        .nth(1)
        .and_then(|rest| rest.split("PointInTimeRecoverySpecification:").next())
        .expect("the table's indexes");
    let declared: Vec<&str> = table.split("- IndexName: ").skip(1).collect();
    assert_eq!(declared.len(), keys::INDEXES.len(), "{table}");
    for index in keys::INDEXES {
        let found = declared
            .iter()
            .find(|block| block.lines().next().map(str::trim) == Some(index.name))
            .unwrap_or_else(|| panic!("{} is not in template.yaml", index.name));
        let compact: String = found.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            compact.contains(&format!("{{ AttributeName: {}, KeyType: HASH }}", index.pk))
                && compact.contains(&format!(
                    "{{ AttributeName: {}, KeyType: RANGE }}",
                    index.sk
                )),
            "{}: {compact}",
            index.name
        );
        let projection = match index.projects {
            None => "{ ProjectionType: ALL }".to_owned(),
            Some([]) => "{ ProjectionType: KEYS_ONLY }".to_owned(),
            Some(names) => format!(
                "ProjectionType: INCLUDE NonKeyAttributes: [{}]",
                names.join(", ")
            ),
        };
        assert!(compact.contains(&projection), "{}: {compact}", index.name);
    }
}
