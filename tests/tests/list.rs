//! `GET /users`: paging, sort, filters, match, the read budget and the indexes.

use std::collections::BTreeSet;

use http::StatusCode;
use serde_json::{Value, json};
use shared::filter::ListQuery;
use shared::model::AccountId;
use users_api_tests::{Client, NewUser, TestApi, assert_error, error_fields, ids_of, seed_users};

/// Creates `n` users in order (one bulk request per 100) and returns their ids in creation order.
async fn seed(client: &Client, n: usize, attributes: impl Fn(usize) -> Value) -> Vec<String> {
    let users = (0..n)
        .map(|i| NewUser::new(format!("user-{i:05}")).with_attributes(attributes(i)))
        .collect();
    client.create_users(users).await
}

/// Pages through `uri` (which has no `after`) and returns every id, in order.
async fn page_all(client: &Client, uri: &str) -> Vec<String> {
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..1000 {
        let sep = if uri.contains('?') { '&' } else { '?' };
        let page_uri = match &after {
            Some(after) => format!("{uri}{sep}after={after}"),
            None => uri.to_owned(),
        };
        let answer = client.get(&page_uri).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        assert_eq!(
            answer.body["count"].as_u64().unwrap() as usize,
            answer.body["data"].as_array().unwrap().len()
        );
        all.extend(ids_of(&answer.body));
        match answer.body["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => return all,
        }
    }
    panic!("paging did not end");
}

#[tokio::test]
async fn default_order_is_newest_first_and_pages_never_repeat_or_skip() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let ids = seed(&acme, 95, |i| json!({"default_name": format!("n{i}")})).await;
    let first = acme.get("/users").await.body;
    assert_eq!(first["count"], 40, "limit defaults to 40");
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(ids_of(&first), newest_first[..40]);
    assert_eq!(first["next"], newest_first[39]);
    assert_eq!(page_all(&acme, "/users?limit=7").await, newest_first);
    let oldest_first = page_all(&acme, "/users?sort.order=asc&limit=40").await;
    assert_eq!(oldest_first, ids);
    // Clients that page with the last id of a full page keep working.
    let page = acme
        .get(&format!("/users?limit=40&after={}", newest_first[39]))
        .await
        .body;
    assert_eq!(ids_of(&page), newest_first[40..80]);
}

#[tokio::test]
async fn the_last_page_says_next_null_even_when_exactly_full() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let ids = seed(&acme, 10, |_| json!({"a": "1"})).await;
    let page = acme.get("/users?limit=10").await.body;
    assert_eq!(page["count"], 10);
    assert_eq!(page["next"], Value::Null);
    let page = acme.get("/users?limit=5").await.body;
    assert_eq!(page["next"], ids[5]);
}

#[tokio::test]
async fn sort_parameters_in_dot_and_bracket_form() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let ids = seed(&acme, 5, |_| json!({"a": "1"})).await;
    let dot = acme
        .get("/users?sort.field=createdAt&sort.order=asc")
        .await
        .body;
    let bracket = acme
        .get("/users?sort%5Bfield%5D=createdAt&sort%5Border%5D=asc")
        .await
        .body;
    assert_eq!(ids_of(&dot), ids);
    assert_eq!(ids_of(&bracket), ids);
    let raw_bracket = acme
        .get("/users?sort[field]=lastSeen&sort[order]=asc")
        .await
        .body;
    assert_eq!(
        ids_of(&raw_bracket),
        ids,
        "lastSeen equals createdAt for new users"
    );
}

