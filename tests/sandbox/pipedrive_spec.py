"""Validate HTTP exchanges against Pipedrive's official OpenAPI files (v1 and v2) with openapi-core.

Usage::

    from tests.sandbox.pipedrive_spec import validate_exchange
    validate_exchange(response.request, response)   # AssertionError with a readable message on any mismatch

The files are Pipedrive's own (not redistributable, so not in this repository): they are read from
``$CRM_DESKTOP_PIPEDRIVE_SPEC_DIR``, else from ``../shared/vendor-specs/pipedrive`` beside the checkout.
Each is parsed once per process. Requests are matched to the spec's server
(``https://api.pipedrive.com/v1`` and ``.../api/v2``) by host:
the path is kept, since the sandbox serves Pipedrive's own paths (``/v1/...``, ``/api/v2/...``) at its base URL.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_schema_validator import OAS30Validator
from werkzeug.datastructures import Headers, ImmutableMultiDict

#: The vendor specs sit beside the checkout, in ``../shared/vendor-specs`` (never committed: no licence to ship them).
DEFAULT_SPEC_DIR = Path(__file__).resolve().parents[3] / "shared" / "vendor-specs" / "pipedrive"
SPEC_FILES = {"v1": "openapi-v1.yaml", "v2": "openapi-v2.yaml"}
#: Where the spec files say the API lives (both servers are on this host).
SPEC_HOST_URL = "https://api.pipedrive.com"
_SERVER_PREFIXES = {"v1": "/v1", "v2": "/api/v2"}
#: Operations whose declared error response is Pipedrive's error envelope, one per spec. Most operations declare
#: no error responses at all; these schemas stand for the envelope everywhere (see :func:`validate_error_envelope`).
ERROR_ENVELOPE_SOURCES = {"v1": ("/leads/{id}", "get", "404"), "v2": ("/deals/{id}/convert/lead", "post", "404")}

#: Corrections to the spec's schemas, each for a contradiction inside the spec itself (a schema says one thing,
#: its own description another). Nothing here loosens what the spec means.
SPEC_ERRATA = (
    "additional_data.next_cursor is typed 'string' without 'nullable', yet its description says it is null "
    "on the last page; it is marked nullable.",
)


def spec_dir() -> Path:
    """Folder holding ``openapi-v1.yaml`` and ``openapi-v2.yaml``."""
    return Path(os.environ.get("CRM_DESKTOP_PIPEDRIVE_SPEC_DIR", str(DEFAULT_SPEC_DIR)))


def specs_available() -> bool:
    """Whether both spec files can be read."""
    return all((spec_dir() / name).is_file() for name in SPEC_FILES.values())


@functools.cache
def spec_document(version: str) -> dict[str, Any]:
    """The parsed spec (``"v1"`` or ``"v2"``) with :data:`SPEC_ERRATA` applied; parsed once per process."""
    path = spec_dir() / SPEC_FILES[version]
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with path.open(encoding="utf-8") as handle:
        document: dict[str, Any] = yaml.load(handle, Loader=loader)
    _mark_next_cursor_nullable(document)
    return document


@functools.cache
def load_spec(version: str) -> OpenAPI:
    """The openapi-core validator of one spec (cached).

    The vendor's file is not itself re-validated as an OpenAPI document (that takes seconds and tests nothing of ours).
    """
    return OpenAPI.from_dict(spec_document(version), config=Config(spec_validator_cls=None))


def _mark_next_cursor_nullable(node: Any) -> None:
    if isinstance(node, dict):
        properties = node.get("properties")
        if isinstance(properties, dict):
            cursor = properties.get("next_cursor")
            if isinstance(cursor, dict) and cursor.get("type") == "string":
                cursor["nullable"] = True
        for value in node.values():
            _mark_next_cursor_nullable(value)
    elif isinstance(node, list):
        for value in node:
            _mark_next_cursor_nullable(value)


def version_of(path: str) -> str:
    """Which spec covers a request path.

    Raises:
        AssertionError: for a path outside both specs.
    """
    for version, prefix in _SERVER_PREFIXES.items():
        if path.startswith(prefix + "/"):
            return version
    raise AssertionError(f"{path} is under neither Pipedrive server (/v1, /api/v2)")


def spec_operation(method: str, path: str) -> dict[str, Any]:
    """The spec's operation object for a request (``x-token-cost``, ``operationId``, ``responses``...).

    Raises:
        AssertionError: when the spec has no such path or method.
    """
    version = version_of(path)
    relative = path[len(_SERVER_PREFIXES[version]) :]
    paths: dict[str, Any] = spec_document(version)["paths"]
    candidates = []
    for template, item in paths.items():
        pattern = "^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, relative):
            candidates.append((template.count("{"), template, item))
    if not candidates:
        raise AssertionError(f"the Pipedrive {version} spec has no path matching {relative}")
    # A literal segment beats a template one (/persons/search before /persons/{id}).
    _, template, item = min(candidates)
    operation = item.get(method.lower())
    if operation is None:
        raise AssertionError(f"the Pipedrive {version} spec has no {method.upper()} {template}")
    return dict(operation)


class HttpxSpecRequest:
    """An ``httpx.Request`` as openapi-core reads a request, moved onto the spec's server host."""

    def __init__(self, request: httpx.Request) -> None:
        self._request = request
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(list(request.url.params.multi_items())),
            header=Headers(list(request.headers.items())),
            cookie=ImmutableMultiDict(),
        )

    @property
    def host_url(self) -> str:
        return SPEC_HOST_URL

    @property
    def path(self) -> str:
        return self._request.url.path

    @property
    def method(self) -> str:
        return self._request.method.lower()

    @property
    def body(self) -> bytes | None:
        content = self._request.content
        return content or None

    @property
    def content_type(self) -> str:
        return str(self._request.headers.get("content-type", "application/json")).lower()


