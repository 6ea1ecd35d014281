"""`talon doctor [--json]`: is this deployment's local trust model sound?

Checks, read-only: the data dir's owner and modes (every level the engine uses), the socket's
mode and group, and, when an engine answers, which uid it runs as and which uids its agents
run as. An agent running as the engine's own uid can read `admin.token` and the keys and write
the log whatever its policy says: that is a warning (SECURITY.md, "Separate-user deployment").
Exit 0 nothing to warn about, 1 at least one warning, 2 usage error. Never imports textual.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import stat
from typing import Any

from talon_tui.engine.core.paths import DataDir, resolve_data_dir

from .common import line, print_json


def _socket_facts(data: DataDir, out: list[dict[str, str]]) -> None:
    try:
        st = os.lstat(data.socket_path)
    except FileNotFoundError:
        out.append({"level": "info", "message": f"no socket at {data.socket_path}"})
        return
    except OSError as exc:
        out.append(
            {"level": "info", "message": f"{data.socket_path}: cannot inspect ({exc.strerror})"}
        )
        return
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o007:
        out.append(
            {"level": "warning", "message": f"{data.socket_path}: mode {mode:o}, open to others"}
        )
    shared = f", group {st.st_gid} may connect" if mode & 0o060 else ", only its owner connects"
    out.append(
        {
            "level": "info",
            "message": f"socket {data.socket_path}: uid {st.st_uid}, mode {mode:o}{shared}",
        }
    )


async def _engine_facts(data: DataDir, out: list[dict[str, str]]) -> dict[str, Any]:
    from talon_tui.client import AdminClient, ClientError

    facts: dict[str, Any] = {"engine_uid": None, "agents": []}
    try:
        client = await AdminClient.connect(data.root)
    except ClientError as exc:
        out.append({"level": "info", "message": f"no engine checked: {exc.message}"})
        return facts
    except OSError as exc:
        out.append({"level": "info", "message": f"no engine checked: {exc}"})
        return facts
    try:
        engine_uid = client.engine_uid
        facts["engine_uid"] = engine_uid
        out.append({"level": "info", "message": f"the engine runs as uid {engine_uid}"})
        agents = [a for a in await client.list_agents() if a.role == "agent"]
    finally:
        await client.close()
    for a in agents:
        facts["agents"].append({"subject": a.subject, "session_id": a.session_id, "uid": a.uid})
        if a.uid == engine_uid:
            out.append(
                {
                    "level": "warning",
                    "message": (
                        f"agent {a.subject} (session {a.session_id}) runs as uid {a.uid}, the "
                        "engine's own uid: it can read admin.token and the keys and write the "
                        "audit log whatever its policy says; run agents as another user "
                        "(talon serve --socket-group, docs/talon.service)"
                    ),
                }
            )
        else:
            out.append(
                {
                    "level": "info",
                    "message": f"agent {a.subject} (session {a.session_id}) runs as uid {a.uid}",
                }
            )
    if not agents:
        out.append({"level": "info", "message": "no agent connected now"})
    return facts


def cmd_doctor(args: argparse.Namespace) -> int:
    data = DataDir(resolve_data_dir(args.data_dir))
    checks: list[dict[str, str]] = []
    if not os.path.lexists(data.root):
        checks.append({"level": "info", "message": f"no data dir at {data.root} yet"})
        facts: dict[str, Any] = {"engine_uid": None, "agents": []}
    else:
        for level, message in data.inspect():
            checks.append({"level": level, "message": message})
        _socket_facts(data, checks)
        facts = asyncio.run(_engine_facts(data, checks))
    warnings = sum(1 for c in checks if c["level"] == "warning")
    if args.json:
        print_json({"data_dir": str(data.root), **facts, "checks": checks, "warnings": warnings})
    else:
        print(f"data dir {line(data.root)} (you are uid {os.geteuid()})")
        for c in checks:
            print(f"{c['level'].upper():<8}{line(c['message'])}")
        print("no warnings" if not warnings else f"{warnings} warning(s)")
    return 1 if warnings else 0