#[tokio::test]
async fn bad_list_parameters_are_400_naming_them() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=41", "limit"),
        ("limit=ten", "limit"),
        ("after=xyz", "after"),
        ("sort.field=name", "sort.field"),
        ("sort.order=up", "sort.order"),
        ("match=some", "match"),
        ("colour=red", "colour"),
        ("filters=notjson", "filters"),
    ] {
        let answer = acme.get(&format!("/users?{query}")).await;
        assert_error(&answer, 400);
        assert!(
            error_fields(&answer).iter().any(|f| f == field),
            "{query}: {:?}",
            error_fields(&answer)
        );
    }
    let answer = acme.get("/users?after=5c486eeebda7873576a379e4").await;
    assert_error(&answer, 400);
    assert_eq!(error_fields(&answer), ["after"]);
    let gt_on_banned = r#"/users?filters=[{"field":"banned","operator":"gt","value":true}]"#;
    assert_error(&acme.get(&gt_on_banned.replace('"', "%22")).await, 400);
    let six: Vec<Value> = (0..6)
        .map(|_| json!({"field": "default_name", "operator": "exists"}))
        .collect();
    let uri = format!("/users?filters={}", urlencode(&json!(six).to_string()));
    assert_error(&acme.get(&uri).await, 400);
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn filters_in_json_and_bracket_form_agree() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let ids = seed(
        &acme,
        6,
        |i| json!({"default_country": if i % 2 == 0 { "PL" } else { "DE" }}),
    )
    .await;
    let json_form = format!(
        "/users?sort.order=asc&filters={}",
        urlencode(r#"[{"field":"default_country","operator":"eq","value":"PL"}]"#)
    );
    let bracket_form = "/users?sort.order=asc&filters[0][field]=default_country&filters[0][operator]=eq&filters[0][value]=PL";
    let a = ids_of(&acme.get(&json_form).await.body);
    let b = ids_of(&acme.get(bracket_form).await.body);
    assert_eq!(a, vec![ids[0].clone(), ids[2].clone(), ids[4].clone()]);
    assert_eq!(a, b);
}

#[tokio::test]
async fn match_any_and_all() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let ids = seed(&acme, 4, |i| {
        json!({"default_country": if i < 2 { "PL" } else { "DE" }, "default_language": if i % 2 == 0 { "pl" } else { "en" }})
    })
    .await;
    let base = "/users?sort.order=asc&filters[0][field]=default_country&filters[0][operator]=eq&filters[0][value]=PL&filters[1][field]=default_language&filters[1][operator]=eq&filters[1][value]=pl";
    assert_eq!(ids_of(&acme.get(base).await.body), vec![ids[0].clone()]);
    assert_eq!(
        ids_of(&acme.get(&format!("{base}&match=all")).await.body),
        vec![ids[0].clone()]
    );
    assert_eq!(
        ids_of(&acme.get(&format!("{base}&match=any")).await.body),
        vec![ids[0].clone(), ids[1].clone(), ids[2].clone()]
    );
}

/// The DynamoDB translation of every operator agrees with the reference
/// evaluator (`FilterSet::matches`) on a varied population.
#[tokio::test]
async fn store_filters_agree_with_the_reference_evaluator() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let account = AccountId::parse("acme").unwrap();
    seed(&acme, 24, |i| {
        let mut attributes = serde_json::Map::new();
        if i % 3 != 0 {
            attributes.insert(
                "default_city".into(),
                json!(["Paris", "Par", "Berlin", "paris"][i % 4]),
            );
        }
        if i % 4 != 1 {
            attributes.insert("tier-level".into(), json!(format!("t{}", i % 5)));
        }
        attributes.insert("default_name".into(), json!(format!("User {i}")));
        Value::Object(attributes)
    })
    .await;
    let everyone = api
        .store
        .list_users(&account, &ListQuery::parse(Some("limit=40")).unwrap())
        .await
        .unwrap()
        .users;
    assert_eq!(everyone.len(), 24);
    let queries = [
        "filters[0][field]=default_city&filters[0][operator]=eq&filters[0][value]=Paris",
        "filters[0][field]=default_city&filters[0][operator]=ne&filters[0][value]=Paris",
        "filters[0][field]=default_city&filters[0][operator]=contains&filters[0][value]=ar",
        "filters[0][field]=default_city&filters[0][operator]=notContains&filters[0][value]=ar",
        "filters[0][field]=default_city&filters[0][operator]=startsWith&filters[0][value]=Par",
        "filters[0][field]=default_city&filters[0][operator]=exists",
        "filters[0][field]=default_city&filters[0][operator]=notExists",
        "filters[0][field]=tier-level&filters[0][operator]=eq&filters[0][value]=t2",
        "filters[0][field]=userId&filters[0][operator]=startsWith&filters[0][value]=user-0001",
        "filters[0][field]=userId&filters[0][operator]=ne&filters[0][value]=user-00003",
        "filters[0][field]=banned&filters[0][operator]=eq&filters[0][value]=false",
        "filters[0][field]=banned&filters[0][operator]=ne&filters[0][value]=false",
        "filters[0][field]=conversations&filters[0][operator]=lte&filters[0][value]=0",
        "filters[0][field]=conversations&filters[0][operator]=gt&filters[0][value]=0",
        "filters[0][field]=createdAt&filters[0][operator]=gte&filters[0][value]=2000-01-01T00:00:00Z",
        "filters[0][field]=lastSeen&filters[0][operator]=lt&filters[0][value]=2000-01-01",
        "match=any&filters[0][field]=default_city&filters[0][operator]=eq&filters[0][value]=Berlin&filters[1][field]=tier-level&filters[1][operator]=notExists",
        "match=all&filters[0][field]=default_city&filters[0][operator]=contains&filters[0][value]=a&filters[1][field]=tier-level&filters[1][operator]=ne&filters[1][value]=t1",
    ];
    for query in queries {
        let parsed = ListQuery::parse(Some(&format!("limit=40&{query}"))).unwrap();
        let expected: Vec<String> = everyone
            .iter()
            .filter(|u| parsed.filters.matches(u))
            .map(|u| u.id.to_string())
            .collect();
        let answer = acme.get(&format!("/users?limit=40&{query}")).await;
        assert_eq!(answer.status, StatusCode::OK, "{query}: {}", answer.text);
        assert_eq!(ids_of(&answer.body), expected, "{query}");
    }
}

