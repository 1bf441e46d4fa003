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
  *.snowflakecomputing.com  POST /session/v1/login-request (password or SNOWFLAKE_JWT),
                          POST /session?delete=true
                          https://docs.snowflake.com/en/user-guide/key-pair-auth
  oauth2.googleapis.com   POST /token (RFC 7523 JWT bearer assertion of a service account)
  bigquery.googleapis.com GET /bigquery/v2/projects/{p}/datasets/{d}
  storage.googleapis.com  GET /storage/v1/b/{bucket}
                          https://developers.google.com/identity/protocols/oauth2/service-account#httprest
  *.cloud.databricks.com  POST /oidc/v1/token (client_credentials, Basic, scope all-apis),
                          GET /api/2.0/sql/warehouses/{id}, GET /api/2.0/clusters/get?cluster_id=
                          https://docs.databricks.com/en/dev-tools/auth/oauth-m2m.html

The test credentials below are test data; tests/integration/saas.rs uses the same values.
"""

import base64
import hashlib
import hmac
import json
import secrets
import sys
import time
import uuid
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peer_io import serve  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding  # noqa: E402

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
SNOWFLAKE_PASSWORD = "snow-pass-1"
# Users (upper case, as Snowflake compares them): a password user and a key-pair user, and what
# exists and is granted: the warehouse, database and role the right rows name.
SNOWFLAKE_USERS = {"PROBE_USER": "password", "KEY_USER": "key"}
SNOWFLAKE_WAREHOUSES = {"COMPUTE_WH"}
SNOWFLAKE_DATABASES = {"ANALYTICS"}
SNOWFLAKE_ROLES = {"ANALYST", "PUBLIC"}
SNOWFLAKE_EXISTING_ROLES = SNOWFLAKE_ROLES | {"ACCOUNTADMIN"}
SNOWFLAKE_SESSIONS = set()
LOGIN_PUBLIC_KEY = None  # loaded from PKI_DIR/login_key.p8 at start
# The Google service account (its key is login_key.p8), its grants, and the tokens issued.
GOOGLE_SA = {"client_email": "probe@probe-project.iam.gserviceaccount.com", "private_key_id": "0123abcd"}
GOOGLE_SCOPES = {"https://www.googleapis.com/auth/bigquery.readonly": "bigquery",
                 "https://www.googleapis.com/auth/devstorage.read_only": "storage"}
GOOGLE_TOKENS = {}  # access token → "bigquery" | "storage"
# Cloud Storage HMAC keys (XML API, SigV4 with region auto and service s3).
GCS_HMAC = {"GOOG1EPROBEHMACKEY000000000000000000000000000000000000000": "gcs-hmac-secret-0123456789abcdefghijklmn"}
BQ_DATASETS = {"probe-project:analytics": True, "probe-project:secret": False}
GCS_BUCKETS = {"probe-bucket": True, "locked-bucket": False}


def b64url(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def fingerprint(public_key) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode()


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
        if host.endswith(".snowflakecomputing.com"):
            return self.snowflake(method, url, host)
        if host in ("oauth2.googleapis.com", "bigquery.googleapis.com", "storage.googleapis.com"):
            return self.google(method, url, host)
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

    # Snowflake: the drivers' login request and session close.
    def snowflake_failed(self, code, message):
        self.answer(200, {"data": {"nextAction": "RETRY_LOGIN", "authnMethod": "PASSWORD"},
                          "code": code, "message": message, "success": False, "headers": None})

    def jwt_ok(self, token, account, user) -> bool:
        try:
            head, payload, sig = token.split(".")
            if json.loads(b64url(head)).get("alg") != "RS256":
                return False
            LOGIN_PUBLIC_KEY.verify(b64url(sig), f"{head}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
            claims = json.loads(b64url(payload))
        except Exception:
            return False
        now = time.time()
        subject = f"{account}.{user}"
        return (claims.get("sub") == subject
                and claims.get("iss") == f"{subject}.{fingerprint(LOGIN_PUBLIC_KEY)}"
                and claims.get("iat", 0) <= now + 60 and now < claims.get("exp", 0) <= claims.get("iat", 0) + 3600)

    def snowflake(self, method, url, host):
        query = parse_qs(url.query)
        if (method, url.path) == ("GET", "/"):
            return self.answer(200, {"message": "Snowflake"})
        if (method, url.path) == ("POST", "/session") and query.get("delete") == ["true"]:
            auth = self.headers.get("Authorization", "")
            token = auth[len('Snowflake Token="'):-1] if auth.startswith('Snowflake Token="') else None
            if token not in SNOWFLAKE_SESSIONS:
                return self.answer(401, {"data": None, "code": "390104", "message": "Session no longer exists.",
                                         "success": False})
            SNOWFLAKE_SESSIONS.discard(token)
            return self.answer(200, {"data": None, "code": None, "message": None, "success": True})
        if (method, url.path) != ("POST", "/session/v1/login-request"):
            return self.answer(404, {"data": None, "code": "390400", "message": "Not found", "success": False})
        try:
            uuid.UUID(query["request_id"][0])
        except (KeyError, ValueError):
            return self.wrong("request_id must be a UUID")
        if self.headers.get("Content-Type", "").split(";")[0] != "application/json":
            return self.wrong("the login request is JSON")
        length = int(self.headers.get("Content-Length", "0"))
        data = json.loads(self.rfile.read(length)).get("data", {})
        account = host.split(".")[0].upper()
        if data.get("ACCOUNT_NAME") != account or not data.get("CLIENT_APP_ID"):
            return self.wrong(f"data.ACCOUNT_NAME must be {account} and CLIENT_APP_ID set")
        if data.get("SESSION_PARAMETERS", {}).get("CLIENT_VALIDATE_DEFAULT_PARAMETERS") is not True:
            return self.wrong("expected CLIENT_VALIDATE_DEFAULT_PARAMETERS")
        user = str(data.get("LOGIN_NAME", "")).upper()
        kind = SNOWFLAKE_USERS.get(user)
        if data.get("AUTHENTICATOR") == "SNOWFLAKE_JWT":
            if kind != "key" or not self.jwt_ok(data.get("TOKEN", ""), account, user):
                return self.snowflake_failed("390144", "JWT token is invalid.")
        elif kind != "password" or data.get("PASSWORD") != SNOWFLAKE_PASSWORD:
            return self.snowflake_failed("390100", "Incorrect username or password was specified.")
        role = query.get("roleName", ["PUBLIC"])[0].upper()
        if role not in SNOWFLAKE_EXISTING_ROLES:
            return self.snowflake_failed("390189", f"Role '{role}' specified in the connect string does not exist or not authorized. Contact your local system administrator, or attempt to login with another role, e.g. PUBLIC.")
        if role not in SNOWFLAKE_ROLES:
            return self.snowflake_failed("390186", f"Role '{role}' specified in the connect string is not granted to this user. Contact your local system administrator, or attempt to login with another role, e.g. PUBLIC.")
        for param, known, what in (("databaseName", SNOWFLAKE_DATABASES, "database"),
                                   ("warehouse", SNOWFLAKE_WAREHOUSES, "warehouse")):
            if param in query and query[param][0].upper() not in known:
                return self.snowflake_failed("390201", f"The requested {what} does not exist or not authorized.")
        token = "ver:1-hint:1234-" + secrets.token_hex(16)
        SNOWFLAKE_SESSIONS.add(token)
        return self.answer(200, {"data": {
            "masterToken": "ver:1-hint:1234-" + secrets.token_hex(16), "token": token,
            "validityInSeconds": 3600, "masterValidityInSeconds": 14400, "displayUserName": user,
            "serverVersion": "8.44.1", "firstLogin": False, "remMeToken": None, "remMeValidityInSeconds": 0,
            "healthCheckInterval": 45, "newClientForUpgrade": None, "sessionId": 1234, "parameters": [],
            "sessionInfo": {"databaseName": query.get("databaseName", [None])[0], "schemaName": None,
                            "warehouseName": query.get("warehouse", [None])[0], "roleName": role},
            "idToken": None, "idTokenValidityInSeconds": 0, "responseData": None, "mfaToken": None,
            "mfaTokenValidityInSeconds": 0}, "code": None, "message": None, "success": True})

    # Google: the token endpoint (JWT bearer), BigQuery datasets.get, Cloud Storage buckets.get.
    def google(self, method, url, host):
        if host == "oauth2.googleapis.com":
            if (method, url.path) != ("POST", "/token"):
                return self.answer(404, {"error": "not_found"})
            form = self.form() or {}
            if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
                return self.answer(400, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type: "})
            try:
                head, payload, sig = form.get("assertion", "").split(".")
                header, claims = json.loads(b64url(head)), json.loads(b64url(payload))
            except ValueError:
                return self.answer(400, {"error": "invalid_grant", "error_description": "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe"})
            if header.get("alg") != "RS256" or header.get("kid") != GOOGLE_SA["private_key_id"] \
                    or claims.get("iss") != GOOGLE_SA["client_email"]:
                return self.answer(400, {"error": "invalid_grant", "error_description": "Invalid grant: account not found"})
            try:
                LOGIN_PUBLIC_KEY.verify(b64url(sig), f"{head}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
            except Exception:
                return self.answer(400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
            now = time.time()
            if claims.get("aud") != "https://oauth2.googleapis.com/token" or not (
                    claims.get("iat", 0) <= now + 60 and now < claims.get("exp", 0) <= claims.get("iat", 0) + 3600):
                return self.answer(400, {"error": "invalid_grant", "error_description": "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim."})
            if claims.get("scope") not in GOOGLE_SCOPES:
                return self.answer(400, {"error": "invalid_scope", "error_description": "Invalid OAuth scope or ID token audience provided."})
            token = "ya29.c." + secrets.token_urlsafe(24)
            GOOGLE_TOKENS[token] = GOOGLE_SCOPES[claims["scope"]]
            return self.answer(200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"})
        if method != "GET":
            return self.wrong(f"unexpected {method}")
        if self.headers.get("Authorization", "").startswith("AWS4-HMAC-SHA256 "):
            return self.gcs_xml(url)
        service = "bigquery" if host.startswith("bigquery") else "storage"
        if GOOGLE_TOKENS.get(self.bearer()) != service:
            return self.answer(401, {"error": {"code": 401, "message": "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.", "status": "UNAUTHENTICATED"}})
        parts = url.path.strip("/").split("/")
        if service == "bigquery" and len(parts) == 6 and parts[:3] == ["bigquery", "v2", "projects"] and parts[4] == "datasets":
            ref = f"{parts[3]}:{parts[5]}"
            if ref not in BQ_DATASETS:
                return self.answer(404, {"error": {"code": 404, "message": f"Not found: Dataset {ref}", "status": "NOT_FOUND"}})
            if not BQ_DATASETS[ref]:
                return self.answer(403, {"error": {"code": 403, "message": f"Access Denied: Dataset {ref}: Permission bigquery.datasets.get denied on dataset {ref} (or it may not exist).", "status": "PERMISSION_DENIED"}})
            return self.answer(200, {"kind": "bigquery#dataset", "id": ref, "location": "US",
                                     "datasetReference": {"projectId": parts[3], "datasetId": parts[5]}})
        if service == "storage" and len(parts) == 4 and parts[:3] == ["storage", "v1", "b"]:
            bucket = parts[3]
            if bucket not in GCS_BUCKETS:
                return self.answer(404, {"error": {"code": 404, "message": "The specified bucket does not exist.", "errors": [{"message": "The specified bucket does not exist.", "domain": "global", "reason": "notFound"}]}})
            if not GCS_BUCKETS[bucket]:
                message = f"{GOOGLE_SA['client_email']} does not have storage.buckets.get access to the Google Cloud Storage bucket. Permission 'storage.buckets.get' denied on resource (or it may not exist)."
                return self.answer(403, {"error": {"code": 403, "message": message, "errors": [{"message": message, "domain": "global", "reason": "forbidden"}]}})
            return self.answer(200, {"kind": "storage#bucket", "id": bucket, "name": bucket, "location": "US"})
        return self.answer(404, {"error": {"code": 404, "message": "Not Found", "status": "NOT_FOUND"}})

    def xml_error(self, status, code, message):
        data = f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>{message}</Message></Error>".encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def sigv4_ok(self, url) -> str | None:
        """Verifies an AWS SigV4 signature as Cloud Storage's XML API does (region auto, service
        s3); the access key on success, None when the key is unknown, "" when the signature is wrong."""
        auth = self.headers["Authorization"][len("AWS4-HMAC-SHA256 "):]
        fields = dict(part.strip().split("=", 1) for part in auth.split(","))
        key_id, date, region, service, terminal = fields["Credential"].split("/")
        if key_id not in GCS_HMAC:
            return None
        signed = fields["SignedHeaders"].split(";")
        if (region, service, terminal) != ("auto", "s3", "aws4_request") or "host" not in signed:
            return ""
        payload = self.headers.get("x-amz-content-sha256", "")
        from urllib.parse import quote
        query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
                         for k, v in sorted((k, v[0]) for k, v in parse_qs(url.query, keep_blank_values=True).items()))
        headers = "".join(f"{h}:{self.headers.get(h, '').strip()}\n" for h in signed)
        canonical = "\n".join(["GET", url.path, query, headers, fields["SignedHeaders"], payload])
        amz_date = self.headers.get("x-amz-date", "")
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, f"{date}/{region}/{service}/aws4_request",
                              hashlib.sha256(canonical.encode()).hexdigest()])
        k = ("AWS4" + GCS_HMAC[key_id]).encode()
        for part in (date, region, service, "aws4_request"):
            k = hmac.new(k, part.encode(), hashlib.sha256).digest()
        expected = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
        return key_id if hmac.compare_digest(expected, fields["Signature"]) else ""

    def gcs_xml(self, url):
        who = self.sigv4_ok(url)
        if who is None:
            return self.xml_error(403, "InvalidAccessKeyId", "The Cloud Storage HMAC key provided does not exist.")
        if who == "":
            return self.xml_error(403, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided.")
        bucket = url.path.strip("/")
        if bucket not in GCS_BUCKETS:
            return self.xml_error(404, "NoSuchBucket", "The specified bucket does not exist.")
        if not GCS_BUCKETS[bucket]:
            return self.xml_error(403, "AccessDenied", "Access denied.")
        data = f"<?xml version='1.0' encoding='UTF-8'?><ListBucketResult xmlns='http://doc.s3.amazonaws.com/2006-03-01'><Name>{bucket}</Name><MaxKeys>1</MaxKeys><IsTruncated>false</IsTruncated></ListBucketResult>".encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/xml; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

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
    LOGIN_PUBLIC_KEY = serialization.load_pem_private_key(
        Path(pki, "login_key.p8").read_bytes(), password=None).public_key()
    serve(port, Vendor, pki, background=False, cert="vendors")
