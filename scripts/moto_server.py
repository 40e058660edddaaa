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
import copy
import os
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


def gateway(moto_url, lambda_url):
    class Gateway(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def forward(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
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
            self.send_response(status)
            for k, v in list(rheaders) + extra:
                if k.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(rbody)))
            self.end_headers()
            self.wfile.write(rbody)

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
