"""Cold starts of Lambda binaries, measured against a local Runtime API stand-in.

Each start is a new process of a function binary, as Lambda's would be, with
AWS_LAMBDA_RUNTIME_API pointing at the stand-in this script serves on
loopback. From the moment the process is spawned it records

- init: the binary's first `GET /runtime/invocation/next` (its `main` has
  built its state and asks for work), and
- first answer: its response (or error) to the event it was handed,

then kills the process. Binaries are started in turn (floor, a, b, ...,
floor, a, b, ...) so that each round sees the same machine; each gets its
own event file. Prints one JSON object: per binary, every sample in
milliseconds.

Usage: python scripts/cold_start.py ROUNDS NAME=BINARY:EVENT [NAME=BINARY:EVENT ...]
Environment for the binaries is this process's, plus the runtime variables.
"""

import http.server
import json
import os
import subprocess
import sys
import threading
import time
import uuid


class StandIn(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.lock = threading.Lock()
        self.event = b"{}"
        self.request_id = ""
        self.served = False
        self.init_at = None
        self.answer_at = None
        self.answered = threading.Event()

    def handle_error(self, request, client_address) -> None:
        # A killed process's connection resets: expected, not worth a trace.
        pass

    def arm(self, event: bytes) -> None:
        with self.lock:
            self.event = event
            self.request_id = str(uuid.uuid4())
            self.served = False
            self.init_at = None
            self.answer_at = None
            self.answered.clear()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # noqa: D401 - quiet
        pass

    def do_GET(self) -> None:  # noqa: N802
        server: StandIn = self.server  # type: ignore[assignment]
        if not self.path.endswith("/runtime/invocation/next"):
            self.send_error(404)
            return
        now = time.perf_counter()
        with server.lock:
            first = not server.served
            if first:
                server.served = True
                server.init_at = now
            event, request_id = server.event, server.request_id
        if not first:
            # One event per process: the next request waits until the kill.
            time.sleep(3600)
            return
        deadline_ms = int((time.time() + 900) * 1000)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(event)))
        self.send_header("Lambda-Runtime-Aws-Request-Id", request_id)
        self.send_header("Lambda-Runtime-Deadline-Ms", str(deadline_ms))
        self.send_header(
            "Lambda-Runtime-Invoked-Function-Arn",
            "arn:aws:lambda:us-east-1:123456789012:function:bench",
        )
        self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
        self.end_headers()
        self.wfile.write(event)

    def do_POST(self) -> None:  # noqa: N802
        server: StandIn = self.server  # type: ignore[assignment]
        # Read the whole answer (a streamed one included) before it counts.
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                self.rfile.read(size + 2)
                if size == 0:
                    break
        else:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with server.lock:
            if server.answer_at is None:
                server.answer_at = time.perf_counter()
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()
        server.answered.set()


def main() -> None:
    rounds = int(sys.argv[1])
    specs = []
    for arg in sys.argv[2:]:
        name, rest = arg.split("=", 1)
        binary, event = rest.rsplit(":", 1)
        with open(event, "rb") as f:
            specs.append((name, binary, f.read()))
    env = dict(os.environ)
    env.update(
        {
            "AWS_LAMBDA_FUNCTION_NAME": "bench",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
            "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
            "AWS_LAMBDA_LOG_GROUP_NAME": "bench",
        }
    )
    samples = {name: {"init_ms": [], "first_answer_ms": []} for name, _, _ in specs}
    for _ in range(rounds):
        for name, binary, event in specs:
            # A stand-in of its own for each start: a killed process's late
            # requests can never be taken for the next one's.
            server = StandIn()
            threading.Thread(target=server.serve_forever, daemon=True).start()
            env["AWS_LAMBDA_RUNTIME_API"] = f"127.0.0.1:{server.server_address[1]}"
            server.arm(event)
            started = time.perf_counter()
            process = subprocess.Popen(
                [binary], env=env, stdout=subprocess.DEVNULL, stderr=None if os.environ.get("COLD_START_DEBUG") else subprocess.DEVNULL
            )
            answered = server.answered.wait(timeout=60)
            process.kill()
            process.wait()
            server.shutdown()
            server.server_close()
            if not answered or server.init_at is None or server.answer_at is None:
                raise SystemExit(f"{name}: no answer within 60 s")
            samples[name]["init_ms"].append((server.init_at - started) * 1000)
            samples[name]["first_answer_ms"].append((server.answer_at - started) * 1000)
    json.dump(samples, sys.stdout)
    print()


if __name__ == "__main__":
    main()
