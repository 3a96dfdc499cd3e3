"""The REST-JSON protocol of HealthOmics, driven by botocore's service model: routing by
each operation's method and requestUri, reading members from their locations (uri,
querystring, header, body), writing outputs by the output shape, and errors in the
service's shape (status from the error shape, `x-amzn-ErrorType`, `{"message": ...}`)."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import unquote

from botocore.model import NoShapeFoundError

from runlog.servicemodel import constraint_errors, service_model


class ApiError(Exception):
    """An error the service returns: `code` names an error shape of the model."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Route:
    operation: Any  # botocore OperationModel
    method: str
    pattern: re.Pattern
    literal_length: int


def _route_for(operation) -> Route:
    path = operation.http["requestUri"].split("?", 1)[0]
    regex, literal = "", 0
    for piece in re.split(r"(\{[^}]+\})", path):
        if piece.startswith("{"):
            label = piece[1:-1]
            greedy = label.endswith("+")
            label = label.rstrip("+")
            regex += f"(?P<{label}>.+)" if greedy else f"(?P<{label}>[^/]+)"
        else:
            regex += re.escape(piece)
            literal += len(piece)
    return Route(operation, operation.http["method"], re.compile(f"^{regex}$"), literal)


class Protocol:
    def __init__(self, service: str = "omics"):
        self.model = service_model(service)
        routes = [_route_for(self.model.operation_model(name)) for name in self.model.operation_names]
        # Prefer the most specific template: more literal characters first.
        self.routes = sorted(routes, key=lambda r: -r.literal_length)
        self._writers = _Writers()

    def match(self, method: str, path: str):
        """(OperationModel, {label: value}) for a request, or None."""
        for route in self.routes:
            if route.method != method:
                continue
            found = route.pattern.match(path)
            if found:
                return route.operation, {k: unquote(v) for k, v in found.groupdict().items()}
        return None

    # -- requests ------------------------------------------------------------------------------

    def parse(self, operation, labels: dict, query: dict[str, list[str]], headers, body: bytes) -> dict:
        """The operation's input members, from wherever the model says each one travels."""
        shape = operation.input_shape
        params: dict[str, Any] = {}
        if shape is None:
            return params
        document = {}
        if body:
            try:
                document = json.loads(body)
            except ValueError:
                raise ApiError("ValidationException", "request body is not valid JSON") from None
            if not isinstance(document, dict):
                raise ApiError("ValidationException", "request body is not a JSON object")
        for member, member_shape in shape.members.items():
            location = member_shape.serialization.get("location")
            wire = member_shape.serialization.get("name", member)
            if location == "uri":
                if wire in labels:
                    params[member] = _scalar(member_shape, labels[wire])
            elif location == "querystring":
                if wire in query:
                    values = query[wire]
                    params[member] = ([_scalar(member_shape.member, v) for v in values]
                                      if member_shape.type_name == "list" else _scalar(member_shape, values[-1]))
            elif location == "header":
                if headers.get(wire) is not None:
                    params[member] = _scalar(member_shape, headers[wire])
            elif member in document:
                params[member] = document[member]
        return params

    def validate(self, operation, params: dict) -> None:
        """What the service checks: required members, then every constraint of the model."""
        shape = operation.input_shape
        if shape is None:
            return
        missing = [m for m in shape.required_members if m not in params]
        if missing:
            raise ApiError("ValidationException", f"Missing required parameter(s): {', '.join(missing)}")
        problems = constraint_errors(shape, params, "")
        if problems:
            raise ApiError("ValidationException", "; ".join(problems))

    # -- responses -----------------------------------------------------------------------------

    def serialize(self, operation, result: dict) -> tuple[int, dict[str, str], bytes]:
        """The operation's answer: its response code, output members in headers and body."""
        status = int(operation.http.get("responseCode", 200))
        shape = operation.output_shape
        headers: dict[str, str] = {}
        body: dict[str, Any] = {}
        if shape is not None:
            for member, member_shape in shape.members.items():
                if member not in result or result[member] is None:
                    continue
                location = member_shape.serialization.get("location")
                if location == "header":
                    headers[member_shape.serialization.get("name", member)] = str(result[member])
                else:
                    body[member] = self._writers.write(member_shape, result[member])
        data = b"" if status == 204 else json.dumps(body).encode("utf-8")
        return status, headers, data

    def error(self, code: str, message: str, status: int | None = None) -> tuple[int, dict[str, str], bytes]:
        """An error answer: the status of the model's error shape for `code` (400 for a code
        the model does not define, unless `status` is given)."""
        if status is None:
            try:
                status = int(self.model.shape_for(code).metadata.get("error", {}).get("httpStatusCode", 400))
            except NoShapeFoundError:
                status = 400
        headers = {"x-amzn-ErrorType": code}
        return status, headers, json.dumps({"message": message}).encode("utf-8")


