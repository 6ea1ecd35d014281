"""What to export and where: `talon serve --export KIND=TARGET[,key=value...]` (repeatable) and
the same keys in a TOML config file (`<data>/talon.toml` or `--config FILE`).

    --export otlp=http://collector:4318          OTLP/HTTP logs to URL/v1/logs
    --export syslog=siem.example:514/tcp,format=cef   RFC 5424 over TCP (or /udp), CEF payload
    --export jsonl=/mnt/other-disk/talon.jsonl    a second copy of the log's lines
    options: format=json|cef (syslog), events=all|heads (heads: only the signed checkpoints)

Config file (every key optional, unknown keys refused):

    export = ["otlp=http://127.0.0.1:4318", "syslog=127.0.0.1:514/udp,format=cef"]
    approval_webhook = "https://chat.example/hooks/talon"
    approval_webhook_key_file = "/etc/talon/webhook.key"

A bad spec or file raises `ExportConfigError` with one line saying what is wrong.
"""

from __future__ import annotations

import hashlib
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

KINDS = ("otlp", "syslog", "jsonl")
CONFIG_NAME = "talon.toml"
CONFIG_KEYS = ("export", "approval_webhook", "approval_webhook_key_file")


class ExportConfigError(ValueError):
    """An export spec or config file that cannot be used (the CLI exits 2 with the message)."""


@dataclass(frozen=True)
class ExportSpec:
    """One exporter: its kind, where it sends, and its options."""

    kind: str
    target: str
    text: str = ""  # the spec as written (KIND=TARGET[,options]), passed to the worker
    format: str = "json"
    events: str = "all"
    host: str = ""
    port: int = 0
    transport: str = ""

    @property
    def name(self) -> str:
        """Stable name of this exporter: its cursor file is `<data>/export/<name>.cursor`."""
        digest = hashlib.sha256(f"{self.kind}={self.target}".encode()).hexdigest()[:12]
        return f"{self.kind}-{digest}"

    @property
    def endpoint(self) -> str:
        """otlp: the logs endpoint, URL read as OTEL_EXPORTER_OTLP_ENDPOINT is (URL/v1/logs)."""
        return self.target.rstrip("/") + "/v1/logs"

    def describe(self) -> str:
        return f"{self.kind}={self.target}" + (f" ({self.format})" if self.kind == "syslog" else "")


@dataclass
class ExportConfig:
    exports: list[ExportSpec] = field(default_factory=list)
    approval_webhook: str | None = None
    approval_webhook_key: bytes | None = None


def parse_spec(text: str) -> ExportSpec:
    """`KIND=TARGET[,key=value...]` as an `ExportSpec`."""
    kind, sep, rest = text.partition("=")
    kind = kind.strip()
    if not sep or kind not in KINDS:
        raise ExportConfigError(
            f"export {text!r}: write KIND=TARGET with KIND one of {', '.join(KINDS)}"
        )
    target, *opts = rest.split(",")
    target = target.strip()
    if not target:
        raise ExportConfigError(f"export {text!r}: no target after {kind}=")
    options: dict[str, str] = {}
    for opt in opts:
        key, eq, value = opt.partition("=")
        if not eq or key.strip() not in ("format", "events"):
            raise ExportConfigError(
                f"export {text!r}: unknown option {opt!r} (format=json|cef, events=all|heads)"
            )
        options[key.strip()] = value.strip()
    events = options.get("events", "all")
    if events not in ("all", "heads"):
        raise ExportConfigError(f"export {text!r}: events must be all or heads")
    fmt = options.get("format", "json")
    if fmt not in ("json", "cef") or (fmt == "cef" and kind != "syslog"):
        raise ExportConfigError(f"export {text!r}: format is json, or cef for syslog")
    if kind == "otlp":
        url = urlsplit(target)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ExportConfigError(f"export {text!r}: otlp needs an http(s) URL")
        return ExportSpec(kind, target, text, events=events)
    if kind == "syslog":
        hostport, slash, transport = target.partition("/")
        transport = transport or "udp"
        host, colon, port_text = hostport.rpartition(":")
        if not slash and not colon:
            host, port_text = hostport, "514"
        host = host.strip("[]")
        if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ExportConfigError(f"export {text!r}: syslog needs HOST:PORT[/tcp|/udp]")
        if transport not in ("udp", "tcp"):
            raise ExportConfigError(f"export {text!r}: syslog transport is udp or tcp")
        return ExportSpec(
            kind, target, text, format=fmt, events=events, host=host, port=int(port_text),
            transport=transport,
        )  # fmt: skip
    path = Path(target).expanduser()
    if not path.is_absolute():
        raise ExportConfigError(f"export {text!r}: jsonl needs an absolute path")
    return ExportSpec(kind, str(path), text, events=events)


