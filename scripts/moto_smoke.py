#!/usr/bin/env python3
"""Smoke test: does moto's DynamoDB server do what the store relies on?

Usage: moto_smoke.py http://127.0.0.1:PORT

Exercises, against a running `moto_server`, every DynamoDB feature the store
uses: CreateTable with the table and indexes template.yaml declares (read
from it), TransactWriteItems with
attribute_not_exists + ConditionCheck (and the cancellation reasons it
returns), ReturnValuesOnConditionCheckFailure on PutItem and in transactions,
Query on a GSI with ScanIndexForward=False / Limit / ExclusiveStartKey,
FilterExpression with contains / begins_with / attribute_not_exists and map
paths (#attrs.#k), ADD on a string set and a number, DELETE from a string set.
Where moto is known to differ from DynamoDB it prints QUIRK (not a failure);
docs/deploy.md lists them, with the ones this script cannot show cheaply.

It prints one line per check and exits non-zero if any check fails. The
table it creates has a unique name and is deleted at the end.
"""

from __future__ import annotations

import random
import sys
import threading
import uuid
from pathlib import Path

import boto3
import yaml
from botocore.config import Config
from botocore.exceptions import ClientError

FAILURES: list[str] = []
QUIRKS: list[str] = []


def check(name: str, cond: bool, detail: object = "") -> None:
    print(f"  {'ok  ' if cond else 'FAIL'} {name}" + (f"  [{detail}]" if detail != "" else ""))
    if not cond:
        FAILURES.append(name)


def quirk(name: str, aws_like: bool, detail: object = "") -> None:
    """A behaviour where moto differs from DynamoDB: reported, never fatal."""
    print(f"  {'ok  ' if aws_like else 'QUIRK'} {name}" + (f"  [{detail}]" if detail != "" else ""))
    if not aws_like:
        QUIRKS.append(name)


def client(endpoint: str):
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=60),
    )


TEMPLATE = Path(__file__).resolve().parent.parent / "template.yaml"


