#!/usr/bin/env bash
# Real-binary smoke test of the five Lambda functions (users, segments,
# export, authorizer, cleanup): the binaries `sam build` ships, run by cargo-lambda's
# Lambda emulator (`cargo lambda watch`) against a loopback DynamoDB, fed the
# API Gateway events of tests/events/, their answers checked.
#
#   scripts/lambda_smoke.sh http://127.0.0.1:5555      # moto, as scripts/test.sh runs it
#   AWS_ENDPOINT_URL=http://localhost:4566 scripts/lambda_smoke.sh   # LocalStack
#
# What it does:
#   1. cargo-lambda (PyPI, pinned in scripts/requirements-lambda.txt) into
#      .venv/, unless the pinned version is there already.
#   2. cargo build of the five function binaries and the admin CLI.
#   3. A fresh table and a token for the account `fixtures` (the account the
#      function events' authorizer context names), made with the CLI.
#   4. One `cargo lambda watch` per function on free loopback ports. (One
#      watch for all four does not work here: for an invoke of `users` it
#      runs `cargo run --bin users` at the workspace root, where cargo looks
#      only in default-members, functions/local, and fails with "no bin
#      target named `users` in default-run packages". So each watch gets
#      `-p <function package>`.) The functions' environment: TABLE_NAME,
#      AWS_ENDPOINT_URL, dummy credentials, AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH
#      as in template.yaml's Globals.
#   5. POSTs events to http://127.0.0.1:PORT/2015-03-31/functions/<name>/invocations
#      and checks the answers: the authorizer's policy or `Unauthorized`, the
#      status codes and bodies inside the Lambda proxy responses, and the
#      export's streamed CSV.
#   6. Always (trap): stops the emulators and the functions they started,
#      deletes the table, removes its scratch directory.
#
# Environment knobs (all optional):
#   LAMBDA_SMOKE_ENDPOINT   the DynamoDB endpoint when no argument is given
#                           (then AWS_ENDPOINT_URL); it must be a loopback URL
#   VENV=.venv PYTHON=python3   where cargo-lambda goes, and with what Python
#   LAMBDA_SMOKE_TIMEOUT=300    seconds one invocation may take (the first one
#                               of a function includes `cargo run`'s check)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

ENDPOINT=${1:-${LAMBDA_SMOKE_ENDPOINT:-${AWS_ENDPOINT_URL:-}}}
if [[ -z "$ENDPOINT" ]]; then
    echo "usage: $0 DYNAMODB_ENDPOINT   (e.g. http://127.0.0.1:5555; or set AWS_ENDPOINT_URL)" >&2
    exit 2
