//! The grammar, both query forms and the evaluator, unit-tested together.

use super::*;
use crate::model::sample_user;
use serde_json::json;

const SEG: &str = "5c486eeebda7873576a379e4";
const OTHER_SEG: &str = "5c486eeebda7873576a379e5";

fn parse(value: Value) -> Result<Filter, Vec<FieldError>> {
    Filter::parse_json(&value, "filters.0")
}

fn error_fields(result: Result<Filter, Vec<FieldError>>) -> Vec<String> {
    result.unwrap_err().into_iter().map(|e| e.field).collect()
}

fn query_errors(raw: &str) -> Vec<FieldError> {
    match ListQuery::parse(Some(raw)) {
        Err(ApiError::Validation { errors, .. }) => errors,
        other => panic!("{raw}: expected a validation error, got {other:?}"),
    }
}

fn query_error_fields(raw: &str) -> Vec<String> {
    query_errors(raw).into_iter().map(|e| e.field).collect()
}

fn filter(field: FilterField, operator: Operator, value: FilterValue) -> Filter {
    Filter {
        field,
        operator,
        value,
    }
}

fn attr(key: &str) -> FilterField {
    FilterField::Attribute(key.to_owned())
}

#[test]
fn filters_on_activity_need_the_profile() {
    let set = |filters: Vec<Filter>| FilterSet {
        filters,
        match_mode: Match::Any,
    };
    let country = filter(
        attr("default_country"),
        OpEq,
        FilterValue::Text("PL".into()),
    );
    let seen = filter(
        FilterField::LastSeen,
        Gt,
        FilterValue::Date(Timestamp::from_millis(0)),
    );
    let conversations = filter(FilterField::Conversations, Gt, FilterValue::Number(1));
    assert!(set(vec![]).ignores_activity());
    assert!(set(vec![country.clone()]).ignores_activity());
    assert!(!set(vec![country.clone(), seen]).ignores_activity());
    assert!(!set(vec![conversations]).ignores_activity());
}

fn text(s: &str) -> FilterValue {
    FilterValue::Text(s.to_owned())
}

/// A sample value of the right JSON type for each field.
fn good_value(field: &str) -> Value {
    match field {
        "banned" => json!(true),
        "segments" => json!(SEG),
        "createdAt" | "lastSeen" => json!("2019-01-23 13:32:30.163Z"),
        "conversations" => json!(3),
        _ => json!("x"),
    }
}

// ---- names -----------------------------------------------------------

#[test]
fn names_round_trip() {
    for op in Operator::ALL {
        assert_eq!(Operator::parse(op.as_str()), Some(op));
    }
    assert_eq!(Operator::parse("EQ"), None);
    assert_eq!(Operator::parse("startswith"), None);
    assert_eq!(Match::parse("all"), Some(Match::All));
    assert_eq!(Match::parse("any"), Some(Match::Any));
    assert_eq!(Match::parse("ANY"), None);
    assert_eq!(Match::parse(""), None);
    assert_eq!(SortField::parse("createdAt"), Some(SortField::CreatedAt));
    assert_eq!(SortField::parse("lastSeen"), Some(SortField::LastSeen));
    assert_eq!(SortField::parse("createdat"), None);
    assert_eq!(SortOrder::parse("asc"), Some(SortOrder::Asc));
    assert_eq!(SortOrder::parse("desc"), Some(SortOrder::Desc));
    assert_eq!(SortOrder::parse("up"), None);
}

#[test]
fn field_names() {
    assert_eq!(FilterField::parse("userId"), Ok(FilterField::UserId));
    assert_eq!(
        FilterField::parse("conversations"),
        Ok(FilterField::Conversations)
    );
    assert_eq!(
        FilterField::parse("default_source"),
        Ok(attr("default_source"))
    );
    assert_eq!(
        FilterField::parse("group-selected.x_1"),
        Ok(attr("group-selected.x_1"))
    );
    assert_eq!(
        FilterField::parse("default_colour"),
        Err(FieldNameError::UnknownDefault)
    );
    assert_eq!(
        FilterField::parse("has space"),
        Err(FieldNameError::Invalid)
    );
    assert_eq!(FilterField::parse(""), Err(FieldNameError::Invalid));
    assert_eq!(
        FilterField::parse(&"k".repeat(129)),
        Err(FieldNameError::Invalid)
    );
}