class HttpxSpecResponse:
    """An ``httpx.Response`` as openapi-core reads a response."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    @property
    def status_code(self) -> int:
        return self._response.status_code

    @property
    def content_type(self) -> str:
        return str(self._response.headers.get("content-type", "")).lower()

    @property
    def headers(self) -> Headers:
        return Headers(list(self._response.headers.items()))

    @property
    def data(self) -> bytes | None:
        return self._response.content or None


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _schema_lines(error: Any, depth: int = 0) -> Iterator[str]:
    where = getattr(error, "json_path", None) or "$"
    yield f"{'  ' * depth}- at {where}: {getattr(error, 'message', error)}"
    for child in getattr(error, "context", None) or []:
        yield from _schema_lines(child, depth + 1)


def describe_failure(exc: BaseException) -> str:
    """A readable account of an openapi-core failure: each cause, and each schema error with its JSON path."""
    lines: list[str] = []
    for cause in _causes(exc):
        text = str(cause)
        lines.append(f"{type(cause).__name__}: {text if len(text) <= 200 else text[:200] + '...'}")
        for error in getattr(cause, "schema_errors", None) or []:
            lines.extend(_schema_lines(error, 1))
    return "\n".join(lines)


def _label(request: httpx.Request, response: httpx.Response | None = None) -> str:
    status = f" -> {response.status_code}" if response is not None else ""
    return f"{request.method} {request.url.path}{status}"


def _body_excerpt(content: bytes) -> str:
    try:
        text = json.dumps(json.loads(content), ensure_ascii=False)
    except ValueError:
        text = content.decode("utf-8", "replace")
    return text if len(text) <= 600 else text[:600] + "..."


def validate_request(request: httpx.Request) -> None:
    """Check a request (path, query, headers incl. ``x-api-token``, JSON body) against the spec.

    Raises:
        AssertionError: naming the operation and every problem found.
    """
    spec = load_spec(version_of(request.url.path))
    try:
        spec.validate_request(HttpxSpecRequest(request))
    except Exception as exc:
        raise AssertionError(
            f"request {_label(request)} breaks the Pipedrive spec:\n{describe_failure(exc)}\n"
            f"body: {_body_excerpt(request.content)}"
        ) from None


def validate_response(request: httpx.Request, response: httpx.Response) -> None:
    """Check a response (status declared, content type, JSON body) against the spec's operation.

    Raises:
        AssertionError: naming the operation and every problem found.
    """
    operation = spec_operation(request.method, request.url.path)
    declared = sorted(operation.get("responses", {}))
    if str(response.status_code) not in declared and "default" not in declared:
        raise AssertionError(
            f"response {_label(request, response)}: the spec's {operation.get('operationId')} declares only "
            f"{', '.join(declared)}"
        )
    spec = load_spec(version_of(request.url.path))
    try:
        spec.validate_response(HttpxSpecRequest(request), HttpxSpecResponse(response))
    except Exception as exc:
        raise AssertionError(
            f"response {_label(request, response)} breaks the Pipedrive spec:\n{describe_failure(exc)}\n"
            f"body: {_body_excerpt(response.content)}"
        ) from None


def validate_exchange(request: httpx.Request, response: httpx.Response) -> None:
    """Check both the request and its response against the spec.

    Raises:
        AssertionError: with a readable message naming the operation and the problems.
    """
    validate_request(request)
    validate_response(request, response)


def token_cost(request: httpx.Request) -> int:
    """The spec's ``x-token-cost`` of the operation a request calls.

    Raises:
        AssertionError: when the operation has no declared cost.
    """
    operation = spec_operation(request.method, request.url.path)
    cost = operation.get("x-token-cost")
    if not isinstance(cost, int):
        raise AssertionError(f"{_label(request)}: the spec declares no x-token-cost")
    return cost


def error_envelope_schema(version: str) -> dict[str, Any]:
    """The error envelope's JSON schema as the spec declares it (see :data:`ERROR_ENVELOPE_SOURCES`)."""
    path, method, status = ERROR_ENVELOPE_SOURCES[version]
    response = spec_document(version)["paths"][path][method]["responses"][status]
    schema: dict[str, Any] = response["content"]["application/json"]["schema"]
    return schema


def validate_error_envelope(request: httpx.Request, response: httpx.Response) -> None:
    """Check an error answer against the spec's error envelope, for operations that declare no error responses.

    The spec's schema names the keys but requires none, so ``success: false`` and a non-empty ``error`` are
    required here too.

    Raises:
        AssertionError: naming the operation and the problems.
    """
    version = version_of(request.url.path)
    try:
        body = response.json()
    except ValueError:
        raise AssertionError(f"{_label(request, response)}: the error body is not JSON") from None
    problems = [
        f"at {error.json_path}: {error.message}"
        for error in OAS30Validator(error_envelope_schema(version)).iter_errors(body)
    ]
    if not isinstance(body, dict) or body.get("success") is not False:
        problems.append("success must be false")
    elif not isinstance(body.get("error"), str) or not body["error"]:
        problems.append("error must be a non-empty message")
    if problems:
        raise AssertionError(
            f"{_label(request, response)} is not Pipedrive's error envelope: {'; '.join(problems)}\n"
            f"body: {_body_excerpt(response.content)}"
        )
