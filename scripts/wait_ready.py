#!/usr/bin/env python3
"""Waits until a local engine answers: DynamoDB Local (a ListTables) or
moto's server (its dashboard page, which needs no AWS signing).

usage: scripts/wait_ready.py dynamodb|moto URL SECONDS
Exit 0 once it answers (saying so for DynamoDB Local), 1 when SECONDS pass
first.
"""
import json
import sys
import time
import urllib.request

kind, url, limit = sys.argv[1], sys.argv[2], float(sys.argv[3])
NAMES = {"dynamodb": "DynamoDB Local", "moto": "moto server"}


def answers() -> bool:
    if kind == "dynamodb":
        # DynamoDB Local does not check signatures, but it reads the access
        # key and region from the Authorization header (its tables live per
        # key and region).
        headers = {
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": "DynamoDB_20120810.ListTables",
            "Authorization": "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/dynamodb/aws4_request, "
            "SignedHeaders=host, Signature=0",
        }
        request = urllib.request.Request(url, data=b"{}", headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=2) as r:
            return r.status == 200 and "TableNames" in json.load(r)
    with urllib.request.urlopen(url + "/moto-api/", timeout=2) as r:
        return r.status == 200


deadline = time.monotonic() + limit
while True:
    try:
        if answers():
            if kind == "dynamodb":
                print(f"{NAMES[kind]} answers at {url}")
            sys.exit(0)
    except Exception:
        pass
    if time.monotonic() > deadline:
        print(f"{NAMES[kind]} did not answer at {url} within {limit:.0f} s", file=sys.stderr)
        sys.exit(1)
    time.sleep(0.2)
