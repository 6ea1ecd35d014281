"""Hook benchmark (issue 11): wall time of one `talon hook claude-code` process per allowed Read,
against a real `talon serve`, beside `python -c pass` measured in the same run.

The hook is one process per agent tool call, so its start-up is what the agent waits for. The
command timed is exactly what `talon hook install` writes into the agent's settings
(`<python> -I -S talon_tui/hooks/script.py hook claude-code --key-file K --data-dir D …`);
beside it, the same hook through the `talon` console script (the form installed before, with
`site` and the editable install's finder), `python -c pass`, and `python -I -S -c pass` (the
floor of the installed form). Interleaved runs, so that machine load hits all the same way.
Target: p50 <= 50 ms per allowed Read.

The package's bytecode is compiled first (`compileall`, as `pip install` does): with
PYTHONDONTWRITEBYTECODE set and no `__pycache__`, every hook run would recompile its modules.

    .venv/bin/python bench/hook_bench.py [--n 40]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, make_session, start_serve, stop_serve


def timed(argv: list[str], stdin: bytes) -> tuple[float, bytes]:
    started = time.perf_counter()
    done = subprocess.run(argv, input=stdin, capture_output=True, cwd=REPO, check=False)
    return (time.perf_counter() - started) * 1000, done.stdout


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40, help="runs of each command")
    args = parser.parse_args()
    import compileall

    compileall.compile_dir(str(REPO / "talon_tui"), quiet=1)
    with tempfile.TemporaryDirectory(prefix="talon-hook-bench-") as tmp:
        root = Path(tmp)
        ws = root / "ws"
        (ws / "work").mkdir(parents=True)
        (ws / "work" / "a.txt").write_text("hello\n")
        data = root / "data"
        serve = start_serve(data, lift_rate_limit=False)
        try:
            key_file = root / "agent.key"
            key_file.write_text(make_session(data, ws, "hook-bench"))
            from talon_tui.hooks.install import hook_command

            hook = shlex.split(hook_command("claude-code", key_file, data, 150))
            payload = json.dumps(
                {
                    "session_id": "bench",
                    "transcript_path": "/dev/null",
                    "cwd": str(ws),
                    "permission_mode": "default",
                    "hook_event_name": "PreToolUse",
                    "tool_name": "Read",
                    "tool_input": {"file_path": str(ws / "work" / "a.txt")},
                    "tool_use_id": "toolu_bench",
                }
            ).encode()
            report = json.loads(payload)
            report["hook_event_name"] = "PostToolUse"
            report["tool_response"] = {"type": "text", "file": {"content": "hello\n"}}
            report_payload = json.dumps(report).encode()
            commands = {
                "hook_allowed_read_ms": hook,
                "hook_report_after_read_ms": hook,
                "hook_via_talon_script_ms": [
                    str(Path(sys.executable).with_name("talon")),
                    *hook[hook.index("hook") :],
                ],
                "python_c_pass_ms": [sys.executable, "-c", "pass"],
                "python_isolated_no_site_c_pass_ms": [sys.executable, "-I", "-S", "-c", "pass"],
            }
            if not os.access(commands["hook_via_talon_script_ms"][0], os.X_OK):
                del commands["hook_via_talon_script_ms"]
            times: dict[str, list[float]] = {name: [] for name in commands}
            stdin = {name: payload for name in commands}
            stdin["hook_report_after_read_ms"] = report_payload  # PostToolUse: the outcome
            for _ in range(3):  # warm the page cache and the engine
                for name, argv in commands.items():
                    timed(argv, stdin[name])
            for _ in range(args.n):
                for name, argv in commands.items():
                    ms, out = timed(argv, stdin[name])
                    if name == "hook_report_after_read_ms":
                        if b"Talon" in out and b"refused" in out:
                            raise SystemExit(f"{name}: the report was refused: {out!r}")
                    elif name.startswith("hook") and b'"allow"' not in out:
                        raise SystemExit(f"{name}: the hook did not allow the Read: {out!r}")
                    times[name].append(ms)
        finally:
            stop_serve(serve)
    figures: dict[str, object] = {
        "command": shlex.join(hook[: hook.index("hook") + 2]) + " …",
        "n": args.n,
        "cpus": os.cpu_count(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }
    for name, values in times.items():
        figures[name] = {
            "p50": round(statistics.median(values), 1),
            "p90": round(pct(values, 90), 1),
            "min": round(min(values), 1),
        }
    figures["hook_minus_python_p50_ms"] = round(
        statistics.median(times["hook_allowed_read_ms"])
        - statistics.median(times["python_c_pass_ms"]),
        1,
    )
    print(json.dumps(figures, indent=2))
    print("target: hook p50 <= 50 ms per allowed Read (PreToolUse; its report is shown too)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
