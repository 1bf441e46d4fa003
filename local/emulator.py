"""The AWS emulator for make local / make test: moto's server application (DynamoDB, KMS, S3,
Kinesis, ... over their real wire protocols), served with each request handled under one lock.

Why the lock: DynamoDB applies every single-item write and every transaction atomically. moto's
threaded server does not: concurrent conditional UpdateItems race (150 calls against a limit of
100 admitted 102-107 here) and concurrent TransactWriteItems crash inside moto
("dictionary changed size during iteration", HTTP 500). Serializing requests gives the emulator
the atomicity the code relies on in AWS; connections stay concurrent (keep-alive works).

Usage: emulator.py PORT
"""

import signal
import sys
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple


def main() -> None:
    port = int(sys.argv[1])
    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def serialized(environ, start_response):
        with lock:
            # Materialize the body inside the lock so the whole request runs under it.
            return list(app(environ, start_response))

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    run_simple("127.0.0.1", port, serialized, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