// ---- Filter::parse_json -----------------------------------------------

#[test]
fn every_field_operator_combination_is_allowed_or_refused_on_operator() {
    let attributes: &[&str] = &[
        "eq",
        "ne",
        "contains",
        "notContains",
        "startsWith",
        "exists",
        "notExists",
    ];
    let allowed: [(&str, &[&str]); 8] = [
        ("default_name", attributes),
        ("plan", attributes),
        (
            "userId",
            &["eq", "ne", "contains", "notContains", "startsWith"],
        ),
        ("banned", &["eq", "ne"]),
        ("segments", &["eq", "ne", "exists", "notExists"]),
        ("createdAt", &["eq", "ne", "gt", "gte", "lt", "lte"]),
        ("lastSeen", &["eq", "ne", "gt", "gte", "lt", "lte"]),
        ("conversations", &["eq", "ne", "gt", "gte", "lt", "lte"]),
    ];
    for (field, ops) in allowed {
        for op in Operator::ALL {
            let name = op.as_str();
            let mut object = json!({"field": field, "operator": name});
            if op.takes_value() {
                object["value"] = good_value(field);
            }
            let result = parse(object);
            if ops.contains(&name) {
                let parsed = result.unwrap_or_else(|e| panic!("{field} {name}: {e:?}"));
                assert_eq!(parsed.operator, op);
                assert_eq!(parsed.field.name(), field);
            } else {
                let errors = result.expect_err(&format!("{field} {name} must be refused"));
                assert_eq!(errors.len(), 1, "{field} {name}: {errors:?}");
                assert_eq!(errors[0].field, "filters.0.operator");
                assert!(
                    errors[0].message.contains(&ops.join(", ")),
                    "{}",
                    errors[0].message
                );
            }
        }
    }
}

#[test]
fn gt_on_banned_names_the_accepted_operators() {
    let errors = parse(json!({"field": "banned", "operator": "gt", "value": true})).unwrap_err();
    assert_eq!(errors[0].field, "filters.0.operator");
    assert!(
        errors[0].message.contains("eq, ne"),
        "{}",
        errors[0].message
    );
}

#[test]
fn parses_typed_values() {
    let f = parse(json!({"field": "default_country", "operator": "eq", "value": "PL"})).unwrap();
    assert_eq!(f, filter(attr("default_country"), OpEq, text("PL")));
    let f = parse(json!({"field": "userId", "operator": "startsWith", "value": "07"})).unwrap();
    assert_eq!(f, filter(FilterField::UserId, StartsWith, text("07")));
    let f = parse(json!({"field": "banned", "operator": "eq", "value": "false"})).unwrap();
    assert_eq!(f.value, FilterValue::Bool(false));
    let f = parse(json!({"field": "banned", "operator": "ne", "value": true})).unwrap();
    assert_eq!(f.value, FilterValue::Bool(true));
    let f = parse(json!({"field": "segments", "operator": "eq", "value": SEG})).unwrap();
    assert_eq!(f.value, FilterValue::Segment(SEG.parse().unwrap()));
    let f = parse(
        json!({"field": "createdAt", "operator": "gte", "value": "2019-01-23T13:32:30.163Z"}),
    )
    .unwrap();
    assert_eq!(
        f.value,
        FilterValue::Date(Timestamp::from_millis(1_548_250_350_163))
    );
    let f = parse(json!({"field": "lastSeen", "operator": "lt", "value": "2019-01-23"})).unwrap();
    assert_eq!(
        f.value,
        FilterValue::Date(Timestamp::parse("2019-01-23").unwrap())
    );
    let f = parse(json!({"field": "conversations", "operator": "gt", "value": 0})).unwrap();
    assert_eq!(f.value, FilterValue::Number(0));
    let f = parse(json!({"field": "conversations", "operator": "lte", "value": "12"})).unwrap();
    assert_eq!(f.value, FilterValue::Number(12));
    for (field, op) in [
        ("plan", "exists"),
        ("default_email", "notExists"),
        ("segments", "exists"),
        ("segments", "notExists"),
    ] {
        let f = parse(json!({"field": field, "operator": op})).unwrap();
        assert_eq!(f.value, FilterValue::None);
        let f = parse(json!({"field": field, "operator": op, "value": null})).unwrap();
        assert_eq!(f.value, FilterValue::None);
    }
    let long = "a".repeat(MAX_VALUE_CHARS);
    assert!(parse(json!({"field": "plan", "operator": "eq", "value": long})).is_ok());
    let long = "ż".repeat(MAX_USER_ID_CHARS);
    assert!(parse(json!({"field": "userId", "operator": "eq", "value": long})).is_ok());
}

