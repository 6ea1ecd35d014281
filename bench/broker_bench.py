"""Per-tool overhead of the broker over the bare operation.

For each tool the same work is timed two ways, in alternating rounds:
- bare: the operation alone (open+read; one httpx GET on a new connection; docker SDK
  `containers.run(..., remove=True)`, which also reads logs from the engine's log file —
  the broker streams output from the attach socket with logging off, so its container
  round trip can be the cheaper one);
- broker: what the engine does once the policy allowed it — issue a capability token, then
  `Broker.execute` (token verify with a single-use jti, strict params, constraints rebuilt from
  the token, then the confined tool: openat walk / pinned, checked connection / hardened
  container with stdin, capped output and forced removal).

Figures are medians per operation. The last line of output is JSON:
`{"file.read": {"bare_us", "broker_us", "overhead_us", "ratio", "n"}, "http.fetch": {...},
"docker.run": {...} or {"skipped": reason}, "tokens": {"issue_us", "issue_verify_us"}}`.

Usage: `python bench/broker_bench.py [--quick]` (a Docker engine with the test image from
`bash .ci/docker-up` is needed for the docker.run figures; without one they are skipped).
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from talon_tui.engine.broker import Broker  # noqa: E402
from talon_tui.engine.core.canon import intent_hash  # noqa: E402
from talon_tui.engine.errors import ToolError  # noqa: E402
from talon_tui.engine.policy.models import CONSTRAINT_MODELS, Session, ToolIntent  # noqa: E402
from talon_tui.engine.runtime.tokens import CapabilityIssuer, CapabilityVerifier  # noqa: E402

PAYLOAD = (b"talon-bench-" * 100)[:1024]
SESSION_ID = "sess_bench"
SUBJECT = "agent:bench"


class Harness:
    """A policy-side issuer and a broker sharing one key pair, as in the engine."""

    def __init__(self, workspace: str) -> None:
        key = Ed25519PrivateKey.generate()
        self.issuer = CapabilityIssuer(key)
        self.verifier = CapabilityVerifier(key.public_key())
        self.broker = Broker(self.verifier)
        self.session = Session(
            id=SESSION_ID, label="bench", workspace=workspace, created="2026-01-01T00:00:00Z"
        )

    def execute(self, tool: str, params: dict[str, Any], constraints: dict[str, Any]) -> dict:
        """Issue a token for exactly this intent, then run it through the broker."""
        cons = CONSTRAINT_MODELS[tool].model_validate(constraints).model_dump(mode="json")
        issued = self.issuer.issue(
            session_id=SESSION_ID,
            subject=SUBJECT,
            tool=tool,
            constraints=cons,
            intent_hash=intent_hash(tool, params),
            ttl_seconds=60,
        )
        intent = ToolIntent(tool=tool, params=params)
        return self.broker.execute(intent, issued.token, session=self.session, subject=SUBJECT)


def time_pair(
    bare: Callable[[], Any], broker: Callable[[], Any], n: int, warmup: int
) -> tuple[float, float]:
    """Median seconds per call of each, measured in alternating calls so that load from
    other processes falls on both alike."""
    for _ in range(warmup):
        bare()
        broker()
    tb: list[float] = []
    tk: list[float] = []
    clock = time.perf_counter
    for _ in range(n):
        t0 = clock()
        bare()
        t1 = clock()
        broker()
        t2 = clock()
        tb.append(t1 - t0)
        tk.append(t2 - t1)
    return statistics.median(tb), statistics.median(tk)


def figures(name: str, bare_s: float, broker_s: float, n: int) -> dict[str, Any]:
    row = {
        "bare_us": round(bare_s * 1e6, 1),
        "broker_us": round(broker_s * 1e6, 1),
        "overhead_us": round((broker_s - bare_s) * 1e6, 1),
        "ratio": round(broker_s / bare_s, 2),
        "n": n,
    }
    print(
        f"{name:<11} bare {_fmt(bare_s):>10}   broker {_fmt(broker_s):>10}   "
        f"overhead {_fmt(broker_s - bare_s):>10}   ratio {row['ratio']:>7.2f}x   (n={n})"
    )
    return row


def _fmt(seconds: float) -> str:
    if abs(seconds) >= 0.1:
        return f"{seconds * 1e3:.0f} ms"
    if abs(seconds) >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} µs"


# --------------------------------------------------------------------------- tools


def bench_tokens(h: Harness, n: int) -> dict[str, Any]:
    ih = intent_hash("file.read", {"path": "work/f.txt"})
    cons = {"roots": ["work"], "max_bytes": 4096, "ttl_seconds": 60}

    def issue() -> str:
        return h.issuer.issue(
            session_id=SESSION_ID,
            subject=SUBJECT,
            tool="file.read",
            constraints=cons,
            intent_hash=ih,
            ttl_seconds=60,
        ).token

    def issue_verify() -> None:
        h.verifier.verify(issue(), tool="file.read", intent_hash=ih, session_id=SESSION_ID)

    t_issue, t_both = time_pair(issue, issue_verify, n, warmup=50)
    row = {"issue_us": round(t_issue * 1e6, 1), "issue_verify_us": round(t_both * 1e6, 1)}
    print(f"tokens      issue {_fmt(t_issue):>10}   issue+verify {_fmt(t_both):>10}   (n={n})")
    return row


def bench_file(h: Harness, workspace: Path, n: int) -> dict[str, Any]:
    (workspace / "work").mkdir()
    path = workspace / "work" / "f.txt"
    path.write_bytes(PAYLOAD)
    params = {"path": "work/f.txt"}
    cons = {"roots": ["work"], "max_bytes": 4096, "ttl_seconds": 60}

    def bare() -> None:
        with open(path, "rb") as f:
            assert len(f.read()) == len(PAYLOAD)

    def broker() -> None:
        assert h.execute("file.read", params, cons)["bytes"] == len(PAYLOAD)

    return figures("file.read", *time_pair(bare, broker, n, warmup=100), n)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(PAYLOAD)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def bench_http(h: Harness, n: int) -> dict[str, Any]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    url = f"http://127.0.0.1:{port}/one-kib"
    cons = {
        "domains": ["127.0.0.1"],
        "schemes": ["http"],
        "ports": [port],
        "allow_private_addresses": True,
        "max_bytes": 4096,
        "ttl_seconds": 60,
    }
    params = {"url": url, "method": "GET"}

    # One client made up front (building its TLS context costs ~15 ms); the server closes every
    # connection, so each bare GET opens a new one, as each broker fetch does.
    client = httpx.Client(trust_env=False)

    def bare() -> None:
        r = client.get(url)
        assert r.status_code == 200 and len(r.content) == len(PAYLOAD)

    def broker() -> None:
        r = h.execute("http.fetch", params, cons)
        assert r["status_code"] == 200 and r["bytes"] == len(PAYLOAD)

    try:
        return figures("http.fetch", *time_pair(bare, broker, n, warmup=10), n)
    finally:
        client.close()
        server.shutdown()
        server.server_close()


def _test_image(api: Any) -> str:
    image = os.environ.get("TALON_TEST_IMAGE", "").strip()
    id_file = ROOT / ".ci" / ".test-image-id"
    if not image and id_file.exists():
        image = id_file.read_text().strip()
    return api.inspect_image(image or "talon-test/busybox:latest")["Id"]


def bench_docker(h: Harness, n: int) -> dict[str, Any]:
    import docker
    from docker.errors import DockerException

    from talon_tui.engine.broker.docker import connect

    try:
        connect()
        client = docker.from_env()
        image = _test_image(client.api)
    except (ToolError, DockerException) as exc:
        reason = f"no Docker engine or test image: {getattr(exc, 'message', exc)}"
        print(f"docker.run  skipped: {reason} (run `bash .ci/docker-up`)")
        return {"skipped": reason}
    params = {"image": image, "command": ["true"]}
    cons = {"images": [image], "timeout_seconds": 30, "ttl_seconds": 60}

    def bare() -> None:
        client.containers.run(image, ["true"], remove=True)

    def broker() -> None:
        assert h.execute("docker.run", params, cons)["exit_code"] == 0

    return figures("docker.run", *time_pair(bare, broker, n, warmup=2), n)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run)")
    args = ap.parse_args(argv)
    scale = 0.1 if args.quick else 1.0
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="talon-bench-") as tmp:
        workspace = Path(tmp)
        h = Harness(str(workspace))
        print(f"broker overhead per operation (median; python {sys.version.split()[0]})")
        results["file.read"] = bench_file(h, workspace, max(20, int(2000 * scale)))
        results["http.fetch"] = bench_http(h, max(10, int(200 * scale)))
        results["docker.run"] = bench_docker(h, max(3, int(15 * scale)))
        results["tokens"] = bench_tokens(h, max(20, int(1000 * scale)))
    print(json.dumps(results, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