/// `count` users loaded straight into the table, with `attributes(i)`.
async fn bulk_seed(
    api: &TestApi,
    count: usize,
    attributes: impl Fn(usize) -> Value,
) -> Vec<String> {
    let users = (0..count)
        .map(|i| NewUser::new(format!("user-{i:05}")).with_attributes(attributes(i)))
        .collect();
    seed_users(&api.store, "acme", users).await
}

#[tokio::test]
async fn a_sparse_filter_spends_the_read_budget_and_says_where_to_go_on() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let n = shared::store::READ_BUDGET + 300;
    let ids = bulk_seed(
        &api,
        n,
        |i| json!({"default_country": if i == 5 || i == n - 3 { "PL" } else { "DE" }}),
    )
    .await;
    let uri =
        "/users?filters[0][field]=default_country&filters[0][operator]=eq&filters[0][value]=PL";
    let first = acme.get(uri).await.body;
    assert_eq!(
        ids_of(&first),
        vec![ids[n - 3].clone()],
        "the newest match is on the first page"
    );
    assert!(
        first["next"].is_string(),
        "the budget ran out before the end: {first}"
    );
    let all = page_all(&acme, uri).await;
    assert_eq!(all, vec![ids[n - 3].clone(), ids[5].clone()]);
}

#[tokio::test]
async fn equality_on_user_id_and_email_is_answered_from_an_index() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let ids = bulk_seed(
        &api,
        300,
        |i| json!({"default_email": format!("user{}@example.com", i % 150)}),
    )
    .await;
    let reads_before = api.store.items_read();
    let by_email = acme
        .get("/users?sort.order=asc&filters[0][field]=default_email&filters[0][operator]=eq&filters[0][value]=user7@example.com")
        .await
        .body;
    assert_eq!(ids_of(&by_email), vec![ids[7].clone(), ids[157].clone()]);
    let by_user_id = acme
        .get("/users?filters[0][field]=userId&filters[0][operator]=eq&filters[0][value]=user-00042")
        .await
        .body;
    assert_eq!(ids_of(&by_user_id), vec![ids[42].clone()]);
    let read = api.store.items_read() - reads_before;
    assert!(read < 20, "index lookups read {read} items");
    // Combined with another filter, the lookup still narrows first.
    let combined = acme
        .get("/users?filters[0][field]=userId&filters[0][operator]=eq&filters[0][value]=user-00042&filters[1][field]=banned&filters[1][operator]=eq&filters[1][value]=true")
        .await
        .body;
    assert_eq!(combined["count"], 0);
}

#[tokio::test]
async fn email_index_follows_updates() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let id = acme
        .create_user(NewUser::new("u").with("default_email", "old@x.io"))
        .await;
    acme.put(
        &format!("/users/{id}"),
        json!({"attributes": {"default_email": "new@x.io"}}),
    )
    .await;
    let query = |email: &str| {
        format!(
            "/users?filters[0][field]=default_email&filters[0][operator]=eq&filters[0][value]={email}"
        )
    };
    assert_eq!(acme.get(&query("old@x.io")).await.body["count"], 0);
    assert_eq!(acme.get(&query("new@x.io")).await.body["count"], 1);
    acme.put(
        &format!("/users/{id}"),
        json!({"attributes": {"default_email": null}}),
    )
    .await;
    assert_eq!(acme.get(&query("new@x.io")).await.body["count"], 0);
}