#[test]
fn refuses_bad_values_on_value() {
    let cases = [
        json!({"field": "plan", "operator": "eq", "value": ""}),
        json!({"field": "plan", "operator": "eq", "value": "a".repeat(MAX_VALUE_CHARS + 1)}),
        json!({"field": "plan", "operator": "eq", "value": 5}),
        json!({"field": "plan", "operator": "contains", "value": ["a"]}),
        json!({"field": "plan", "operator": "eq"}),
        json!({"field": "plan", "operator": "eq", "value": null}),
        json!({"field": "plan", "operator": "exists", "value": "x"}),
        json!({"field": "userId", "operator": "eq", "value": ""}),
        json!({"field": "userId", "operator": "eq", "value": "u".repeat(MAX_USER_ID_CHARS + 1)}),
        json!({"field": "userId", "operator": "eq", "value": 17}),
        json!({"field": "banned", "operator": "eq", "value": "yes"}),
        json!({"field": "banned", "operator": "eq", "value": "True"}),
        json!({"field": "banned", "operator": "eq", "value": 1}),
        json!({"field": "banned", "operator": "eq"}),
        json!({"field": "segments", "operator": "eq", "value": "nope"}),
        json!({"field": "segments", "operator": "eq", "value": SEG.to_uppercase()}),
        json!({"field": "segments", "operator": "ne", "value": 5}),
        json!({"field": "segments", "operator": "eq"}),
        json!({"field": "segments", "operator": "exists", "value": SEG}),
        json!({"field": "createdAt", "operator": "gt", "value": "yesterday"}),
        json!({"field": "createdAt", "operator": "gt", "value": 1_548_250_350_163_i64}),
        json!({"field": "lastSeen", "operator": "lt", "value": "1548250350163"}),
        json!({"field": "conversations", "operator": "gt", "value": -1}),
        json!({"field": "conversations", "operator": "gt", "value": 1.5}),
        json!({"field": "conversations", "operator": "gt", "value": "1.0"}),
        json!({"field": "conversations", "operator": "gt", "value": "-1"}),
        json!({"field": "conversations", "operator": "gt", "value": "+1"}),
        json!({"field": "conversations", "operator": "gt", "value": ""}),
        json!({"field": "conversations", "operator": "gt", "value": u64::MAX}),
        json!({"field": "conversations", "operator": "gt", "value": true}),
    ];
    for case in cases {
        assert_eq!(
            error_fields(parse(case.clone())),
            ["filters.0.value"],
            "{case}"
        );
    }
}

