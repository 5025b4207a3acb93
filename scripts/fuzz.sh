#!/usr/bin/env bash
# The contract fuzzer: schemathesis against the local server with the API's
# OpenAPI document, every check (schemathesis.toml says what the API expects
# beyond the document), bounded examples, a fixed seed. Zero 5xx and zero
# answers that violate the document, or it fails.
#
#   scripts/fuzz.sh [USERS_API_BINARY]
#
# Runs on a fresh data directory (the embedded engine) with no per-account
# limit; needs .venv-fuzz/ (scripts/test.sh makes it from
# scripts/requirements-fuzz.txt) and the users-api binary (default
# target/debug/users-api, which `cargo test --no-run` builds). FUZZ_SEED and
# FUZZ_EXAMPLES override the seed and the examples per operation.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${1:-target/debug/users-api}
VENV=${FUZZ_VENV:-.venv-fuzz}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/users-api-fuzz.XXXXXX")
SERVER_PID=""
cleanup() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
API="http://127.0.0.1:$PORT"
USERS_API_ACCOUNT_RATE_LIMIT=0 "$BIN" --data-dir "$WORK/data" --addr "127.0.0.1:$PORT" \
    >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
    curl -fs -o /dev/null "$API/health" && break
    sleep 0.1
done
TOKEN=$(grep -E '^uat_' "$WORK/server.log" | head -n 1)
if [[ -z "$TOKEN" ]]; then
    echo "the server did not start:" >&2
    cat "$WORK/server.log" >&2
    exit 1
fi

# The document the server serves is the one in the repository.
curl -fs "$API/openapi.json" | cmp -s - openapi.json || {
    echo "the server serves another openapi.json than the repository's" >&2
    exit 1
}

"$VENV/bin/schemathesis" run openapi.json --url "$API" \
    -H "Authorization: Bearer $TOKEN" \
    --checks all \
    --seed "${FUZZ_SEED:-4}" \
    --max-examples "${FUZZ_EXAMPLES:-50}" \
    --generation-database none \
    --no-color
