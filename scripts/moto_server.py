"""Starts moto's server (S3, DynamoDB, Secrets Manager, Step Functions) on 127.0.0.1 with
Step Functions really executing state machines. Used by scripts/moto.sh."""
import sys

from moto.core.config import default_user_config
from moto.s3 import responses as s3_responses
from moto import server

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

port = sys.argv[1] if len(sys.argv) > 1 else "55500"
sys.argv = ["moto_server", "-H", "127.0.0.1", "-p", port]
server.main()