#[test]
fn refuses_bad_fields_operators_and_keys() {
    assert_eq!(
        error_fields(parse(
            json!({"field": "default_colour", "operator": "eq", "value": "x"})
        )),
        ["filters.0.field"]
    );
    assert_eq!(
        error_fields(parse(
            json!({"field": "bad key", "operator": "eq", "value": "x"})
        )),
        ["filters.0.field"]
    );
    assert_eq!(
        error_fields(parse(json!({"field": 5, "operator": "eq", "value": "x"}))),
        ["filters.0.field"]
    );
    assert_eq!(
        error_fields(parse(json!({"operator": "eq", "value": "x"}))),
        ["filters.0.field"]
    );
    assert_eq!(
        error_fields(parse(
            json!({"field": "plan", "operator": "like", "value": "x"})
        )),
        ["filters.0.operator"]
    );
    assert_eq!(
        error_fields(parse(
            json!({"field": "plan", "operator": true, "value": "x"})
        )),
        ["filters.0.operator"]
    );
    assert_eq!(
        error_fields(parse(json!({"field": "plan", "value": "x"}))),
        ["filters.0.operator"]
    );
    assert_eq!(
        error_fields(parse(
            json!({"field": "plan", "operator": "eq", "value": "x", "colour": 1})
        )),
        ["filters.0.colour"]
    );
    // Everything wrong at once: every offending path is named.
    assert_eq!(
        error_fields(parse(
            json!({"field": "default_x", "operator": "like", "colour": 1})
        )),
        ["filters.0.field", "filters.0.operator", "filters.0.colour"]
    );
    assert_eq!(error_fields(parse(json!("eq"))), ["filters.0"]);
    assert_eq!(error_fields(parse(json!(null))), ["filters.0"]);
    let errors = parse(json!({"field": "plan", "operator": "gt", "value": "x"})).unwrap_err();
    assert_eq!(errors[0].field, "filters.0.operator");
    assert!(
        errors[0]
            .message
            .contains("eq, ne, contains, notContains, startsWith, exists, notExists")
    );
}

#[test]
fn filter_arrays() {
    let one = json!([{"field": "plan", "operator": "exists"}]);
    assert_eq!(parse_filters_json(&one, "filters").unwrap().len(), 1);
    let five = Value::Array(vec![one[0].clone(); 5]);
    assert_eq!(parse_filters_json(&five, "filters").unwrap().len(), 5);
    let six = Value::Array(vec![one[0].clone(); 6]);
    let errors = parse_filters_json(&six, "filters").unwrap_err();
    assert_eq!(
        errors.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(),
        ["filters"]
    );
    assert_eq!(
        parse_filters_json(&json!([]), "filters").unwrap_err()[0].field,
        "filters"
    );
    assert_eq!(
        parse_filters_json(&json!({}), "filters").unwrap_err()[0].field,
        "filters"
    );
    let mixed = json!([
        {"field": "plan", "operator": "gt", "value": "x"},
        {"field": "plan", "operator": "eq", "value": "ok"},
        {"field": "banned", "operator": "eq", "value": "maybe", "colour": "red"},
    ]);
    let fields: Vec<String> = parse_filters_json(&mixed, "filters")
        .unwrap_err()
        .into_iter()
        .map(|e| e.field)
        .collect();
    assert_eq!(
        fields,
        ["filters.0.operator", "filters.2.value", "filters.2.colour"]
    );
}

#[test]
fn sort_from_json() {
    assert_eq!(Sort::parse_json(&json!({}), "sort"), Ok(Sort::default()));
    assert_eq!(
        Sort::parse_json(&json!({"field": "lastSeen", "order": "asc"}), "sort"),
        Ok(Sort {
            field: SortField::LastSeen,
            order: SortOrder::Asc
        })
    );
    assert_eq!(
        Sort::parse_json(&json!({"order": "asc", "field": null}), "sort"),
        Ok(Sort {
            field: SortField::CreatedAt,
            order: SortOrder::Asc
        })
    );
    let errors =
        Sort::parse_json(&json!({"field": "name", "order": 1, "by": "x"}), "sort").unwrap_err();
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["sort.field", "sort.order", "sort.by"]);
    assert_eq!(
        Sort::parse_json(&json!("createdAt"), "sort").unwrap_err()[0].field,
        "sort"
    );
}

