"""The bulk verifier (_fast_block) never disagrees with the line-by-line pass or the README.

Each case writes a log, then compares three verdicts: `verify_log` as shipped, `verify_log`
with the bulk path switched off (every line through the original per-line checks), and, where
it applies, the README's standard-library script.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from talon_tui.engine.audit import verify as audit_verify
from talon_tui.engine.audit.log import AuditLog, verify_log
from talon_tui.engine.core import keys

README = Path(__file__).resolve().parents[3] / "README.md"
HOSTILE = [
    "plain",
    "é ü ß 中文 עברית",
    "\U0001f600\U0001d11e astral \U0010ffff",
    "\x00\x01\x07\x08\t\n\x0b\x0c\r\x1b\x1f\x7f\x80\x9f",
    "\u2028\u2029\ufeff\ufffe\uffff",
    '"quotes" and \\ backslashes \\u0000 \\/ \\"',
    "</script> / \\/",
]
FLOATISH = ["1.5, 2e+16] 3e5} -0.5,", 'x":1.5,"y']  # float-looking text inside strings


def canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def make_log(root: Path, n: int, payload, *, every: int = 5) -> tuple[Path, object]:
    priv, pub = keys.load_or_create(root / "keys", "audit")
    log = AuditLog(root / "audit", priv, checkpoint_every=every).open()
    for i in range(n):
        text = payload[i % len(payload)]
        log.append(
            "tool.executed",
            session_id="sess_" + text,
            run_id=f"run_{i % 3}",
            data={text: [text, {"k": text, "n": i, "b": i % 2 == 0, "z": None}]},
        )
    log.close()
    return root / "audit", pub


def lines_of(audit_dir: Path) -> list[bytes]:
    return (audit_dir / "audit.jsonl").read_bytes().splitlines(keepends=True)


def write_lines(audit_dir: Path, lines: list[bytes]) -> None:
    (audit_dir / "audit.jsonl").write_bytes(b"".join(lines))
    (audit_dir / "index.bin").unlink(missing_ok=True)


def both_ways(audit_dir: Path, pub, monkeypatch, *, workers: int = 1):
    """(report, report without the bulk path, how many blocks the bulk path accepted)."""
    accepted = []
    real = audit_verify.fast_block

    def counting(lines, st):
        ok = real(lines, st)
        accepted.append(ok)
        return ok

    with monkeypatch.context() as m:
        m.setattr(audit_verify, "fast_block", counting)
        fast = verify_log(audit_dir, pub, workers=workers)
    with monkeypatch.context() as m:
        m.setattr(audit_verify, "fast_block", lambda lines, st: False)
        slow = verify_log(audit_dir, pub, workers=workers)
    return fast, slow, sum(accepted)


def readme_verdict(log_path: Path) -> str:
    section = README.read_text(encoding="utf-8").split(
        "## Verify the audit log with the standard library", 1
    )[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    res = subprocess.run(
        [sys.executable, "-I", "-c", code, str(log_path)], capture_output=True, text=True
    )
    return res.stdout.strip()


def relink(lines: list[bytes], start: int, *, raw: bool) -> list[bytes]:
    """Fix hashes and links from `start` on: over the raw line bytes (raw) or over the stdlib
    canonical form (what the README computes). Checkpoints after `start` stay as they were."""
    prev = json.loads(lines[start - 1])["hash"] if start else "sha256:" + "0" * 64
    out = list(lines[:start])
    for line in lines[start:]:
        body = line[: line.rindex(b',"hash":')]
        at = body.rindex(b',"prev_hash":"') + 14
        body = body[:at] + prev.encode() + body[at + 71 :]
        hashed = body + b"}" if raw else canonical(json.loads(body + b"}"))
        h = "sha256:" + hashlib.sha256(prev.encode() + hashed).hexdigest()
        out.append(body + f',"hash":"{h}"}}\n'.encode())
        prev = h
    return out


@pytest.fixture(scope="module")
def hostile_log(tmp_path_factory):
    return make_log(tmp_path_factory.mktemp("hostile"), 60, HOSTILE + FLOATISH, every=1000)


def test_hostile_strings_take_the_bulk_path_and_verify(tmp_path, monkeypatch):
    audit_dir, pub = make_log(tmp_path, 60, HOSTILE, every=1000)
    fast, slow, accepted = both_ways(audit_dir, pub, monkeypatch)
    assert fast == slow and fast.valid and fast.events == 61
    # orjson's bytes equal the stdlib's for all of these: no block needed the slow path
    blocks = -(-(audit_dir / "audit.jsonl").stat().st_size // audit_verify.BLOCK_BYTES)
    assert accepted == blocks
    assert readme_verdict(audit_dir / "audit.jsonl") == "chain OK"
    for line in lines_of(audit_dir)[:-1]:
        ev = json.loads(line)
        del ev["hash"]
        assert line.startswith(canonical(ev)[:-1])


# (what the canonical bytes hold, a non-canonical spelling of the same JSON value)
RESPELLINGS = [
    (b"/", b"\\/"),
    (b"\x7f", b"\\u007f"),
    ("é".encode(), b"\\u00e9"),
    ("\u2028".encode(), b"\\u2028"),
    ("\U0001f600".encode(), b"\\ud83d\\ude00"),
    (b"\\u001f", b"\\u001F"),
    (b"\\n", b"\\u000a"),
    (b'"b":true', b'"b" :true'),
    (b'"n":7', b'"n":7.0'),
    (b'"n":7', b'"n":0.7e1'),
    (b'"n":7', b'"n":7e0'),
    (b'"n":7', b'"n":-0'),
]


@pytest.mark.parametrize("raw_hash", [True, False], ids=["raw-bytes-hash", "canonical-hash"])
@pytest.mark.parametrize(("canon", "other"), RESPELLINGS)
def test_non_canonical_spellings_agree_with_the_stdlib(
    tmp_path, monkeypatch, canon, other, raw_hash
):
    payload = ["a/b \x7f é \u2028 \U0001f600 \x1f \n"]
    audit_dir, pub = make_log(tmp_path, 12, payload, every=1000)
    lines = lines_of(audit_dir)[:-1]  # no checkpoint or HEAD: relinking cannot re-sign them
    (audit_dir / "HEAD").unlink()
    target = 4
    if canon == b'"n":7':
        lines[target] = lines[target].replace(b'"n":4', b'"n":7', 1)
    assert canon in lines[target]
    lines[target] = lines[target].replace(canon, other, 1)
    lines = relink(lines, target, raw=raw_hash)
    write_lines(audit_dir, lines)
    fast, slow, _ = both_ways(audit_dir, pub, monkeypatch)
    assert fast == slow, (fast, slow)
    readme = readme_verdict(audit_dir / "audit.jsonl")
    if raw_hash:
        # hashed over bytes that are not the canonical form: never valid
        assert (fast.valid, fast.first_bad_seq, fast.damage) == (False, target, "modified")
        assert readme.startswith(f"seq {target}:"), readme
    elif fast.valid:
        # re-spelled, but hashed over the canonical form: the README agrees it holds
        assert readme == "chain OK", readme
    else:
        # floats: the DESIGN forbids them, and the README script refuses them too
        assert other.startswith(b'"n":') and fast.first_bad_seq == target
        assert readme.startswith(f"seq {target}:"), readme


def test_floats_are_refused_wherever_they_are(tmp_path, monkeypatch):
    audit_dir, pub = make_log(tmp_path, 12, ["x"], every=1000)
    for spot, value in [
        (b'"n":3', b'"n":1.5'),
        (b'"n":3', b'"n":[1.5]'),
        (b'"n":3', b'"n":[0,2.5e-07]'),
        (b'"n":3', b'"n":' + orjson.dumps(1e16)),
        (b'"n":3', b'"n":-0.0'),
        (b'{"data":', b'{"a":0.5,"data":'),
    ]:
        lines = lines_of(audit_dir)
        lines[3] = lines[3].replace(spot, value, 1)
        lines = relink(lines, 3, raw=True)
        work = Path(tempfile.mkdtemp()) / "audit"
        work.mkdir()
        (work / "HEAD").write_bytes((audit_dir / "HEAD").read_bytes())
        write_lines(work, lines)
        fast, slow, _ = both_ways(work, pub, monkeypatch)
        assert fast == slow, (value, fast, slow)
        assert not fast.valid and fast.first_bad_seq == 3, (value, fast)


def test_big_integers_and_extra_members(tmp_path, monkeypatch):
    priv, pub = keys.load_or_create(tmp_path / "keys", "audit")
    log = AuditLog(tmp_path / "audit", priv, checkpoint_every=1000).open()
    for i in range(10):
        log.append("run.started", data={"big": 2**53 if i == 4 else i, "neg": -(2**53)})
    log.close()
    audit_dir = tmp_path / "audit"
    fast, slow, _ = both_ways(audit_dir, pub, monkeypatch)
    assert fast == slow and fast.valid
    lines = lines_of(audit_dir)
    # an inner "hash" member before the real one: the stdlib drops it, so must we
    lines[2] = lines[2].replace(b',"prev_hash":', b',"hash":"x","prev_hash":', 1)
    for raw in (True, False):
        write_lines(audit_dir, relink(lines, 2, raw=raw))
        fast, slow, _ = both_ways(audit_dir, pub, monkeypatch)
        assert fast == slow, (raw, fast, slow)
        assert readme_verdict(audit_dir / "audit.jsonl").startswith("seq 2:") == (not fast.valid)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_byte_edit_gets_the_same_verdict_both_ways(hostile_log, monkeypatch, data):
    audit_dir, pub = hostile_log
    lines = lines_of(audit_dir)
    i = data.draw(st.integers(0, len(lines) - 1))
    line = lines[i]
    at = data.draw(st.integers(0, len(line) - 1))
    cut = data.draw(st.integers(0, 3))
    new = data.draw(st.sampled_from([b"", b" ", b"\\", b'"', b"1", b".5", b"e", b"\n", b"}"]))
    lines[i] = line[:at] + new + line[at + cut :]
    if data.draw(st.booleans()):
        try:
            lines = relink(lines, i, raw=data.draw(st.booleans()))
        except (ValueError, UnicodeDecodeError):
            pass
    target = Path(tempfile.mkdtemp()) / "audit"
    target.mkdir()
    (target / "HEAD").write_bytes((audit_dir / "HEAD").read_bytes())
    write_lines(target, lines)
    fast, slow, _ = both_ways(target, pub, monkeypatch)
    assert fast == slow, (fast, slow)


@pytest.mark.slow
def test_small_blocks_and_parallel_chunks_agree(tmp_path, monkeypatch):
    audit_dir, pub = make_log(tmp_path, 400, HOSTILE, every=37)
    monkeypatch.setattr(audit_verify, "BLOCK_BYTES", 3000)
    monkeypatch.setattr(audit_verify, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(audit_verify, "CHUNK_BYTES", 20_000)
    lines = lines_of(audit_dir)
    for name, edit in [
        ("clean", lambda ls: ls),
        ("modify", lambda ls: [*ls[:250], ls[250].replace(b'"b":', b'"c":', 1), *ls[251:]]),
        ("swap", lambda ls: [*ls[:99], ls[100], ls[99], *ls[101:]]),
        ("delete", lambda ls: [*ls[:300], *ls[301:]]),
        ("torn", lambda ls: [*ls[:-1], ls[-1][:-5]]),
    ]:
        write_lines(audit_dir, edit(list(lines)))
        par = verify_log(audit_dir, pub, workers=2)
        fast, slow, _ = both_ways(audit_dir, pub, monkeypatch)
        assert par == fast == slow, name
        assert par.valid == (name == "clean"), (name, par)
