"""Starts moto's server (S3, DynamoDB, Secrets Manager, Step Functions) on 127.0.0.1 with
Step Functions really executing state machines, and beside it the Lambda invoke gateway that
state machine Tasks call. Used by scripts/moto.sh.

    moto_server.py PORT [GATEWAY_PORT LAMBDA_URL]

moto's Step Functions interpreter calls every AWS service, Lambda included, at
http://localhost:$MOTO_PORT; moto's own Lambda needs Docker. So MOTO_PORT points at the
gateway, which sends Lambda invocations to `cargo lambda watch` (LAMBDA_URL) and everything
else to moto. It also hides two differences between cargo lambda and Lambda that would keep
Retry and Catch from ever running: cargo lambda answers 404 for a function named by its ARN,
and reports a function error as HTTP 500 where Lambda answers 200 with X-Amz-Function-Error.
"""
import calendar
import copy
import hashlib
import hmac
import json
import os
import time
import urllib.parse
import re
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from moto.core.config import default_user_config
from moto.dynamodb.models import DynamoDBBackend
from moto.s3 import responses as s3_responses
from moto import server
from moto.stepfunctions.models import StateMachineInstance

default_user_config["stepfunctions"] = {"execute_state_machine": True}

# Fidelity fix: moto 5.2's serializer names the CompleteMultipartUpload reply's root element
# "CompleteMultipartUploadResponse"; S3 sends "CompleteMultipartUploadResult", and the Rust
# SDK (strict, unlike boto3) rejects anything else. Correct just that element name.
_serialized = s3_responses.S3Response.serialized


def _serialized_fixed(self, action_result):
    status, headers, body = _serialized(self, action_result)
    if self.data.get("Action") == "CompleteMultipartUpload":
        wrong, right = "CompleteMultipartUploadResponse", "CompleteMultipartUploadResult"
        if isinstance(body, bytes):
            body = body.replace(wrong.encode(), right.encode())
        else:
            body = body.replace(wrong, right)
    return status, headers, body


s3_responses.S3Response.serialized = _serialized_fixed

# Fidelity fix: moto 5.2 deep-copies the state machine, its past executions included, at every
# StartExecution; an execution that ran holds a lock that cannot be copied, so the second
# execution of a state machine fails with HTTP 500. The copy needs no executions.
_copy = copy.deepcopy


def _state_machine_copy(self, memo):
    clone = self.__class__.__new__(self.__class__)
    memo[id(self)] = clone
    for k, v in self.__dict__.items():
        setattr(clone, k, [] if k == "executions" else _copy(v, memo))
    return clone


StateMachineInstance.__deepcopy__ = _state_machine_copy

# Fidelity fix: DynamoDB applies each item write (an UpdateItem's ADD, a conditional PutItem)
# atomically; moto's threaded server runs two writes to one item side by side, so concurrent
# ADDs lose counts. One lock around moto's write paths gives DynamoDB's per-item atomicity.
_ddb_lock = threading.RLock()


def _atomic(method):
    def locked(self, *args, **kwargs):
        with _ddb_lock:
            return method(self, *args, **kwargs)

    return locked


for _name in ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item"):
    if hasattr(DynamoDBBackend, _name):
        setattr(DynamoDBBackend, _name, _atomic(getattr(DynamoDBBackend, _name)))

INVOKE = re.compile(r"^/2015-03-31/functions/([^/]+)/invocations$")

# The deployed API's stand-in: requests to /execute-api/... are what API Gateway with the
# AWS_IAM authorizer does with a call to the stage URL: check the SigV4 signature (service
# execute-api; the emulator's one key pair, test/test), then hand the api function the REST
# proxy event with the caller's identity, and answer what it returns. moto's API Gateway
# cannot invoke a Lambda without Docker. Used by `dbsync console --api` tests.
EXECUTE_API = "/execute-api"
KEYS = {"test": "test"}
AUTH = re.compile(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, ?"
                  r"SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$")


def _quote(s):
    return urllib.parse.quote(s, safe="-_.~")


def sigv4_problem(method, path, query, headers, body):
    """None when the request is signed by a known key for execute-api; else why not."""
    m = AUTH.match(headers.get("Authorization", ""))
    if not m:
        return "missing or malformed SigV4 Authorization header"
    key_id, day, region, service, signed, signature = m.groups()
    if service != "execute-api":
        return f"signed for {service}, not execute-api"
    secret = KEYS.get(key_id)
    if secret is None:
        return f"the security token included in the request is invalid ({key_id})"
    amz_date = headers.get("X-Amz-Date", "")
    try:
        skew = abs(time.time() - calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ")))
    except ValueError:
        return "no X-Amz-Date"
    if skew > 900:
        return "signature expired"
    # Non-S3 services encode each path segment twice.
    uri = "/".join(_quote(_quote(urllib.parse.unquote(seg))) for seg in path.split("/"))
    pairs = sorted((_quote(urllib.parse.unquote_plus(k)), _quote(urllib.parse.unquote_plus(v)))
                   for k, _, v in (kv.partition("=") for kv in query.split("&") if kv))
    canonical_query = "&".join(f"{k}={v}" for k, v in pairs)
    lines = "".join(f"{h}:{' '.join((headers.get(h) or '').split())}\n" for h in signed.split(";"))
    payload = headers.get("x-amz-content-sha256") or hashlib.sha256(body).hexdigest()
    creq = "\n".join([method, uri, canonical_query, lines, signed, payload])
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(creq.encode()).hexdigest()])
    k = ("AWS4" + secret).encode()
    for part in (day, region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest(), signature):
        return "the request signature we calculated does not match the signature you provided"
    return None