// ---- ListQuery::parse -------------------------------------------------

#[test]
fn empty_query_takes_defaults() {
    let expected = ListQuery {
        limit: 40,
        after: None,
        sort: Sort {
            field: SortField::CreatedAt,
            order: SortOrder::Desc,
        },
        filters: FilterSet {
            match_mode: Match::All,
            filters: vec![],
        },
    };
    assert_eq!(ListQuery::parse(None).unwrap(), expected);
    assert_eq!(ListQuery::parse(Some("")).unwrap(), expected);
    assert_eq!(ListQuery::default(), expected);
}

#[test]
fn parses_every_parameter() {
    let q = ListQuery::parse(Some(&format!(
        "limit=7&after={SEG}&sort.field=lastSeen&sort.order=asc&match=any"
    )))
    .unwrap();
    assert_eq!(q.limit, 7);
    assert_eq!(q.after, Some(SEG.parse().unwrap()));
    assert_eq!(
        q.sort,
        Sort {
            field: SortField::LastSeen,
            order: SortOrder::Asc
        }
    );
    assert_eq!(q.filters.match_mode, Match::Any);
    assert!(q.filters.filters.is_empty());
    let bracket = ListQuery::parse(Some(&format!(
        "limit=7&after={SEG}&sort%5Bfield%5D=lastSeen&sort[order]=asc&match=any"
    )))
    .unwrap();
    assert_eq!(bracket, q);
}

#[test]
fn limit_bounds() {
    assert_eq!(ListQuery::parse(Some("limit=1")).unwrap().limit, 1);
    assert_eq!(ListQuery::parse(Some("limit=40")).unwrap().limit, 40);
    for bad in [
        "0",
        "41",
        "abc",
        "",
        "-1",
        "+5",
        "4.0",
        "99999999999999999999",
    ] {
        assert_eq!(
            query_error_fields(&format!("limit={bad}")),
            ["limit"],
            "{bad}"
        );
    }
}

#[test]
fn after_must_be_an_id() {
    for bad in [
        "",
        "xyz",
        "5C486EEEBDA7873576A379E4",
        "5c486eeebda7873576a379e",
    ] {
        assert_eq!(
            query_error_fields(&format!("after={bad}")),
            ["after"],
            "{bad}"
        );
    }
}

#[test]
fn bad_sort_and_match() {
    assert_eq!(query_error_fields("sort.field=name"), ["sort.field"]);
    assert_eq!(query_error_fields("sort[order]=up"), ["sort.order"]);
    assert_eq!(query_error_fields("match=some"), ["match"]);
}

#[test]
fn unknown_and_duplicate_parameters() {
    assert_eq!(query_error_fields("page=2"), ["page"]);
    assert_eq!(query_error_fields("sort=createdAt"), ["sort"]);
    assert_eq!(query_error_fields("filters[0]=x"), ["filters[0]"]);
    assert_eq!(
        query_error_fields("filters[a][field]=x"),
        ["filters[a][field]"]
    );
    assert_eq!(
        query_error_fields("filters[01][field]=x"),
        ["filters[01][field]"]
    );
    assert_eq!(query_error_fields("limit=5&limit=6"), ["limit"]);
    assert_eq!(
        query_error_fields("sort.field=lastSeen&sort[field]=lastSeen"),
        ["sort.field"]
    );
    assert_eq!(query_error_fields("match=any&match=any"), ["match"]);
    assert_eq!(
        query_error_fields(
            "filters[0][field]=plan&filters[0][field]=plan&filters[0][operator]=exists"
        ),
        ["filters.0.field"]
    );
    // Every offending parameter is named.
    assert_eq!(
        query_error_fields("limit=0&after=x&colour=red&match=no"),
        ["limit", "after", "colour", "match"]
    );
}

