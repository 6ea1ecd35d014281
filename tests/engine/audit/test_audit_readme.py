"""The README's standard-library verifier, run on a real log, good and tampered."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from talon_tui.engine.audit.log import AuditLog
from talon_tui.engine.core import keys

README = Path(__file__).resolve().parents[3] / "README.md"


def readme_script() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Verify the audit log with the standard library", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README section has no python block"
    return match.group(1)


@pytest.fixture
def script(tmp_path):
    code = readme_script()
    imported = set(re.findall(r"^\s*(?:import|from)\s+([\w.]+)", code, re.M))
    imported |= {
        m.strip() for line in re.findall(r"^import (.*)$", code, re.M) for m in line.split(",")
    }
    assert imported <= set(sys.stdlib_module_names), imported
    path = tmp_path / "verify_audit.py"
    path.write_text(code)
    return path


@pytest.fixture
def log_path(tmp_path):
    priv, _ = keys.load_or_create(tmp_path / "keys", "audit")
    log = AuditLog(tmp_path / "audit", priv, checkpoint_every=4).open()
    for i in range(10):
        log.append("run.started", run_id="run_x", data={"content": f"é {i} \U0001f600\x00"})
    log.close()
    return tmp_path / "audit" / "audit.jsonl"


def run(script, log):
    return subprocess.run(
        [sys.executable, "-I", str(script), str(log)], capture_output=True, text=True
    )


def test_readme_script_accepts_a_real_log(script, log_path):
    res = run(script, log_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "chain OK" in res.stdout


@pytest.mark.parametrize("damage", ["modify", "delete", "swap"])
def test_readme_script_rejects_a_tampered_log(script, log_path, damage):
    lines = log_path.read_bytes().splitlines(keepends=True)
    if damage == "modify":
        assert json.loads(lines[5])["seq"] == 5
        lines[5] = lines[5].replace("é".encode(), b"forged", 1)
        assert b"forged" in lines[5]
    elif damage == "delete":
        del lines[5]
    else:
        lines[5], lines[6] = lines[6], lines[5]
    log_path.write_bytes(b"".join(lines))
    res = run(script, log_path)
    assert res.returncode == 1
    assert res.stdout.startswith("seq 5:")
