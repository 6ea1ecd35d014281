"""The README's standard-library verifier, run on a real log, good and tampered."""

from __future__ import annotations

import base64
import hashlib
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


def run(script, log, pub=None):
    pub = pub or Path(log).parent.parent / "keys" / "audit_ed25519.pub"
    return subprocess.run(
        [sys.executable, "-I", str(script), str(log), str(pub)], capture_output=True, text=True
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


def rechain_from(lines: list[bytes], start: int) -> list[bytes]:
    """Re-hash lines[start:] (as edited) so the chain holds again: what a keyless forger does."""
    out = lines[:start]
    prev = json.loads(lines[start - 1])["hash"]
    for line in lines[start:]:
        ev = json.loads(line)
        ev.pop("hash")
        ev["prev_hash"] = prev
        if ev["type"] == "audit.checkpoint":
            ev["data"]["checkpoint_hash"] = prev
        body = json.dumps(ev, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        prev = "sha256:" + hashlib.sha256(prev.encode() + body).hexdigest()
        out.append(body[:-1] + f',"hash":"{prev}"}}\n'.encode())
    return out


@pytest.mark.parametrize("forgery", ["resigned", "junk", "other-key", "key-id"])
def test_readme_script_checks_checkpoint_signatures(script, log_path, tmp_path, forgery):
    """A keyless forger re-chains after editing event 5 and keeps checkpoint events in place:
    the script verifies their Ed25519 signatures, as `talon audit verify` does."""
    from talon_tui.engine.audit.verify import verify_log

    lines = log_path.read_bytes().splitlines(keepends=True)
    assert json.loads(lines[9])["type"] == "audit.checkpoint"
    lines[5] = lines[5].replace("é".encode(), b"forged", 1)
    lines = rechain_from(lines, 5)
    cp = json.loads(lines[9])
    if forgery == "junk":
        cp["data"]["signature"] = "A" * 86
    elif forgery == "other-key":
        other = keys.load_or_create(tmp_path / "other", "audit")[0]
        from talon_tui.engine.core.canon import checkpoint_message

        sig = other.sign(checkpoint_message(8, cp["prev_hash"]))
        cp["data"]["signature"] = base64.urlsafe_b64encode(sig).rstrip(b"=").decode()
    elif forgery == "key-id":
        cp["data"]["key_id"] = "sha256:" + "0" * 64
    if forgery != "resigned":
        body = {k: v for k, v in cp.items() if k != "hash"}
        raw = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        lines[9] = raw.encode()[:-1] + b',"hash":"x"}\n'
        lines = rechain_from(lines, 9)
    log_path.write_bytes(b"".join(lines))
    (log_path.parent / "HEAD").unlink()
    report = verify_log(log_path.parent, keys.load_public(tmp_path / "keys", "audit"))
    res = run(script, log_path)
    assert not report.valid and report.first_bad_seq == 9, report
    assert res.returncode == 1 and res.stdout.startswith("seq 9:"), res.stdout


def test_readme_script_rejects_another_public_key(script, log_path, tmp_path):
    keys.load_or_create(tmp_path / "other", "audit")
    res = run(script, log_path, tmp_path / "other" / "audit_ed25519.pub")
    assert res.returncode == 1 and "another key" in res.stdout
