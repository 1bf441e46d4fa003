"""HTTPS look-alikes of the SaaS APIs the login probes call, one port, told apart by Host (the
probes reach them through PROBE_RESOLVE; the certificate `vendors` of test_pki.py names the
vendors' hosts). Each checks the request as the vendor documents it (method, path, query,
headers, form fields) and answers with the vendor's documented success and error bodies. A
request that is not what the vendor expects gets 400 with the reason, so a test fails loudly.

  api.hubapi.com          GET /account-info/v3/details (Bearer)
                          https://developers.hubspot.com/docs/api/settings/account-information-api
  *.my.salesforce.com     POST /services/oauth2/token (client_credentials), GET /services/data/,
                          GET /services/data/vNN.N/limits (Bearer)
                          https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_client_credentials_flow.htm
  *.cloud.databricks.com  POST /oidc/v1/token (client_credentials, Basic, scope all-apis),
                          GET /api/2.0/sql/warehouses/{id}, GET /api/2.0/clusters/get?cluster_id=
                          https://docs.databricks.com/en/dev-tools/auth/oauth-m2m.html

The test credentials below are test data; tests/integration/saas.rs uses the same values.
"""

import base64
import json
import sys
import uuid
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peer_io import serve  # noqa: E402

HUBSPOT_TOKEN = "pat-na1-11111111-2222-3333-4444-555555555555"
HUBSPOT_NO_SCOPE = "pat-na1-noscope-0000-0000-0000-000000000000"
SF_TOKEN = "00Dxx0000000001!AQ8AQOQKsUVvalid"
SF_NO_API = "00Dxx0000000001!AQ8AQOQKsUVnoapi"
SF_CLIENT = ("3MVG9sfclientid", "sf-client-secret-1")
SF_CC_TOKEN = "00Dxx0000000001!AQ8AQfromclientcreds"
SF_VERSIONS = ["58.0", "59.0", "60.0"]
DBX_TOKEN = "dapi0123456789abcdef0123456789abcdef"
DBX_CLIENT = ("dbx-sp-client-id", "dose-dbx-client-secret-1")
DBX_CC_TOKEN = "eyJraWQiOiJkYnhtMm0ifQ.m2m.token"
DBX_WAREHOUSES = {"wh-ok": "RUNNING", "wh-locked": None}
DBX_CLUSTER = "0123-456789-abcdefgh"


