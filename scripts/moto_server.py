"""moto's DynamoDB server, serving one request at a time.

`moto_server` serves requests on threads, and moto applies a transaction by
deep-copying the table and, on failure, putting the copy back; with two
requests in flight, one transaction's rollback can undo another's committed
writes, so concurrent transactions are neither atomic nor isolated. Real
DynamoDB (and the embedded engine) serialise conflicting transactions, and
our concurrency tests rely on that. Serving requests one at a time gives moto
the same guarantee; the tests' concurrent requests simply queue.

Usage: python scripts/moto_server.py HOST PORT
"""

import sys

from moto.core.model_instances import reset_model_data
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    moto_app = DomainDispatcherApplication(create_backend_app)

    def app(environ, start_response):  # type: ignore[no-untyped-def]
        try:
            return moto_app(environ, start_response)
        finally:
            # moto appends every model instance it creates to a class-level
            # list (for its dashboard), the transaction deep copies of whole
            # tables included, and never drops them: memory grows by a table
            # per transaction (GBs over the test suite). Emptying the lists
            # leaves the tables themselves alone.
            reset_model_data()

    run_simple(host, port, app, threaded=False, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