def _check_webhook_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ExportConfigError(f"approval webhook {url!r}: needs an http(s) URL")
    return url


def read_key_file(path: str) -> bytes:
    """The webhook's HMAC key: the file's bytes without surrounding whitespace, at least 16;
    refused when its group or others may read or write it (anyone who reads the key can sign)."""
    try:
        with open(Path(path).expanduser(), "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            key = f.read().strip()
    except OSError as exc:
        raise ExportConfigError(f"approval webhook key {path}: {exc.strerror}") from exc
    if mode & 0o077:
        raise ExportConfigError(
            f"approval webhook key {path}: mode {mode & 0o777:04o}, others may read it (chmod 600)"
        )
    if len(key) < 16:
        raise ExportConfigError(f"approval webhook key {path}: shorter than 16 bytes")
    return key


def load_config_file(path: Path) -> dict[str, Any]:
    """The TOML config as a dict, checked: only CONFIG_KEYS, with the right types."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ExportConfigError(f"config {path}: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ExportConfigError(f"config {path}: not valid TOML ({exc})") from exc
    unknown = sorted(set(doc) - set(CONFIG_KEYS))
    if unknown:
        raise ExportConfigError(
            f"config {path}: unknown key {unknown[0]!r} (known: {', '.join(CONFIG_KEYS)})"
        )
    exports = doc.get("export", [])
    if not isinstance(exports, list) or not all(isinstance(x, str) for x in exports):
        raise ExportConfigError(f"config {path}: export must be a list of KIND=TARGET strings")
    for key in ("approval_webhook", "approval_webhook_key_file"):
        if key in doc and not isinstance(doc[key], str):
            raise ExportConfigError(f"config {path}: {key} must be a string")
    return doc


def build_config(
    data_root: Path,
    config_path: str | None,
    exports: list[str] | None,
    webhook: str | None,
    webhook_key_file: str | None,
) -> ExportConfig:
    """Command-line options over the config file (`--config`, else `<data>/talon.toml` when it
    exists). Exports from both are used; the command line's webhook wins."""
    doc: dict[str, Any] = {}
    path = Path(config_path).expanduser() if config_path else data_root / CONFIG_NAME
    if config_path or path.exists():
        doc = load_config_file(path)
    specs: list[ExportSpec] = []
    for text in [*doc.get("export", []), *(exports or [])]:
        spec = parse_spec(text)
        if spec.name in {s.name for s in specs}:
            raise ExportConfigError(f"export {text!r} is given twice")
        specs.append(spec)
    url = webhook or doc.get("approval_webhook")
    key_file = webhook_key_file or doc.get("approval_webhook_key_file")
    key = None
    if url:
        _check_webhook_url(url)
        if not key_file:
            raise ExportConfigError(
                "an approval webhook needs an HMAC key: --approval-webhook-key-file FILE"
            )
        key = read_key_file(key_file)
    elif key_file:
        raise ExportConfigError("an approval webhook key without --approval-webhook URL")
    return ExportConfig(specs, url, key)