class Vendor(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("saas-peer: " + fmt % args + "\n")

    def answer(self, status, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def wrong(self, why):
        self.answer(400, {"lookalike_error": why})

    def bearer(self):
        auth = self.headers.get("Authorization", "")
        return auth[len("Bearer "):] if auth.startswith("Bearer ") else None

    def form(self):
        if self.headers.get("Content-Type", "").split(";")[0] != "application/x-www-form-urlencoded":
            return None
        length = int(self.headers.get("Content-Length", "0"))
        return {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}

    def host(self):
        return self.headers.get("Host", "").split(":")[0].lower()

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def route(self, method):
        host, url = self.host(), urlsplit(self.path)
        if host == "api.hubapi.com":
            return self.hubspot(method, url)
        if host.endswith(".my.salesforce.com"):
            return self.salesforce(method, url)
        if host.endswith(".cloud.databricks.com"):
            return self.databricks(method, url)
        self.wrong(f"no vendor answers for host {host!r}")

    # HubSpot: account information API.
    def hubspot(self, method, url):
        if (method, url.path) != ("GET", "/account-info/v3/details"):
            return self.answer(404, {"status": "error", "message": "Not found", "category": "OBJECT_NOT_FOUND"})
        token = self.bearer()
        correlation = str(uuid.uuid4())
        if token == HUBSPOT_TOKEN:
            return self.answer(200, {"portalId": 62515, "accountType": "STANDARD", "timeZone": "US/Eastern",
                                     "companyCurrency": "USD", "additionalCurrencies": [], "utcOffset": "-05:00",
                                     "utcOffsetMilliseconds": -18000000, "uiDomain": "app.hubspot.com",
                                     "dataHostingLocation": "na1"})
        if token == HUBSPOT_NO_SCOPE:
            return self.answer(403, {
                "status": "error",
                "message": "This app hasn't been granted all required scopes to make this call.",
                "correlationId": correlation,
                "errors": [{"message": "One or more of the following scopes are required.",
                            "context": {"requiredGranularScopes": ["account-info.security.read"]}}],
                "category": "MISSING_SCOPES"})
        return self.answer(401, {
            "status": "error",
            "message": "Authentication credentials not found. This API supports OAuth 2.0 authentication.",
            "correlationId": correlation, "category": "INVALID_AUTHENTICATION"})

    # Salesforce: OAuth client credentials at My Domain, the versions list, limits.
    def salesforce(self, method, url):
        if (method, url.path) == ("POST", "/services/oauth2/token"):
            form = self.form()
            if form is None or form.get("grant_type") != "client_credentials":
                return self.answer(400, {"error": "unsupported_grant_type", "error_description": "grant type not supported"})
            if (form.get("client_id"), form.get("client_secret")) != SF_CLIENT:
                return self.answer(400, {"error": "invalid_client", "error_description": "invalid client credentials"})
            return self.answer(200, {"access_token": SF_CC_TOKEN, "signature": "c2lnbmF0dXJl", "scope": "api",
                                     "instance_url": f"https://{self.host()}",
                                     "id": "https://login.salesforce.com/id/00Dxx0000000001/005xx000001",
                                     "token_type": "Bearer", "issued_at": "1700000000000"})
        if (method, url.path) == ("GET", "/services/data/"):
            return self.answer(200, [{"label": "v" + v, "url": f"/services/data/v{v}", "version": v} for v in SF_VERSIONS])
        if method == "GET" and url.path == f"/services/data/v{SF_VERSIONS[-1]}/limits":
            token = self.bearer()
            if token in (SF_TOKEN, SF_CC_TOKEN):
                return self.answer(200, {"DailyApiRequests": {"Max": 15000, "Remaining": 14998}})
            if token == SF_NO_API:
                return self.answer(403, [{"message": "The REST API is not enabled for this Organization.",
                                          "errorCode": "API_DISABLED_FOR_ORG"}])
            return self.answer(401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
        return self.answer(404, [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}])

    # Databricks: OAuth M2M token endpoint, SQL warehouses, clusters.
    def databricks(self, method, url):
        if (method, url.path) == ("POST", "/oidc/v1/token"):
            auth = self.headers.get("Authorization", "")
            client = base64.b64decode(auth[6:]).decode().split(":", 1) if auth.startswith("Basic ") else None
            form = self.form()
            if form is None or form.get("grant_type") != "client_credentials" or form.get("scope") != "all-apis":
                return self.wrong("expected grant_type=client_credentials&scope=all-apis")
            if client is None or tuple(client) != DBX_CLIENT:
                return self.answer(401, {"error": "invalid_client", "error_description": "Client authentication failed"})
            return self.answer(200, {"access_token": DBX_CC_TOKEN, "token_type": "Bearer", "expires_in": 3600,
                                     "scope": "all-apis"})
        if method != "GET":
            return self.wrong(f"unexpected {method} {url.path}")
        if self.bearer() not in (DBX_TOKEN, DBX_CC_TOKEN):
            return self.answer(401, {"error_code": "UNAUTHENTICATED",
                                     "message": "Credential was not sent or was of an unsupported type for this API."})
        if url.path.startswith("/api/2.0/sql/warehouses/"):
            wid = url.path.rsplit("/", 1)[1]
            if wid not in DBX_WAREHOUSES:
                return self.answer(404, {"error_code": "RESOURCE_DOES_NOT_EXIST",
                                         "message": f"Unable to find warehouse {wid}"})
            if DBX_WAREHOUSES[wid] is None:
                return self.answer(403, {"error_code": "PERMISSION_DENIED",
                                         "message": f"User does not have CAN_USE permission on warehouse {wid}"})
            return self.answer(200, {"id": wid, "name": "Starter Warehouse", "state": DBX_WAREHOUSES[wid],
                                     "cluster_size": "2X-Small"})
        if url.path == "/api/2.0/clusters/get":
            cid = parse_qs(url.query).get("cluster_id", [None])[0]
            if cid != DBX_CLUSTER:
                return self.answer(400, {"error_code": "INVALID_PARAMETER_VALUE",
                                         "message": f"Cluster {cid} does not exist"})
            return self.answer(200, {"cluster_id": cid, "cluster_name": "etl", "state": "TERMINATED"})
        return self.answer(404, {"error_code": "ENDPOINT_NOT_FOUND", "message": f"No API found for 'GET {url.path}'"})


if __name__ == "__main__":
    port, pki = int(sys.argv[1]), sys.argv[2]
    serve(port, Vendor, pki, background=False, cert="vendors")
