"""Exporters: the audit log leaves the machine (OTLP/HTTP logs, syslog RFC 5424 / CEF, a second
JSONL file), and approvals are announced to a webhook. Each exporter reads the log file from its
own cursor, in a process of its own under `talon serve` (worker.py); nothing here is on the path
of an intent."""

from .config import (
    CONFIG_NAME,
    ExportConfig,
    ExportConfigError,
    ExportSpec,
    build_config,
    parse_spec,
)
from .follower import Cursor, Exporter, ExportManager
from .process import ExportProcess
from .records import ATTRIBUTES, attributes, cef, syslog_message
from .sinks import JsonlSink, OtlpSink, Sink, SinkError, SyslogSink, make_sink
from .webhook import SIGNATURE_HEADER, ApprovalWebhook, sign

__all__ = [
    "ATTRIBUTES",
    "CONFIG_NAME",
    "SIGNATURE_HEADER",
    "ApprovalWebhook",
    "Cursor",
    "ExportConfig",
    "ExportConfigError",
    "ExportManager",
    "ExportProcess",
    "ExportSpec",
    "Exporter",
    "JsonlSink",
    "OtlpSink",
    "Sink",
    "SinkError",
    "SyslogSink",
    "attributes",
    "build_config",
    "cef",
    "make_sink",
    "parse_spec",
    "sign",
    "syslog_message",
]