fi
# This script creates and deletes tables: never anywhere but this machine.
if [[ ! "$ENDPOINT" =~ ^https?://(127\.[0-9.]+|localhost|\[::1\])(:[0-9]+)?/?$ ]]; then
    echo "$0: refusing a DynamoDB endpoint that is not on the loopback interface: $ENDPOINT" >&2
    exit 2
fi
ENDPOINT=${ENDPOINT%/}

VENV=${VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3}
REQS="$ROOT/scripts/requirements-lambda.txt"
TIMEOUT=${LAMBDA_SMOKE_TIMEOUT:-300}
EVENTS="$ROOT/tests/events"
FUNCTIONS=(users segments export authorizer cleanup)
ACCOUNT=fixtures
# The placeholders the fixtures carry (see docs/lambda.md).
FIXTURE_USER=65f1a2b3c4d5e6f708192a3b
FIXTURE_SEGMENT=65f1a2b3c4d5e6f708192a3c
FIXTURE_TOKEN=__TOKEN__

for tool in cargo curl jq "$PYTHON"; do
    command -v "$tool" >/dev/null || { echo "$0: $tool is needed" >&2; exit 2; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/lambda-smoke.XXXXXX")
TABLE="lambda-smoke-$$-$(date +%s)"
TABLE_CREATED=0
declare -A PORT=() WATCH_PID=()

# Dummy credentials and a region for everything this script starts: the
# emulator, the CLI and the functions. Nothing may find real AWS credentials.
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_DEFAULT_PROFILE
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
export PATH="$VENV/bin:$PATH"

# Stops a process and everything it started (cargo lambda -> cargo run -> the
# function binary), children first, by process id.
kill_tree() {
    local pid=$1 child
    for child in $(pgrep -P "$pid" 2>/dev/null || true); do
        kill_tree "$child"
    done
    kill "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    local fn
    for fn in "${!WATCH_PID[@]}"; do
        kill_tree "${WATCH_PID[$fn]}"
    done
    for fn in "${!WATCH_PID[@]}"; do
        wait "${WATCH_PID[$fn]}" 2>/dev/null || true
    done
    if [[ $TABLE_CREATED == 1 ]]; then
        # DeleteTable through DynamoDB's JSON protocol, signed with the dummy
        # credentials (moto and LocalStack accept any).
        curl -sS -m 30 -o /dev/null --aws-sigv4 "aws:amz:us-east-1:dynamodb" -u test:test \
            -H 'Content-Type: application/x-amz-json-1.0' -H 'X-Amz-Target: DynamoDB_20120810.DeleteTable' \
            --data "{\"TableName\":\"$TABLE\"}" "$ENDPOINT/" || echo "(could not delete table $TABLE)"
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

section() { printf '\n---- %s ----\n' "$*"; }

# ---------------------------------------------------------------------------
section "cargo-lambda ($REQS)"
want="$(sha256sum "$REQS" | cut -d' ' -f1)"
stamp="$VENV/.lambda-requirements.stamp"
if [[ -x "$VENV/bin/cargo-lambda" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "pinned cargo-lambda already installed"
else
    if ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
        echo "creating $VENV with $($PYTHON --version 2>&1)"
        "$PYTHON" -m venv "$VENV"
    fi
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/python" -m pip install --quiet --timeout 60 --retries 5 -r "$REQS"
    printf '%s\n' "$want" >"$stamp"
fi
cargo lambda --version

# ---------------------------------------------------------------------------
section "build"
# Each function on its own, exactly as the emulator's `cargo run --package
# <fn>-function` will build it: cargo unifies features over the packages of
# one command, so a single `cargo build -p a -p b ...` would leave each
# emulator to rebuild its dependencies at its first start (and all four at
# once, on a cold cache, outlast the start-up wait).
for fn in "${FUNCTIONS[@]}"; do
    cargo build --locked --package "$fn-function"
done
cargo build --locked --package users-api

section "table $TABLE and a token for account '$ACCOUNT' on $ENDPOINT"
TABLE_CREATED=1
TOKEN=$(cargo run -q --locked -p users-api -- token create --account "$ACCOUNT" \
    --dynamodb-endpoint "$ENDPOINT" --table "$TABLE" | tail -n 1)
[[ "$TOKEN" == uat_* ]] || { echo "no token from the CLI: $TOKEN" >&2; exit 1; }
echo "token created (not shown)"

# ---------------------------------------------------------------------------
section "cargo lambda watch, one per function"
free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
for fn in "${FUNCTIONS[@]}"; do
    PORT[$fn]=$(free_port)
    env TABLE_NAME="$TABLE" AWS_ENDPOINT_URL="$ENDPOINT" AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH=true RUST_LOG=info \
        cargo lambda watch --ignore-changes --locked -p "$fn-function" -A 127.0.0.1 -P "${PORT[$fn]}" \
        >"$WORK/$fn.log" 2>&1 &
    WATCH_PID[$fn]=$!
    echo "$fn: emulator pid ${WATCH_PID[$fn]} on 127.0.0.1:${PORT[$fn]}"
done
for fn in "${FUNCTIONS[@]}"; do
    deadline=$((SECONDS + 180))
    until curl -s -o /dev/null -m 2 "http://127.0.0.1:${PORT[$fn]}/"; do
        if ! kill -0 "${WATCH_PID[$fn]}" 2>/dev/null || ((SECONDS > deadline)); then
            echo "the $fn emulator did not start:" >&2
            tail -n 30 "$WORK/$fn.log" >&2
            exit 1
        fi
        sleep 0.3
    done
done

# The export package's second binary, the export-jobs function, is served by
# the same emulator (it runs a binary by the function's name).
PORT[export-jobs]=${PORT[export]}

# ---------------------------------------------------------------------------
PASSED=0
FAILED=0
USER_ID=$FIXTURE_USER
SEGMENT_ID=$FIXTURE_SEGMENT

# event FIXTURE: the fixture with the ids and the token of this run.
event() {
    sed -e "s/$FIXTURE_USER/$USER_ID/g" -e "s/$FIXTURE_SEGMENT/$SEGMENT_ID/g" -e "s/$FIXTURE_TOKEN/$TOKEN/g" \
        "$EVENTS/$1.json"
}

# invoke FUNCTION EVENT-TEXT: the invocation's answer in $WORK/answer (body)
# and $WORK/headers; prints the emulator's HTTP status.
invoke() {
    curl -sS -m "$TIMEOUT" -o "$WORK/answer" -D "$WORK/headers" -w '%{http_code}' -X POST \
        -H 'Content-Type: application/json' --data-binary @- \
        "http://127.0.0.1:${PORT[$1]}/2015-03-31/functions/$1/invocations" <<<"$2" || echo "curl-failed"
}

record() { # NAME OK?
    if [[ $2 == 1 ]]; then
        PASSED=$((PASSED + 1))
        echo "ok    $1"
    else
        FAILED=$((FAILED + 1))
        echo "FAIL  $1"
        echo "      answer: $(head -c 1500 "$WORK/answer" 2>/dev/null)"
    fi
}

# check NAME FUNCTION FIXTURE JQ-FILTER [RAW-EVENT]: invokes, then the filter
# must hold on the answer; `$ANSWER` holds it afterwards.
check() {
    local name=$1 fn=$2 fixture=$3 filter=$4 text http ok=0
    text=${5:-$(event "$fixture")}
    http=$(invoke "$fn" "$text")
    if [[ $http == 200 ]] && jq -e "$filter" "$WORK/answer" >/dev/null 2>&1; then ok=1; fi
    record "$name" "$ok"
    ANSWER=$(cat "$WORK/answer" 2>/dev/null || true)
}

# check_error NAME FUNCTION EVENT-TEXT: the function failed with `Unauthorized`.
check_unauthorized() {
    local name=$1 http ok=0
    http=$(invoke "$2" "$3")
    if [[ $http == 500 ]] && jq -e '.errorMessage == "Unauthorized"' "$WORK/answer" >/dev/null 2>&1; then ok=1; fi
    record "$name" "$ok"
}

# A Lambda proxy answer with this status and a JSON body (REST v1 and HTTP v2).
status() { echo ".statusCode == $1 and (.body | fromjson | type) != null"; }
# ... whose body, parsed, satisfies FILTER.
body() { echo ".statusCode == $1 and (.body | fromjson | $2)"; }

section "authorizer"
STAGE_ARN='arn:aws:execute-api:us-east-1:123456789012:abcdef1234/v1/*'
ALLOW=".principalId == \"$ACCOUNT\" and .context.accountId == \"$ACCOUNT\"
    and .policyDocument.Version == \"2012-10-17\"
    and .policyDocument.Statement == [{\"Action\": \"execute-api:Invoke\", \"Effect\": \"Allow\", \"Resource\": \"$STAGE_ARN\"}]"
check "authorizer: TOKEN event, known token -> Allow on the stage, accountId in context" authorizer authorizer/token "$ALLOW"
check "authorizer: REQUEST event (Authorization header)" authorizer authorizer/request "$ALLOW"
check "authorizer: REQUEST event (lowercase authorization, bearer)" authorizer authorizer/request-lowercase "$ALLOW"
check_unauthorized "authorizer: unknown token -> Unauthorized" authorizer "$(event authorizer/token-unknown)"
check_unauthorized "authorizer: Basic credentials -> Unauthorized" authorizer "$(event authorizer/token-malformed)"
check_unauthorized "authorizer: no Authorization header -> Unauthorized" authorizer "$(event authorizer/request-missing)"
check_unauthorized "authorizer: the placeholder token as written -> Unauthorized" authorizer "$(cat "$EVENTS/authorizer/token.json")"

section "users and segments (REST API events)"
check "GET /health" users rest/health "$(body 200 '.database == "ok"')"
check "POST /users" users rest/users-create "$(body 200 '.[0].status.code == 200 and (.[0].id | length) == 24')"
USER_ID=$(jq -r '.body | fromjson | .[0].id' <<<"$ANSWER")
check "POST /users (bulk, one bad e-mail) -> 207" users rest/users-create-bulk \
    "$(body 207 '[.[].status.code] == [200, 400] and .[1].status.errors[0].field == "attributes.default_email"')"
check "POST /segments" segments rest/segments-create "$(body 200 '(.id | length) == 24')"
SEGMENT_ID=$(jq -r '.body | fromjson | .id' <<<"$ANSWER")
check "POST /users/{id}/segments" segments rest/user-segments-add "$(body 200 ".id == \"$USER_ID\"")"
check "PUT /users/{id}/segments" segments rest/user-segments-replace "$(body 200 ".id == \"$USER_ID\"")"
check "PUT /users/{id}" users rest/user-update "$(body 200 '.status.code == 200')"
check "PUT /users/{id}/ban" users rest/user-ban "$(body 200 '.status.code == 200')"
check "POST /users/{id}/conversations" users rest/user-conversations-create "$(body 200 '(.id | length) == 24')"
check "GET /users/{id} (x-request-id echoed)" users rest/user-get \
    "$(body 200 ".id == \"$USER_ID\" and .banned == true and .attributes.default_city == \"Kraków\"
        and .segments == [{\"id\": \"$SEGMENT_ID\", \"name\": \"VIP\"}] and (.conversations | length) == 1")
     and .multiValueHeaders[\"x-request-id\"] == [\"fixture-user-get\"]"
check "GET /users/{id}/conversations" users rest/user-conversations-list \
    "$(body 200 ".count == 1 and (.data[0].id | length) == 24 and .next == null")"
check "GET /users (JSON filters in the query)" users rest/users-list "$(body 200 ".count == 1 and .data[0].id == \"$USER_ID\"")"
check "GET /segments" segments rest/segments-list "$(body 200 ".[0].id == \"$SEGMENT_ID\" and .[0].users == 1")"
check "PUT /segments/{id}" segments rest/segment-rename "$(body 200 '.status.code == 200')"
check "DELETE /users/{id}/segments" segments rest/user-segments-remove "$(body 200 ".id == \"$USER_ID\"")"
check "PATCH /users -> 405" users rest/users-method-not-allowed "$(body 405 '.status.code == 405')"
check "GET /users/{id} of the fixture as written -> 404" users rest/user-get \
    "$(body 404 '.status.code == 404 and .status.type == "error"')" "$(cat "$EVENTS/rest/user-get.json")"

section "export (streamed)"
http=$(invoke export "$(event rest/users-export)")
printf 'User ID,Name,Email,Country\r\nfixture-ada,Ada Lovelace,ada@example.com,PL\r\nfixture-grace,Grace Hopper,,US\r\n' \
    >"$WORK/expected.csv"
ok=0
if [[ $http == 200 ]] &&
    grep -qi '^lambda-runtime-function-response-mode: *streaming' "$WORK/headers" &&
    grep -qi '^content-type: *text/csv; charset=utf-8' "$WORK/headers" &&
    grep -qi '^content-disposition: *attachment; filename="users.csv"' "$WORK/headers" &&
    cmp -s "$WORK/expected.csv" "$WORK/answer"; then
    ok=1
fi
record "POST /users/export: a streamed response, text/csv, the two users' rows" "$ok"
[[ $ok == 1 ]] || { echo "      headers:"; sed 's/^/        /' "$WORK/headers"; }

section "export jobs"
# The job is written by the export function, run by the export-jobs
# function (no bucket here: files go to /tmp/exports), then shown done.
http=$(invoke export "$(event rest/users-exports-create)")
JOB_ID=$(jq -r '.id // empty' "$WORK/answer" 2>/dev/null || true)
ok=0
if [[ $http =~ ^20[02]$ ]] && jq -e '.status.code == 202 and (.id | length) == 24' "$WORK/answer" >/dev/null 2>&1; then
    ok=1
fi
record "POST /users/exports: 202 and the job's id" "$ok"
check "export-jobs: scheduled sweep runs the job" export-jobs export-jobs/schedule \
    '.finished == 1 and .pending == 0 and .busy == 0'
http=$(invoke export "$(event rest/users-exports-get | sed "s/65f1c0de0000000000000000/$JOB_ID/g")")
ok=0
if [[ $http == 200 ]] && jq -e ".id == \"$JOB_ID\" and .status == \"done\" and .rows == 2 and (.url | type) == \"string\"" \
    "$WORK/answer" >/dev/null 2>&1; then
    ok=1
fi
record "GET /users/exports/{id}: done, 2 rows, a url" "$ok"
check "export-jobs: stream event of a pointer, nothing left" export-jobs export-jobs/stream-pointer-insert \
    '.finished == 0 and .pending == 0'

section "HTTP API (payload v2) events"
check "v2 GET /health" users http/health "$(status 200)"
check "v2 POST /users" users http/users-create "$(body 200 '.[0].status.code == 200')"
LINUS=$(jq -r '.body | fromjson | .[0].id' <<<"$ANSWER")
check "v2 GET /users/{id}" users http/user-get "$(body 200 '.userId == "fixture-linus"')" \
    "$(sed "s/$FIXTURE_USER/$LINUS/g" "$EVENTS/http/user-get.json")"
check "v2 GET /users (bracket sort)" users http/users-list "$(body 200 '.count == 3')"
check "v2 GET /segments" segments http/segments-list "$(body 200 'length == 1')"

section "deletes"
check "DELETE /segments/{id}" segments rest/segment-delete "$(body 200 ".id == \"$SEGMENT_ID\"")"
check "DELETE /users/{id}" users rest/user-delete "$(body 200 ".id == \"$USER_ID\"")"
check "GET /users/{id} after DELETE -> 404" users rest/user-get "$(body 404 '.status.code == 404')"

section "clean-up function"
check "cleanup: stream event of a job -> a sweep, nothing left pending" cleanup cleanup/stream-job-insert \
    '(.finished | type) == "number" and .pending == 0'
check "cleanup: scheduled sweep" cleanup cleanup/schedule '.finished == 0 and .pending == 0'

section "summary"
if ((FAILED > 0)); then
    for fn in "${FUNCTIONS[@]}"; do
        echo "---- last lines of the $fn emulator's log ----"
        tail -n 15 "$WORK/$fn.log"
    done
fi
echo "lambda smoke: $PASSED passed, $FAILED failed"
((FAILED == 0))
