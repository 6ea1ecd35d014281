"""`talon policy lint FILE [--workspace W] [--json]`: output and exit codes, via a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.imports import forbidden, imports_of

SAMPLES = Path(__file__).resolve().parents[2] / "sample_policies"


def lint(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "talon_tui.cli", "policy", "lint", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def write(tmp_path: Path, doc, name: str = "p.json") -> str:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc), encoding="utf-8")
    return str(path)


def test_clean_policy_exits_0():
    out = lint(str(SAMPLES / "file-read.json"))
    assert out.returncode == 0, out.stderr
    assert "valid policy, 1 override, no warnings" in out.stdout


def test_risky_policy_exits_1_and_prints_each_warning():
    out = lint(str(SAMPLES / "risky.json"))
    assert out.returncode == 1
    assert "DANGER override #0 (file.read) constraints.roots" in out.stdout
    assert "why: " in out.stdout and "instead: " in out.stdout
    assert "WARN   override #2 (http.fetch) constraints.methods" in out.stdout


def test_warnings_without_danger_exit_0(tmp_path):
    doc = {"version": 1, "overrides": [{"tool": "file.read", "constraints": {"roots": ["."]}}]}
    out = lint(write(tmp_path, doc))
    assert out.returncode == 0
    assert "1 warning (1 warn)" in out.stdout and "whole workspace" in out.stdout


def test_json_output(tmp_path):
    out = lint(str(SAMPLES / "risky.json"), "--json")
    assert out.returncode == 1
    doc = json.loads(out.stdout)
    assert doc["valid"] is True and doc["error"] is None
    assert doc["counts"]["danger"] >= 1
    assert sum(doc["counts"].values()) == len(doc["advice"])
    first = doc["advice"][0]
    assert {
        "level",
        "override_index",
        "field",
        "message",
        "why",
        "alternative",
        "tightened",
    } <= set(first)


def test_invalid_policy_exits_1_naming_the_field(tmp_path):
    doc = {"version": 1, "overrides": [{"tool": "http.fetch", "constraints": {"domains": []}}]}
    path = write(tmp_path, doc)
    out = lint(path)
    assert out.returncode == 1
    assert "overrides.0.constraints.domains" in out.stdout
    as_json = lint(path, "--json")
    assert as_json.returncode == 1
    parsed = json.loads(as_json.stdout)
    assert parsed["valid"] is False and "overrides.0.constraints.domains" in parsed["error"]


def test_ttl_over_limit_is_invalid(tmp_path):
    doc = {
        "version": 1,
        "overrides": [{"tool": "file.read", "constraints": {"roots": ["a"], "ttl_seconds": 7200}}],
    }
    out = lint(write(tmp_path, doc))
    assert out.returncode == 1 and "ttl_seconds" in out.stdout


@pytest.mark.parametrize(
    ("content", "needle"),
    [("{not json", "not valid JSON"), ("", "not valid JSON")],
)
def test_not_json_exits_2(tmp_path, content, needle):
    out = lint(write(tmp_path, content))
    assert out.returncode == 2
    assert needle in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_missing_file_exits_2(tmp_path):
    out = lint(str(tmp_path / "nope.json"))
    assert out.returncode == 2 and "no such file" in out.stderr


def test_non_utf8_file_exits_2(tmp_path):
    path = tmp_path / "bin.json"
    path.write_bytes(b"\xff\xfe\x00{")
    out = lint(str(path))
    assert out.returncode == 2 and out.stderr.startswith("talon:")


def test_json_array_is_invalid_policy(tmp_path):
    out = lint(write(tmp_path, "[]"))
    assert out.returncode == 1 and "JSON object" in out.stdout


@pytest.mark.slow
def test_workspace_option(tmp_path):
    (tmp_path / "notes").mkdir()
    doc = {"version": 1, "overrides": [{"tool": "file.read", "constraints": {"roots": ["/etc"]}}]}
    path = write(tmp_path, doc)
    assert lint(path).returncode == 0  # absolute root without a workspace: a warning only
    out = lint(path, "--workspace", str(tmp_path))
    assert out.returncode == 1 and "outside the workspace" in out.stdout
    bad = lint(path, "--workspace", "relative/dir")
    assert bad.returncode == 2 and "absolute" in bad.stderr
    missing = lint(path, "--workspace", str(tmp_path / "missing"))
    assert missing.returncode == 2 and "no such directory" in missing.stderr


def test_lint_does_not_import_textual(tmp_path):
    code = (
        "from talon_tui import cli\n"
        f"rc = cli.main(['policy', 'lint', {str(SAMPLES / 'risky.json')!r}, '--json'])\n"
        "assert rc == 1, rc\n"
    )
    assert forbidden(imports_of(code, "talon_tui"), "textual", "rich", "talon_tui.app") == []
