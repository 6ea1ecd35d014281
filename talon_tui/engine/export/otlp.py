"""OTLP/HTTP logs for the exporter: the request built with `opentelemetry-proto` and posted as
the SDK's OTLP/HTTP log exporter posts it (`pip install talon-tui[otel]`).

Why not the SDK exporter itself: its `export()` takes SDK `ReadableLogRecord` objects and runs
the SDK encoder, pure Python per attribute (a `KeyValue` and an `AnyValue` built one call at a
time, the resource hashed once per record): ~100 us of CPU per event, three times what a JSONL
copy costs. Even at idle priority that much CPU on a 2-vCPU machine raised intent p99
(bench/export_bench.py, its docstring says how we found it). The SDK exposes no public way
to hand its exporter an encoded request, so this module builds the same
`ExportLogsServiceRequest` with the generated protobuf classes (C-built: `add()` on repeated
fields, no SDK objects), ~4x less CPU per event, and posts the bytes itself with `requests`
(a dependency of the SDK exporter) under the SDK exporter's settings, read from the same
environment variables through public names only:
- headers: `OTEL_EXPORTER_OTLP_LOGS_HEADERS`, else `OTEL_EXPORTER_OTLP_HEADERS` (W3C baggage
  form, parsed by the API's `parse_env_headers`);
- timeout (seconds): `OTEL_EXPORTER_OTLP_LOGS_TIMEOUT`, else `OTEL_EXPORTER_OTLP_TIMEOUT`, else
  the sink's default;
- compression `gzip`, `deflate` or `none`: `OTEL_EXPORTER_OTLP_LOGS_COMPRESSION`, else
  `OTEL_EXPORTER_OTLP_COMPRESSION`;
- TLS: CA bundle `..._CERTIFICATE`, client certificate and key `..._CLIENT_CERTIFICATE` and
  `..._CLIENT_KEY` (the logs variable, else the generic one).
The resource is the SDK's own `Resource.create` (so `OTEL_RESOURCE_ATTRIBUTES` and
`OTEL_SERVICE_NAME` apply as before). Retrying is the follower's (the same batch, with
backoff), not the HTTP client's. The endpoint is the `--export otlp=URL` one.
"""

from __future__ import annotations

import gzip
import os
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import SEVERITY_NUMBER_INFO, SEVERITY_NUMBER_WARN
from opentelemetry.sdk import environment_variables as env
from opentelemetry.sdk.resources import Resource
from opentelemetry.util.re import parse_env_headers

from talon_tui import __version__

from ..audit.checkpoint import ts_micros
from .records import attributes, severity

SCOPE = "talon.audit"
COMPRESSIONS = ("none", "gzip", "deflate")


class OtlpSettingsError(ValueError):
    """An OTEL_EXPORTER_OTLP_* variable the exporter cannot honour."""


def _env(specific: str, generic: str) -> str:
    return os.environ.get(specific) or os.environ.get(generic) or ""


@dataclass(frozen=True)
class OtlpSettings:
    """How requests go out, as the SDK's OTLP/HTTP log exporter reads them from the env."""

    endpoint: str
    timeout: float
    compression: str = "none"
    headers: Mapping[str, str] = field(default_factory=dict)
    verify: bool | str = True
    cert: str | tuple[str, str] | None = None

    @classmethod
    def from_env(cls, endpoint: str, timeout: float) -> OtlpSettings:
        raw_timeout = _env(env.OTEL_EXPORTER_OTLP_LOGS_TIMEOUT, env.OTEL_EXPORTER_OTLP_TIMEOUT)
        if raw_timeout:
            try:
                timeout = float(raw_timeout)
            except ValueError:
                raise OtlpSettingsError(f"OTLP timeout {raw_timeout!r} is not seconds") from None
        compression = (
            _env(env.OTEL_EXPORTER_OTLP_LOGS_COMPRESSION, env.OTEL_EXPORTER_OTLP_COMPRESSION)
            .strip()
            .lower()
            or "none"
        )
        if compression not in COMPRESSIONS:
            raise OtlpSettingsError(f"OTLP compression {compression!r}: one of gzip, deflate, none")
        headers = {
            "content-type": "application/x-protobuf",
            "user-agent": f"talon-tui/{__version__}",
        }
        headers.update(
            parse_env_headers(
                _env(env.OTEL_EXPORTER_OTLP_LOGS_HEADERS, env.OTEL_EXPORTER_OTLP_HEADERS),
                liberal=True,
            )
        )
        if compression != "none":
            headers.setdefault("content-encoding", compression)
        ca = _env(env.OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE, env.OTEL_EXPORTER_OTLP_CERTIFICATE)
        client_cert = _env(
            env.OTEL_EXPORTER_OTLP_LOGS_CLIENT_CERTIFICATE,
            env.OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE,
        )
        client_key = _env(env.OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY, env.OTEL_EXPORTER_OTLP_CLIENT_KEY)
        cert: str | tuple[str, str] | None = None
        if client_cert:
            cert = (client_cert, client_key) if client_key else client_cert
        return cls(endpoint, timeout, compression, headers, ca or True, cert)

    def compress(self, body: bytes) -> bytes:
        if self.compression == "gzip":
            return gzip.compress(body)
        if self.compression == "deflate":
            return zlib.compress(body)
        return body


