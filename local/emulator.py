"""The AWS emulator for make local / make test: moto's server application (DynamoDB, KMS, S3,
Kinesis, ... over their real wire protocols), served with each request handled under one lock.

Why the lock: DynamoDB applies every single-item write and every transaction atomically. moto's
threaded server does not: concurrent conditional UpdateItems race (150 calls against a limit of
100 admitted 102-107 here) and concurrent TransactWriteItems crash inside moto
("dictionary changed size during iteration", HTTP 500). Serializing requests gives the emulator
the atomicity the code relies on in AWS; connections stay concurrent (keep-alive works).

AssumeRole also honours a trust policy's `sts:ExternalId` condition (StringEquals), as STS does
and moto does not: the AWS connectors send their tenant's ExternalId, and the tests check that a
role whose trust policy names another one refuses them.

Usage: emulator.py PORT
"""

import io
import json
import signal
import sys
import threading
import urllib.parse

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple

DENIED = ("<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type>"
          "<Code>AccessDenied</Code><Message>not authorized to perform: sts:AssumeRole on resource: {arn}"
          "</Message></Error><RequestId>external-id-check</RequestId></ErrorResponse>")


def external_id_refusal(environ) -> str | None:
    """The role ARN when this is an AssumeRole whose ExternalId the role's trust policy refuses."""
    if environ.get("REQUEST_METHOD") != "POST":
        return None
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
    if form.get("Action") != ["AssumeRole"]:
        return None
    arn = form.get("RoleArn", [""])[0]
    from moto.iam.models import iam_backends
    try:
        role = iam_backends[arn.split(":")[4]]["global"].get_role_by_arn(arn)
    except Exception:
        return None
    document = role.assume_role_policy_document
    document = json.loads(urllib.parse.unquote(document) if document.startswith("%7B") else document)
    wanted = [st.get("Condition", {}).get("StringEquals", {}).get("sts:ExternalId")
              for st in document.get("Statement", [])]
    wanted = [w for w in wanted if w]
    if wanted and form.get("ExternalId", [None])[0] not in wanted:
        return arn
    return None


def main() -> None:
    port = int(sys.argv[1])
    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def serialized(environ, start_response):
        refused = external_id_refusal(environ)
        if refused:
            start_response("403 Forbidden", [("Content-Type", "text/xml")])
            return [DENIED.format(arn=refused).encode()]
        with lock:
            # Materialize the body inside the lock so the whole request runs under it.
            return list(app(environ, start_response))

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    run_simple("127.0.0.1", port, serialized, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