def api_gateway(lambda_url, method, path, query, headers, body, key_id):
    """The REST proxy event of a signed call, the api function's answer as HTTP."""
    route = path[len(EXECUTE_API):] or "/"
    params = dict(urllib.parse.parse_qsl(query)) or None
    user = f"arn:aws:iam::123456789012:user/{key_id}"
    event = {
        "resource": route, "path": route, "httpMethod": method,
        "headers": {k.lower(): v for k, v in headers.items()},
        "multiValueHeaders": {k.lower(): [v] for k, v in headers.items()},
        "queryStringParameters": params,
        "multiValueQueryStringParameters": {k: [v] for k, v in params.items()} if params else None,
        "pathParameters": None, "stageVariables": None,
        "requestContext": {
            "accountId": "123456789012", "resourceId": "local", "stage": "v1",
            "requestId": hashlib.sha1(os.urandom(8)).hexdigest(),
            "identity": {"accountId": "123456789012", "caller": key_id, "userArn": user,
                         "sourceIp": "127.0.0.1", "userAgent": headers.get("User-Agent", "")},
            "resourcePath": route, "httpMethod": method, "apiId": "local",
        },
        "body": body.decode() if body else None,
        "isBase64Encoded": False,
    }
    req = urllib.request.Request(f"{lambda_url}/2015-03-31/functions/api/invocations",
                                 data=json.dumps(event).encode(), method="POST",
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        out = json.loads(r.read())
    return out.get("statusCode", 502), (out.get("body") or "").encode()


def gateway(moto_url, lambda_url):
    class Gateway(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def answer(self, status, rbody, rheaders=()):
            self.send_response(status)
            for k, v in rheaders:
                if k.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(rbody)))
            self.end_headers()
            self.wfile.write(rbody)

        def execute_api(self, body):
            path, _, query = self.path.partition("?")
            headers = dict(self.headers.items())
            problem = sigv4_problem(self.command, path, query, self.headers, body)
            if problem:
                self.answer(403, json.dumps({"message": problem}).encode(), [("Content-Type", "application/json")])
                return
            key_id = AUTH.match(self.headers["Authorization"]).group(1)
            try:
                status, rbody = api_gateway(lambda_url, self.command, path, query, headers, body, key_id)
            except OSError as e:
                status, rbody = 502, json.dumps({"message": f"gateway: api function: {e}"}).encode()
            self.answer(status, rbody, [("Content-Type", "application/json")])

        def forward(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path.startswith(EXECUTE_API + "/") or self.path.split("?")[0] == EXECUTE_API:
                self.execute_api(body)
                return
            m = INVOKE.match(self.path.split("?")[0])
            if m:
                # arn:aws:lambda:region:account:function:NAME[:qualifier] -> NAME
                name = urllib.request.unquote(m.group(1))
                if name.startswith("arn:"):
                    name = name.split(":")[6]
                url = f"{lambda_url}/2015-03-31/functions/{name}/invocations"
            else:
                url = moto_url + self.path
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
            req = urllib.request.Request(url, data=body if body or self.command in ("POST", "PUT") else None,
                                         headers=headers, method=self.command)
            try:
                with urllib.request.urlopen(req, timeout=960) as r:
                    status, rheaders, rbody = r.status, r.getheaders(), r.read()
            except urllib.error.HTTPError as e:
                status, rheaders, rbody = e.code, e.headers.items(), e.read()
            except OSError as e:
                status, rheaders, rbody = 502, [], f"gateway: {url}: {e}".encode()
            extra = []
            if m and status == 500:
                status, extra = 200, [("X-Amz-Function-Error", "Unhandled")]
            self.answer(status, rbody, list(rheaders) + extra)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = forward

    return Gateway


port = sys.argv[1] if len(sys.argv) > 1 else "55500"
if len(sys.argv) > 3:
    gw_port, lambda_url = sys.argv[2], sys.argv[3].rstrip("/")
    os.environ["MOTO_PORT"] = gw_port
    srv = ThreadingHTTPServer(("127.0.0.1", int(gw_port)), gateway(f"http://127.0.0.1:{port}", lambda_url))
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
sys.argv = ["moto_server", "-H", "127.0.0.1", "-p", port]
server.main()