def _scalar(shape, text: str):
    kind = shape.type_name
    if kind in ("integer", "long"):
        try:
            return int(text)
        except ValueError:
            raise ApiError("ValidationException", f"{text!r} is not an integer") from None
    if kind == "boolean":
        return text.lower() == "true"
    return text


def _timestamp(iso: bool) -> Callable[[Any], Any]:
    """A timestamp as its format writes it (iso8601 to the millisecond, else epoch seconds).
    Written once per moment: the runs of a batch share a few moments on the emulator's clock,
    and a page of 100 ListRuns items holds up to 300 of them (100 000 runs paged: 300 000)."""

    @lru_cache(maxsize=4096)
    def written(moment: datetime) -> Any:  # a UTC moment: two local ones that compare equal may differ (fold)
        if iso:  # to the millisecond, cut (not rounded), as the service writes them
            return moment.isoformat(timespec="milliseconds")[:-6] + "Z"
        return moment.timestamp()

    def write(value: Any) -> Any:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        return written(moment.astimezone(UTC))

    return write


class _Writers:
    """How each output shape writes a Python value: a structure its modelled members that are
    not None, lists and maps item by item, timestamps per their format, anything else as it is.
    Worked out once per shape (botocore's shapes of one model stay the same objects) rather
    than from the model for every value: a page of 100 ListRuns items is about a thousand
    values. The server answers from several threads: writers are made under a lock and
    published whole, so no thread meets a structure's writer whose members are still being made."""

    def __init__(self) -> None:
        self._made: dict[int, tuple[Any, Callable[[Any], Any] | None]] = {}  # id(shape): (shape, writer)
        self._lock = threading.Lock()

    def write(self, shape, value: Any) -> Any:
        made = self._made.get(id(shape))
        if made is None:
            with self._lock:
                making: dict[int, tuple[Any, Callable[[Any], Any] | None]] = {}
                self._writer(shape, making)
                self._made.update(making)
            made = self._made[id(shape)]
        writer = made[1]
        return value if writer is None else writer(value)

    def _writer(self, shape, making: dict) -> Callable[[Any], Any] | None:
        """The function that writes a value of `shape` (None: as it is), kept in `making`
        with every writer it needs that was not made before."""
        made = self._made.get(id(shape)) or making.get(id(shape))
        if made is not None:
            return made[1]
        writer: Callable[[Any], Any] | None = None
        kind = shape.type_name
        if kind == "timestamp":
            writer = _timestamp(shape.serialization.get("timestampFormat") == "iso8601")
        elif kind == "structure" and not shape.metadata.get("document"):
            members: dict[str, Callable[[Any], Any] | None] = {}

            def structure(value: Any) -> Any:
                if not isinstance(value, dict):
                    return value
                out = {}
                for key, item in value.items():
                    if item is None or key not in members:
                        continue
                    write = members[key]
                    out[key] = item if write is None else write(item)
                return out

            making[id(shape)] = (shape, structure)  # first: a shape may hold itself
            members.update((name, self._writer(member, making)) for name, member in shape.members.items())
            return structure
        elif kind == "list":
            item_writer = self._writer(shape.member, making)
            if item_writer is not None:
                writer = lambda value: [item_writer(v) for v in value] if isinstance(value, list) else value  # noqa: E731
        elif kind == "map":
            value_writer = self._writer(shape.value, making)
            if value_writer is not None:
                writer = lambda value: ({k: value_writer(v) for k, v in value.items()}  # noqa: E731
                                        if isinstance(value, dict) else value)
        making[id(shape)] = (shape, writer)  # the shape kept too: its id is never another's
        return writer