#[test]
fn both_filter_forms_give_the_same_query() {
    let json = r#"[{"field":"default_country","operator":"eq","value":"PL"},{"field":"banned","operator":"eq","value":false},{"field":"conversations","operator":"gte","value":2},{"field":"segments","operator":"exists"},{"field":"createdAt","operator":"lt","value":"2019-01-23 13:32:30.163Z"}]"#;
    let encoded: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("match", "any")
        .append_pair("filters", json)
        .finish();
    let from_json = ListQuery::parse(Some(&encoded)).unwrap();
    let bracket = "match=any\
        &filters[0][field]=default_country&filters[0][operator]=eq&filters[0][value]=PL\
        &filters[1][field]=banned&filters[1][operator]=eq&filters[1][value]=false\
        &filters[2][field]=conversations&filters[2][operator]=gte&filters[2][value]=2\
        &filters[3][field]=segments&filters[3][operator]=exists\
        &filters[4][field]=createdAt&filters[4][operator]=lt&filters[4][value]=2019-01-23%2013%3A32%3A30.163Z";
    let from_brackets = ListQuery::parse(Some(bracket)).unwrap();
    assert_eq!(from_json, from_brackets);
    assert_eq!(from_json.filters.match_mode, Match::Any);
    assert_eq!(from_json.filters.filters.len(), 5);
    assert_eq!(
        from_json.filters.filters[0],
        filter(attr("default_country"), OpEq, text("PL"))
    );
    assert_eq!(from_json.filters.filters[3].value, FilterValue::None);
    // Percent-encoded brackets, any parameter order.
    let shuffled = "filters%5B0%5D%5Bvalue%5D=PL&filters%5B0%5D%5Boperator%5D=eq&filters%5B0%5D%5Bfield%5D=default_country";
    let unencoded =
        "filters=[{\"field\":\"default_country\",\"operator\":\"eq\",\"value\":\"PL\"}]";
    assert_eq!(
        ListQuery::parse(Some(shuffled)).unwrap(),
        ListQuery::parse(Some(unencoded)).unwrap()
    );
}

#[test]
fn bracket_exists_with_empty_value_means_no_value() {
    let q = ListQuery::parse(Some(
        "filters[0][field]=plan&filters[0][operator]=notExists&filters[0][value]=",
    ))
    .unwrap();
    assert_eq!(q.filters.filters[0].value, FilterValue::None);
    assert_eq!(
        query_error_fields("filters[0][field]=plan&filters[0][operator]=eq&filters[0][value]="),
        ["filters.0.value"]
    );
}