def template_table() -> tuple[dict, str]:
    """The users table as template.yaml declares it (the one place the layout
    is written for AWS; tests/tests/table.rs checks the store creates the
    same): its CreateTable arguments and its TTL attribute."""

    class TemplateLoader(yaml.SafeLoader):
        pass

    # CloudFormation's short forms (!Ref, !Sub, ...) do not matter here.
    TemplateLoader.add_multi_constructor("!", lambda loader, suffix, node: None)
    template = yaml.load(TEMPLATE.read_text(encoding="utf-8"), Loader=TemplateLoader)
    table = template["Resources"]["UsersTable"]["Properties"]
    definition = {name: table[name] for name in ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes")}
    return definition, table["TimeToLiveSpecification"]["AttributeName"]


def index_on(hash_key: str) -> str:
    """The name of the template's index whose partition key is `hash_key`."""
    definition, _ = template_table()
    for index in definition["GlobalSecondaryIndexes"]:
        if index["KeySchema"][0]["AttributeName"] == hash_key:
            return index["IndexName"]
    raise KeyError(hash_key)


BY_CREATED = index_on("gsi1pk")
BY_SEEN = index_on("gsi2pk")
BY_EMAIL = index_on("gsi3pk")


def S(v: str) -> dict:
    return {"S": v}


def main() -> int:
    endpoint = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:5000"
    ddb = client(endpoint)
    table = f"smoke-{uuid.uuid4().hex[:12]}"

    print(f"moto smoke test against {endpoint}, table {table}")

    # ---- CreateTable: the table of template.yaml, as declared there ---------
    definition, ttl_attribute = template_table()
    ddb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST", **definition)
    desc = ddb.describe_table(TableName=table)["Table"]
    check("CreateTable with 4 GSIs", len(desc["GlobalSecondaryIndexes"]) == 4, desc["TableStatus"])
    check("table ACTIVE right away", desc["TableStatus"] == "ACTIVE", desc["TableStatus"])
    try:
        ddb.update_time_to_live(
            TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl_attribute}
        )
        check("UpdateTimeToLive", True)
    except ClientError as e:
        check("UpdateTimeToLive", False, e.response["Error"])

    # ---- TransactWriteItems: profile + uniqueness item ---------------------
    def create_user(uid: str, user_id: str, created: str, email: str | None = None, extra: dict | None = None):
        item = {
            "pk": S(f"A#acc1#U#{uid}"),
            "sk": S("PROFILE"),
            "gsi1pk": S("A#acc1"),
            "gsi1sk": S(f"{created}#{uid}"),
            "gsi2pk": S("A#acc1"),
            "gsi2sk": S(f"{created}#{uid}"),
            "userId": S(user_id),
            "attrs": {"M": {"default_name": S(f"Name {uid}"), "my-key.x": S("v")}},
            "conversations": {"N": "0"},
            "createdAt": {"N": "0"},
        }
        if email:
            item["gsi3pk"] = S(f"A#acc1#E#{email}")
            item["attrs"]["M"]["default_email"] = S(email)
        item.update(extra or {})
        return ddb.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": table,
                        "Item": {"pk": S(f"A#acc1#UID#{user_id}"), "sk": S("UID"), "id": S(uid)},
                        "ConditionExpression": "attribute_not_exists(pk)",
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    }
                },
                {
                    "Put": {
                        "TableName": table,
                        "Item": item,
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                {
                    "ConditionCheck": {
                        "TableName": table,
                        "Key": {"pk": S("A#acc1"), "sk": S("ACCOUNT")},
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                },
            ]
        )

    ddb.put_item(TableName=table, Item={"pk": S("A#acc1"), "sk": S("ACCOUNT")})
    ids = [f"{i:024x}" for i in range(1, 8)]
    for n, uid in enumerate(ids):
        create_user(
            uid,
            f"user-{n}",
            f"2024-01-0{n + 1}T00:00:00.000Z",
            email="a@x.io" if n % 2 == 0 else None,
            extra={"segs": {"SS": ["s1", "s2"]}} if n == 3 else None,
        )
    check("TransactWriteItems Put+Put+ConditionCheck", True)

    # Duplicate userId: expect TransactionCanceledException with reasons.
    try:
        create_user("f" * 24, "user-0", "2024-02-01T00:00:00.000Z")
        check("duplicate userId cancelled", False, "no error")
    except ClientError as e:
        err = e.response["Error"]
        reasons = e.response.get("CancellationReasons")
        check("duplicate -> TransactionCanceledException", err["Code"] == "TransactionCanceledException", err["Code"])
        print(f"       message: {err.get('Message')!r}")
        print(f"       CancellationReasons: {reasons!r}")
        check("CancellationReasons present in parsed response", reasons is not None)
        if reasons:
            check(
                "reason[0] ConditionalCheckFailed",
                reasons[0].get("Code") == "ConditionalCheckFailed",
                reasons[0].get("Code"),
            )
            check(
                "reason[0] carries Item (ReturnValuesOnConditionCheckFailure=ALL_OLD)",
                "Item" in reasons[0],
                reasons[0].get("Item"),
            )
            check("reason[1] Code None", reasons[1].get("Code") == "None", reasons[1])
            check("3 reasons, one per item", len(reasons) == 3, len(reasons))

    # ConditionCheck failing (account missing).
    try:
        ddb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": table, "Item": {"pk": S("X"), "sk": S("Y")}}},
                {
                    "ConditionCheck": {
                        "TableName": table,
                        "Key": {"pk": S("A#nope"), "sk": S("ACCOUNT")},
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                },
            ]
        )
        check("failing ConditionCheck cancels", False, "no error")
    except ClientError as e:
        reasons = e.response.get("CancellationReasons") or []
        check(
            "failing ConditionCheck cancels (reason on item 1)",
            e.response["Error"]["Code"] == "TransactionCanceledException"
            and len(reasons) == 2
            and reasons[1].get("Code") == "ConditionalCheckFailed",
            reasons,
        )
    check("cancelled transaction wrote nothing", "Item" not in ddb.get_item(TableName=table, Key={"pk": S("X"), "sk": S("Y")}))

    # ---- ReturnValuesOnConditionCheckFailure on a plain PutItem -------------
    try:
        ddb.put_item(
            TableName=table,
            Item={"pk": S("A#acc1#UID#user-0"), "sk": S("UID"), "id": S("z")},
            ConditionExpression="attribute_not_exists(pk)",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
        check("PutItem conditional failure", False, "no error")
    except ClientError as e:
        check(
            "PutItem -> ConditionalCheckFailedException",
            e.response["Error"]["Code"] == "ConditionalCheckFailedException",
            e.response["Error"]["Code"],
        )
        check("PutItem failure returns Item (ALL_OLD)", "Item" in e.response, e.response.get("Item"))

    # ---- Query a GSI backwards, with Limit / ExclusiveStartKey -------------
    newest_first = dict(
        TableName=table,
        IndexName=BY_CREATED,
        KeyConditionExpression="gsi1pk = :p",
        ExpressionAttributeValues={":p": S("A#acc1")},
        ScanIndexForward=False,
    )
    seen: list[str] = []
    start = None
    pages = 0
    while True:
        kw = dict(newest_first, Limit=3)
        if start:
            kw["ExclusiveStartKey"] = start
        r = ddb.query(**kw)
        pages += 1
        seen += [it["pk"]["S"].rsplit("#", 1)[1] for it in r["Items"]]
        start = r.get("LastEvaluatedKey")
        if pages == 1:
            check(
                "GSI LastEvaluatedKey has table+index keys",
                start is not None and set(start) == {"pk", "sk", "gsi1pk", "gsi1sk"},
                sorted(start or {}),
            )
        if not start or pages > 10:
            break
    check("GSI Query desc, paged by 3, all 7 in order", seen == list(reversed(ids)), seen)
    check("pages = 3", pages == 3, pages)

    # Resume from a key we build ourselves (what `after=<id>` does).
    r = ddb.query(
        **newest_first,
        Limit=2,
        ExclusiveStartKey={
            "pk": S(f"A#acc1#U#{ids[4]}"),
            "sk": S("PROFILE"),
            "gsi1pk": S("A#acc1"),
            "gsi1sk": S(f"2024-01-05T00:00:00.000Z#{ids[4]}"),
        },
    )
    got = [it["pk"]["S"].rsplit("#", 1)[1] for it in r["Items"]]
    check("hand-built ExclusiveStartKey resumes after it", got == [ids[3], ids[2]], got)

    # by_email shares gsi1sk as its sort key.
    r = ddb.query(
        TableName=table,
        IndexName=BY_EMAIL,
        KeyConditionExpression="gsi3pk = :p",
        ExpressionAttributeValues={":p": S("A#acc1#E#a@x.io")},
    )
    check("by_email GSI (sparse, shares gsi1sk)", r["Count"] == 4, r["Count"])

    # ---- FilterExpression ---------------------------------------------------
    def q(expr: str, names: dict, values: dict, limit: int | None = None) -> dict:
        kw = dict(
            TableName=table,
            IndexName=BY_CREATED,
            KeyConditionExpression="gsi1pk = :p",
            FilterExpression=expr,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={":p": S("A#acc1"), **values},
            ScanIndexForward=False,
        )
        if limit:
            kw["Limit"] = limit
        return ddb.query(**kw)

    r = q("contains(#a.#k, :v)", {"#a": "attrs", "#k": "default_name"}, {":v": S("0000000003")})
    check("contains on map path #attrs.#k", r["Count"] == 1, r["Count"])
    r = q("begins_with(#a.#k, :v)", {"#a": "attrs", "#k": "default_name"}, {":v": S("Name ")})
    check("begins_with on map path", r["Count"] == 7, r["Count"])
    r = q("attribute_not_exists(#a.#k)", {"#a": "attrs", "#k": "default_email"}, {})
    check("attribute_not_exists on map path", r["Count"] == 3, r["Count"])
    r = q("attribute_exists(#a.#k)", {"#a": "attrs", "#k": "my-key.x"}, {})
    check("map key with '-' and '.' via name placeholder", r["Count"] == 7, r["Count"])
    r = q("contains(#s, :v)", {"#s": "segs"}, {":v": S("s2")})
    check("contains on a string set", r["Count"] == 1, r["Count"])
    r = q("#a.#k <> :v", {"#a": "attrs", "#k": "default_email"}, {":v": S("a@x.io")})
    check("<> on missing map key is true (3 without email)", r["Count"] == 3, r["Count"])
    # Only attributes the index projects (DynamoDB refuses a filter on others).
    r = q("(#c >= :n AND #b = :t) OR NOT contains(#u, :x)", {"#c": "createdAt", "#b": "banned", "#u": "userId"}, {":n": {"N": "0"}, ":t": {"BOOL": True}, ":x": S("user")})
    check("AND/OR/NOT compose (none match)", r["Count"] == 0, r["Count"])
    r = q("begins_with(#a.#k, :v)", {"#a": "attrs", "#k": "default_name"}, {":v": S("Name ")}, limit=2)
    check(
        "Limit counts items read before the filter (Count<=2, LastEvaluatedKey set)",
        r["Count"] == 2 and "LastEvaluatedKey" in r and r["ScannedCount"] == 2,
        (r["Count"], r["ScannedCount"]),
    )
    r = q("contains(#a.#k, :v)", {"#a": "attrs", "#k": "default_name"}, {":v": S("0000000001")}, limit=3)
    check(
        "filtered-out page: Count=0 but LastEvaluatedKey set",
        r["Count"] == 0 and r["ScannedCount"] == 3 and "LastEvaluatedKey" in r,
        (r["Count"], r["ScannedCount"], "LastEvaluatedKey" in r),
    )

    # ---- UpdateItem: ADD to a number and a string set; DELETE from set -------
    key = {"pk": S(f"A#acc1#U#{ids[0]}"), "sk": S("PROFILE")}
    r = ddb.update_item(
        TableName=table,
        Key=key,
        UpdateExpression="ADD #c :one, #s :segs SET #a.#k = :v, #ls = :ls REMOVE #a.#gone",
        ConditionExpression="attribute_exists(pk)",
        ExpressionAttributeNames={"#c": "conversations", "#s": "segs", "#a": "attrs", "#k": "k1", "#ls": "lastSeen", "#gone": "default_name"},
        ExpressionAttributeValues={":one": {"N": "1"}, ":segs": {"SS": ["s1", "s9"]}, ":v": S("v1"), ":ls": S("2024")},
        ReturnValues="ALL_NEW",
    )
    a = r["Attributes"]
    check("ADD number", a["conversations"] == {"N": "1"}, a["conversations"])
    check("ADD creates string set", sorted(a["segs"]["SS"]) == ["s1", "s9"], a["segs"])
    check("SET map path + REMOVE map path", a["attrs"]["M"].get("k1") == S("v1") and "default_name" not in a["attrs"]["M"], a["attrs"])
    r = ddb.update_item(
        TableName=table,
        Key=key,
        UpdateExpression="DELETE #s :segs",
        ExpressionAttributeNames={"#s": "segs"},
        ExpressionAttributeValues={":segs": {"SS": ["s1", "s9"]}},
        ReturnValues="ALL_NEW",
    )
    check("DELETE last elements removes the set attribute", "segs" not in r["Attributes"], r["Attributes"].get("segs"))
    r = ddb.update_item(
        TableName=table,
        Key=key,
        UpdateExpression="ADD #c :neg",
        ExpressionAttributeNames={"#c": "conversations"},
        ExpressionAttributeValues={":neg": {"N": "-1"}},
        ReturnValues="UPDATED_NEW",
    )
    check("ADD negative number", r["Attributes"]["conversations"] == {"N": "0"}, r["Attributes"])

    # UpdateItem with a failing condition + ReturnValuesOnConditionCheckFailure.
    try:
        ddb.update_item(
            TableName=table,
            Key={"pk": S("A#acc1#U#missing"), "sk": S("PROFILE")},
            UpdateExpression="ADD #c :one",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames={"#c": "conversations"},
            ExpressionAttributeValues={":one": {"N": "1"}},
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
        check("UpdateItem on missing item fails its condition", False, "no error")
    except ClientError as e:
        check(
            "UpdateItem on missing item -> ConditionalCheckFailedException, no Item",
            e.response["Error"]["Code"] == "ConditionalCheckFailedException" and "Item" not in e.response,
            (e.response["Error"]["Code"], e.response.get("Item")),
        )

    # Transactional Update / Delete and a condition on the same request.
    r = ddb.transact_write_items(
        TransactItems=[
            {
                "Update": {
                    "TableName": table,
                    "Key": key,
                    "UpdateExpression": "ADD #s :segs",
                    "ExpressionAttributeNames": {"#s": "segs"},
                    "ExpressionAttributeValues": {":segs": {"SS": ["s5"]}},
                    "ConditionExpression": "attribute_exists(pk)",
                }
            },
            {"Delete": {"TableName": table, "Key": {"pk": S("A#acc1#UID#user-6"), "sk": S("UID")}}},
        ]
    )
    check("TransactWriteItems Update(ADD SS)+Delete", True)

    # Two operations on one item in a transaction are rejected by DynamoDB.
    try:
        ddb.transact_write_items(
            TransactItems=[
                {"ConditionCheck": {"TableName": table, "Key": key, "ConditionExpression": "attribute_exists(pk)"}},
                {"Delete": {"TableName": table, "Key": key}},
            ]
        )
        check("same key twice in one transaction rejected", False, "accepted (AWS says ValidationException)")
    except ClientError as e:
        check("same key twice in one transaction rejected", e.response["Error"]["Code"] == "ValidationException", e.response["Error"])

    # ---- BatchGetItem --------------------------------------------------------
    r = ddb.batch_get_item(
        RequestItems={table: {"Keys": [{"pk": S(f"A#acc1#U#{i}"), "sk": S("PROFILE")} for i in ids[:3]]}}
    )
    check("BatchGetItem", len(r["Responses"][table]) == 3, len(r["Responses"][table]))

    # ---- Query an item collection (details in one Query) ---------------------
    for c in range(3):
        ddb.put_item(TableName=table, Item={"pk": key["pk"], "sk": S(f"CONV#{c:024x}"), "date": S("x")})
    r = ddb.query(
        TableName=table,
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": key["pk"]},
        ScanIndexForward=False,
    )
    check("item collection Query desc (PROFILE sorts after CONV#)", [i["sk"]["S"][:4] for i in r["Items"]] == ["PROF", "CONV", "CONV", "CONV"], [i["sk"]["S"] for i in r["Items"]])

    # ---- error shapes ----------------------------------------------------------
    try:
        ddb.get_item(TableName=f"{table}-missing", Key=key)
        check("missing table error", False)
    except ClientError as e:
        check("missing table -> ResourceNotFoundException", e.response["Error"]["Code"] == "ResourceNotFoundException", e.response["Error"]["Code"])
    # ---- known differences from DynamoDB (informational) ----------------------
    # moto applies a transaction by deep-copying the table and, if the
    # transaction fails, putting the copy back: on a threaded server a failing
    # transaction can undo the writes other requests made meanwhile.
    ckey = {"pk": S("A#acc1#CONC"), "sk": S("PROFILE")}
    ddb.put_item(TableName=table, Item={**ckey, "n": {"N": "0"}})

    def tx_add(i: int) -> None:
        client(endpoint).transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": table,
                        "Key": ckey,
                        "UpdateExpression": "ADD #n :one, #s :v",
                        "ExpressionAttributeNames": {"#n": "n", "#s": "segs"},
                        "ExpressionAttributeValues": {":one": {"N": "1"}, ":v": {"SS": [f"s{i}"]}},
                    }
                }
            ]
        )

    def tx_fail(_: int) -> None:
        try:
            client(endpoint).transact_write_items(
                TransactItems=[
                    {
                        "ConditionCheck": {
                            "TableName": table,
                            "Key": {"pk": S("A#none"), "sk": S("ACCOUNT")},
                            "ConditionExpression": "attribute_exists(pk)",
                        }
                    }
                ]
            )
        except ClientError:
            pass

    jobs = [threading.Thread(target=tx_add, args=(i,)) for i in range(20)]
    jobs += [threading.Thread(target=tx_fail, args=(i,)) for i in range(20)]
    random.Random(7).shuffle(jobs)
    for j in jobs:
        j.start()
    for j in jobs:
        j.join()
    got = ddb.get_item(TableName=table, Key=ckey)["Item"]
    quirk(
        "20 concurrent ADD transactions beside 20 failing ones all land",
        got["n"] == {"N": "20"} and len(got["segs"]["SS"]) == 20,
        f"n={got['n']['N']}, set size {len(got.get('segs', {}).get('SS', []))}",
    )

    try:
        ddb.query(
            TableName=table,
            IndexName=BY_CREATED,
            KeyConditionExpression="gsi1pk = :p",
            ExpressionAttributeValues={":p": S("A#acc1"), ":unused": S("x")},
        )
        quirk("unused ExpressionAttributeValues rejected (AWS: ValidationException)", False, "moto accepts them")
    except ClientError as e:
        quirk("unused ExpressionAttributeValues rejected (AWS: ValidationException)", e.response["Error"]["Code"] == "ValidationException")
    r = ddb.query(
        TableName=table,
        IndexName=BY_SEEN,
        KeyConditionExpression="gsi2pk = :p",
        ExpressionAttributeValues={":p": S("A#acc1")},
        Limit=7,
    )
    quirk(
        "Limit == items left still returns LastEvaluatedKey (AWS does)",
        r["Count"] == 7 and "LastEvaluatedKey" in r,
        (r["Count"], "LastEvaluatedKey" in r),
    )
    try:
        ddb.query(
            TableName=table,
            IndexName=BY_CREATED,
            KeyConditionExpression="gsi1pk = :p",
            ExpressionAttributeValues={":p": S("A#acc1")},
            ExclusiveStartKey={"pk": S(f"A#acc1#U#{ids[0]}"), "sk": S("PROFILE")},
        )
        quirk("GSI ExclusiveStartKey without index keys -> ValidationException", False, "accepted")
    except ClientError as e:
        code = e.response["Error"]["Code"]
        quirk("GSI ExclusiveStartKey without index keys -> ValidationException", code == "ValidationException", f"moto: HTTP {code}")

    ddb.delete_table(TableName=table)
    print(f"moto smoke: {len(FAILURES)} failed, {len(QUIRKS)} known quirks" + (f"; FAILED: {FAILURES}" if FAILURES else ""))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
