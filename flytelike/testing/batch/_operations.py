"""Which AWS service and operation an HTTP request to the emulator is, and how each service words an error.

Every service is served on one endpoint, as moto's server does: the service is the one named in the request's
SigV4 credential scope; Batch operations are the path (``/v1/submitjob``), CloudWatch Logs the ``X-Amz-Target``
header, S3 the method, path and query.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from flytelike.testing.batch._faults import FaultKind

__all__ = ["ErrorAnswer", "Operation", "error_answer", "operation_of"]

_BATCH_OPERATIONS = {
    name.lower(): name
    for name in (
        "CancelJob",
        "CreateComputeEnvironment",
        "CreateJobQueue",
        "CreateSchedulingPolicy",
        "DeleteComputeEnvironment",
        "DeleteJobQueue",
        "DeleteSchedulingPolicy",
        "DeregisterJobDefinition",
        "DescribeComputeEnvironments",
        "DescribeJobDefinitions",
        "DescribeJobQueues",
        "DescribeJobs",
        "DescribeSchedulingPolicies",
        "ListJobs",
        "ListSchedulingPolicies",
        "RegisterJobDefinition",
        "SubmitJob",
        "TerminateJob",
        "UpdateComputeEnvironment",
        "UpdateJobQueue",
        "UpdateSchedulingPolicy",
    )
}
_BATCH_TAGS = {"GET": "ListTagsForResource", "POST": "TagResource", "DELETE": "UntagResource"}


@dataclass(frozen=True, slots=True)
class Operation:
    """A request's service (the SigV4 signing name: ``batch``, ``logs``, ``s3`` ...) and operation name."""

    service: str
    name: str


def operation_of(environ: Mapping[str, Any]) -> Operation:
    """The service and operation of a WSGI request (``Operation("other", METHOD)`` for what is not signed)."""
    service = _signing_service(environ.get("HTTP_AUTHORIZATION", ""))
    path = str(environ.get("PATH_INFO", ""))
    method = str(environ.get("REQUEST_METHOD", "GET"))
    if service == "batch":
        parts = path.strip("/").split("/")
        if len(parts) >= 2 and parts[1] == "tags":
            return Operation(service, _BATCH_TAGS.get(method, "Tags"))
        last = parts[-1] if parts else ""
        return Operation(service, _BATCH_OPERATIONS.get(last.lower(), last or method))
    if service == "logs":
        target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
        return Operation(service, target.rpartition(".")[2] or method)
    if service == "s3":
        return Operation(service, _s3_operation(method, path, str(environ.get("QUERY_STRING", ""))))
    if service:
        return Operation(service, service)
    return Operation("other", method)


def _signing_service(authorization: str) -> str:
    # "AWS4-HMAC-SHA256 Credential=KEY/20240101/us-east-1/batch/aws4_request, SignedHeaders=..., Signature=..."
    _, found, rest = authorization.partition("Credential=")
    if not found:
        return ""
    scope = rest.split(",", 1)[0].split("/")
    return scope[3].lower() if len(scope) == 5 else ""


def _s3_operation(method: str, path: str, query_string: str) -> str:
    query = parse_qs(query_string, keep_blank_values=True)
    has_key = "/" in path.lstrip("/")
    if method == "HEAD":
        return "HeadObject" if has_key else "HeadBucket"
    if method == "GET":
        if not has_key:
            return "ListMultipartUploads" if "uploads" in query else "ListObjectsV2"
        return "ListParts" if "uploadId" in query else "GetObject"
    if method == "PUT":
        if not has_key:
            return "CreateBucket"
        if "partNumber" in query:
            return "UploadPart"
        return "PutObject"
    if method == "POST":
        if "uploads" in query:
            return "CreateMultipartUpload"
        return "CompleteMultipartUpload" if "uploadId" in query else "DeleteObjects"
    if method == "DELETE":
        if "uploadId" in query:
            return "AbortMultipartUpload"
        return "DeleteObject" if has_key else "DeleteBucket"
    return method


@dataclass(frozen=True, slots=True)
class ErrorAnswer:
    """An HTTP error response as the service would send it."""

    status: str
    headers: list[tuple[str, str]]
    body: bytes


# (kind, service) -> (HTTP status, error code, message), as each service answers
_ERRORS: dict[tuple[FaultKind, str], tuple[str, str, str]] = {
    ("throttle", "batch"): ("429 Too Many Requests", "TooManyRequestsException", "Too Many Requests."),
    ("error", "batch"): ("500 Internal Server Error", "ServerException", "Internal Server Error"),
    ("throttle", "logs"): ("400 Bad Request", "ThrottlingException", "Rate exceeded"),
    ("error", "logs"): (
        "500 Internal Server Error",
        "ServiceUnavailableException",
        "The service cannot complete the request.",
    ),
    ("throttle", "s3"): ("503 Slow Down", "SlowDown", "Please reduce your request rate."),
    ("error", "s3"): ("500 Internal Server Error", "InternalError", "We encountered an internal error."),
}
_DEFAULT_ERRORS: dict[FaultKind, tuple[str, str, str]] = {
    "throttle": ("400 Bad Request", "ThrottlingException", "Rate exceeded"),
    "error": ("500 Internal Server Error", "InternalFailure", "Internal Failure"),
}


def error_answer(kind: FaultKind, operation: Operation) -> ErrorAnswer:
    """The response of an injected fault, in the wire format of ``operation``'s service."""
    status, code, message = _ERRORS.get((kind, operation.service), _DEFAULT_ERRORS[kind])
    request_id = str(uuid.uuid4())
    if operation.service == "s3":
        xml = (
            f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{message}</Message>'
            f"<RequestId>{request_id}</RequestId></Error>"
        )
        body = b"" if operation.name in ("HeadObject", "HeadBucket") else xml.encode()
        headers = [("Content-Type", "application/xml"), ("x-amz-request-id", request_id)]
    else:
        content_type = "application/json" if operation.service == "batch" else "application/x-amz-json-1.1"
        body = json.dumps({"__type": code, "message": message}).encode()
        headers = [("Content-Type", content_type), ("x-amzn-ErrorType", code), ("x-amzn-RequestId", request_id)]
    headers.append(("Content-Length", str(len(body))))
    return ErrorAnswer(status, headers, body)