#[test]
fn filter_count_gaps_and_mixing() {
    let six_json = format!(
        "filters={}",
        serde_json::to_string(&vec![json!({"field": "plan", "operator": "exists"}); 6]).unwrap()
    );
    assert_eq!(query_error_fields(&six_json), ["filters"]);
    let mut six_brackets = String::new();
    for i in 0..6 {
        six_brackets.push_str(&format!(
            "&filters[{i}][field]=plan&filters[{i}][operator]=exists"
        ));
    }
    assert_eq!(query_error_fields(&six_brackets[1..]), ["filters"]);
    assert_eq!(
        query_error_fields(
            "filters[0][field]=plan&filters[0][operator]=exists&filters[2][field]=plan&filters[2][operator]=exists"
        ),
        ["filters"]
    );
    assert_eq!(
        query_error_fields("filters[1][field]=plan&filters[1][operator]=exists"),
        ["filters"]
    );
    assert_eq!(
        query_error_fields("filters[99999999999999999999999][field]=plan"),
        ["filters"]
    );
    assert_eq!(
        query_error_fields(
            r#"filters=[{"field":"plan","operator":"exists"}]&filters[0][field]=plan&filters[0][operator]=exists"#
        ),
        ["filters"]
    );
    assert_eq!(query_error_fields("filters=[]"), ["filters"]);
    assert_eq!(query_error_fields("filters=notjson"), ["filters"]);
    assert_eq!(query_error_fields("filters="), ["filters"]);
    assert_eq!(
        query_error_fields(r#"filters={"field":"plan"}"#),
        ["filters"]
    );
}

#[test]
fn filter_errors_inside_the_query_are_named_by_path() {
    assert_eq!(
        query_error_fields(
            "filters[0][field]=banned&filters[0][operator]=gt&filters[0][value]=true&filters[0][colour]=red"
        ),
        ["filters.0.operator", "filters.0.colour"]
    );
    assert_eq!(
        query_error_fields(
            r#"filters=[{"field":"plan","operator":"exists"},{"field":"default_x","operator":"eq","value":"1"}]"#
        ),
        ["filters.1.field"]
    );
    assert_eq!(
        query_error_fields(
            "filters[0][field]=conversations&filters[0][operator]=gt&filters[0][value]=lots&limit=0"
        ),
        ["limit", "filters.0.value"]
    );
}

#[test]
fn match_without_filters_is_fine() {
    let q = ListQuery::parse(Some("match=any")).unwrap();
    assert_eq!(q.filters.match_mode, Match::Any);
    assert!(q.filters.is_empty());
}

// ---- evaluation -------------------------------------------------------

#[test]
fn text_truth_table_on_set_and_unset_attributes() {
    let user = sample_user(); // default_name = "Joe", default_country unset
    let cases: [(Operator, &str, bool, bool); 14] = [
        // operator, value, result when set to "Joe", result when unset
        (OpEq, "Joe", true, false),
        (OpEq, "joe", false, false),
        (Ne, "Joe", false, true),
        (Ne, "Ann", true, true),
        (Contains, "o", true, false),
        (Contains, "O", false, false),
        (NotContains, "o", false, true),
        (NotContains, "x", true, true),
        (StartsWith, "Jo", true, false),
        (StartsWith, "jo", false, false),
        (StartsWith, "oe", false, false),
        (Exists, "", true, false),
        (NotExists, "", false, true),
        (Gt, "A", false, false),
    ];
    for (op, value, when_set, when_unset) in cases {
        let value = if op.takes_value() {
            text(value)
        } else {
            FilterValue::None
        };
        let set = filter(attr("default_name"), op, value.clone());
        let unset = filter(attr("default_country"), op, value.clone());
        assert_eq!(set.matches(&user), when_set, "{op} {value:?} on set");
        assert_eq!(unset.matches(&user), when_unset, "{op} {value:?} on unset");
    }
}

#[test]
fn user_id_banned_segments_dates_and_conversations() {
    let mut user = sample_user();
    let uid = user.user_id.clone();
    assert!(filter(FilterField::UserId, OpEq, text(&uid)).matches(&user));
    assert!(!filter(FilterField::UserId, Ne, text(&uid)).matches(&user));
    assert!(filter(FilterField::UserId, Contains, text("6aaa")).matches(&user));
    assert!(!filter(FilterField::UserId, Contains, text("6AAA")).matches(&user));
    assert!(filter(FilterField::UserId, NotContains, text("zzz")).matches(&user));
    assert!(filter(FilterField::UserId, StartsWith, text("0735")).matches(&user));

    assert!(filter(FilterField::Banned, OpEq, FilterValue::Bool(false)).matches(&user));
    assert!(!filter(FilterField::Banned, Ne, FilterValue::Bool(false)).matches(&user));
    user.banned = true;
    assert!(filter(FilterField::Banned, OpEq, FilterValue::Bool(true)).matches(&user));
    assert!(filter(FilterField::Banned, Ne, FilterValue::Bool(false)).matches(&user));

    let seg: ObjectId = SEG.parse().unwrap();
    let other: ObjectId = OTHER_SEG.parse().unwrap();
    let eq = filter(FilterField::Segments, OpEq, FilterValue::Segment(seg));
    let ne = filter(FilterField::Segments, Ne, FilterValue::Segment(seg));
    let exists = filter(FilterField::Segments, Exists, FilterValue::None);
    let not_exists = filter(FilterField::Segments, NotExists, FilterValue::None);
    assert!(
        !eq.matches(&user)
            && ne.matches(&user)
            && !exists.matches(&user)
            && not_exists.matches(&user)
    );
    user.segments.insert(other);
    assert!(
        !eq.matches(&user)
            && ne.matches(&user)
            && exists.matches(&user)
            && !not_exists.matches(&user)
    );
    user.segments.insert(seg);
    assert!(
        eq.matches(&user)
            && !ne.matches(&user)
            && exists.matches(&user)
            && !not_exists.matches(&user)
    );

    let at = user.created_at;
    let before = Timestamp::from_millis(at.millis() - 1);
    let after = Timestamp::from_millis(at.millis() + 1);
    for (op, t, expected) in [
        (OpEq, at, true),
        (OpEq, after, false),
        (Ne, at, false),
        (Ne, before, true),
        (Gt, before, true),
        (Gt, at, false),
        (Gte, at, true),
        (Gte, after, false),
        (Lt, after, true),
        (Lt, at, false),
        (Lte, at, true),
        (Lte, before, false),
    ] {
        assert_eq!(
            filter(FilterField::CreatedAt, op, FilterValue::Date(t)).matches(&user),
            expected,
            "createdAt {op} {t}"
        );
    }
    user.last_seen = after;
    assert!(filter(FilterField::LastSeen, Gt, FilterValue::Date(at)).matches(&user));
    assert!(!filter(FilterField::LastSeen, Lte, FilterValue::Date(at)).matches(&user));

    user.conversations = 3;
    for (op, n, expected) in [
        (OpEq, 3, true),
        (OpEq, 2, false),
        (Ne, 3, false),
        (Ne, 0, true),
        (Gt, 2, true),
        (Gt, 3, false),
        (Gte, 3, true),
        (Gte, 4, false),
        (Lt, 4, true),
        (Lt, 3, false),
        (Lte, 3, true),
        (Lte, 2, false),
    ] {
        assert_eq!(
            filter(FilterField::Conversations, op, FilterValue::Number(n)).matches(&user),
            expected,
            "conversations {op} {n}"
        );
    }
}

#[test]
fn ill_typed_filters_match_nobody() {
    let user = sample_user();
    assert!(!filter(FilterField::Banned, OpEq, text("false")).matches(&user));
    assert!(!filter(FilterField::Banned, Gt, FilterValue::Bool(false)).matches(&user));
    assert!(!filter(FilterField::Conversations, OpEq, text("0")).matches(&user));
    assert!(
        !filter(
            FilterField::CreatedAt,
            Contains,
            FilterValue::Date(user.created_at)
        )
        .matches(&user)
    );
    assert!(!filter(attr("default_name"), OpEq, FilterValue::Number(1)).matches(&user));
}

#[test]
fn match_modes() {
    let user = sample_user();
    let yes = filter(attr("default_name"), OpEq, text("Joe"));
    let no = filter(attr("default_name"), OpEq, text("Ann"));
    let set = |mode, filters: Vec<Filter>| FilterSet {
        match_mode: mode,
        filters,
    };
    assert!(set(Match::All, vec![]).matches(&user));
    assert!(set(Match::Any, vec![]).matches(&user));
    assert!(set(Match::All, vec![yes.clone(), yes.clone()]).matches(&user));
    assert!(!set(Match::All, vec![yes.clone(), no.clone()]).matches(&user));
    assert!(set(Match::Any, vec![no.clone(), yes.clone()]).matches(&user));
    assert!(!set(Match::Any, vec![no.clone(), no]).matches(&user));
}