def _set_value(value: AnyValue, x: Any) -> None:
    """An attribute or resource value as its AnyValue (str, bool, int, float, or a list)."""
    if isinstance(x, str):
        value.string_value = x
    elif isinstance(x, bool):
        value.bool_value = x
    elif isinstance(x, int):
        value.int_value = x
    elif isinstance(x, float):
        value.double_value = x
    elif isinstance(x, Sequence):
        for item in x:
            _set_value(value.array_value.values.add(), item)
    else:
        value.string_value = str(x)


def ts_nanos(ts: Any) -> int:
    """The event's ts as Unix nanoseconds (0 if it is not in the writer's layout)."""
    micros = ts_micros(ts)
    return 0 if micros is None else micros * 1000


#: the seconds and microseconds that end a ts in the writer's layout (`...T13:05:SS.ffffffZ`)
_TS_TAIL = re.compile(r"[0-5][0-9]\.[0-9]{6}Z")


class MinuteClock:
    """`ts_nanos` for a stream of events: the events of one minute share their first 17
    characters, so the calendar arithmetic is done once per minute, not once per event."""

    def __init__(self) -> None:
        self._minute = ""
        self._base = 0  # micros at second 0 of `_minute`

    def nanos(self, ts: Any) -> int:
        if self._minute and type(ts) is str and len(ts) == 27 and ts.startswith(self._minute):
            if _TS_TAIL.fullmatch(ts, 17):
                return (self._base + int(ts[17:19]) * 1_000_000 + int(ts[20:26])) * 1000
            return 0
        micros = ts_micros(ts)
        if micros is None:
            return 0
        assert isinstance(ts, str)  # ts_micros takes nothing else
        self._minute = ts[:17]
        self._base = micros - int(ts[17:19]) * 1_000_000 - int(ts[20:26])
        return micros * 1000


class LogsEncoder:
    """Audit events as one `ExportLogsServiceRequest`: one resource (the SDK's
    `Resource.create({"service.name": "talon"})`), one scope (`talon.audit`), one log record
    per event: time and observed time the event's ts, severity, body and event_name the type,
    attributes as in `records.attributes`."""

    def __init__(self) -> None:
        resource = Resource.create({"service.name": "talon"})
        self._resource_attrs = dict(resource.attributes)
        self._schema_url = resource.schema_url
        self._clock = MinuteClock()

    def encode(self, events: list[dict[str, Any]]) -> bytes:
        request = ExportLogsServiceRequest()
        resource_logs = request.resource_logs.add()
        for key, x in self._resource_attrs.items():
            _set_value(resource_logs.resource.attributes.add(key=key).value, x)
        if self._schema_url:
            resource_logs.schema_url = self._schema_url
        scope_logs = resource_logs.scope_logs.add()
        scope_logs.scope.name = SCOPE
        add_record = scope_logs.log_records.add
        for event in events:
            sev, text = severity(event)
            ts = self._clock.nanos(event.get("ts"))
            kind = str(event.get("type", ""))
            record = add_record(
                time_unix_nano=ts,
                observed_time_unix_nano=ts,
                severity_number=SEVERITY_NUMBER_WARN if sev == 4 else SEVERITY_NUMBER_INFO,
                severity_text=text,
                event_name=kind,
            )
            record.body.string_value = kind
            add_attr = record.attributes.add
            for key, x in attributes(event).items():
                value = add_attr(key=key).value
                if x.__class__ is str:
                    value.string_value = x
                else:
                    _set_value(value, x)
        return request.SerializeToString()


class OtlpPoster:
    """POSTs encoded requests to the collector on one keep-alive `requests` session."""

    def __init__(self, settings: OtlpSettings) -> None:
        self.settings = settings
        self._session = requests.Session()
        self._session.headers.update(settings.headers)

    def post(self, body: bytes) -> str:
        """ "" when the collector took the request (a 2xx), else why not."""
        s = self.settings
        try:
            reply = self._session.post(
                s.endpoint,
                data=s.compress(body),
                timeout=s.timeout,
                verify=s.verify,
                cert=s.cert,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            return f"{type(exc).__name__}: {exc}"
        if 200 <= reply.status_code < 300:
            return ""
        return f"HTTP {reply.status_code} {reply.reason}"

    def close(self) -> None:
        self._session.close()