#[tokio::test]
async fn index_lookups_page_like_the_walk() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let ids = seed(&acme, 9, |_| json!({"default_email": "same@x.io"})).await;
    let uri = "/users?limit=4&filters[0][field]=default_email&filters[0][operator]=eq&filters[0][value]=same@x.io";
    let all = page_all(&acme, uri).await;
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(all, newest_first);
    let unique: BTreeSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), 9);
}

/// 150 users, every third in `segment`, every other on the pro plan; their
/// ids in creation order.
async fn seed_members(api: &TestApi, segment: &str) -> Vec<String> {
    let users = (0..150)
        .map(|i| {
            let user = NewUser::new(format!("user-{i:05}"))
                .with("plan", if i % 2 == 0 { "pro" } else { "free" });
            if i % 3 == 0 {
                user.in_segment(segment)
            } else {
                user
            }
        })
        .collect();
    seed_users(&api.store, "acme", users).await
}

fn members_uri(segment: &str, order: &str, more: &str) -> String {
    format!(
        "/users?limit=7&sort.order={order}&filters[0][field]=segments&filters[0][operator]=eq&filters[0][value]={segment}{more}"
    )
}

#[tokio::test]
async fn a_segment_is_paged_in_creation_order_from_its_members_alone() {
    // GIVEN 150 users, 50 of them in a segment
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let segment = acme.create_segment("vip").await;
    let ids = seed_members(&api, &segment).await;
    let members: Vec<String> = ids.iter().step_by(3).cloned().collect();
    let newest_first: Vec<String> = members.iter().rev().cloned().collect();

    // WHEN its members are paged, 7 at a time, both ways
    // THEN every member comes once, in order
    let desc = page_all(&acme, &members_uri(&segment, "desc", "")).await;
    assert_eq!(desc, newest_first);
    let asc = page_all(&acme, &members_uri(&segment, "asc", "")).await;
    assert_eq!(asc, members);
    // and with a second filter, the members that also pass it
    let pro = "&filters[1][field]=plan&filters[1][operator]=eq&filters[1][value]=pro";
    let pro_members: Vec<String> = ids.iter().step_by(6).rev().cloned().collect();
    assert_eq!(
        page_all(&acme, &members_uri(&segment, "desc", pro)).await,
        pro_members
    );

    // AND a page reads its members and their profiles, not the account:
    // 8 members (one tells that more follow), 8 profiles, the segment, the token.
    let before = api.store.meter();
    let page = acme.get(&members_uri(&segment, "desc", "")).await;
    let spent = api.store.meter() - before;
    assert_eq!(ids_of(&page.body), newest_first[..7]);
    assert_eq!(page.body["next"], newest_first[6].as_str());
    assert!(spent.items_read <= 18, "{spent:?}");
    // the acme.token(), the members, the profiles with the segment
    assert_eq!(spent.requests, 3, "{spent:?}");
}

#[tokio::test]
async fn a_segment_from_before_ordered_memberships_is_listed_all_the_same() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use shared::store::keys;
    // GIVEN a segment and memberships as they were stored before memberships
    // carried the creation time (the member's bare id as index sort key)
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let segment = acme.create_segment("vip").await;
    let ids = seed_members(&api, &segment).await;
    let account = AccountId::parse("acme").unwrap();
    let segment_id = segment.parse().unwrap();
    let client = api.store.client();
    let key = |pk: String, sk: String| {
        std::collections::HashMap::from([
            (keys::PK.to_owned(), AttributeValue::S(pk)),
            (keys::SK.to_owned(), AttributeValue::S(sk)),
        ])
    };
    client
        .update_item()
        .table_name(api.store.table())
        .set_key(Some(key(
            keys::segment_pk(&account, segment_id),
            keys::SEGMENT_SK.to_owned(),
        )))
        .update_expression("REMOVE ordered")
        .send()
        .await
        .unwrap();
    let members: Vec<String> = ids.iter().step_by(3).cloned().collect();
    for member in &members {
        client
            .update_item()
            .table_name(api.store.table())
            .set_key(Some(key(
                keys::user_pk(&account, member.parse().unwrap()),
                keys::membership_sk(segment_id),
            )))
            .update_expression("SET gsi4sk = :id")
            .expression_attribute_values(":id", AttributeValue::S(member.clone()))
            .send()
            .await
            .unwrap();
    }
    // WHEN its members are paged THEN every member comes once, in order
    let desc = page_all(&acme, &members_uri(&segment, "desc", "")).await;
    assert_eq!(desc, members.iter().rev().cloned().collect::<Vec<_>>());
    let asc = page_all(&acme, &members_uri(&segment, "asc", "")).await;
    assert_eq!(asc, members);
}
