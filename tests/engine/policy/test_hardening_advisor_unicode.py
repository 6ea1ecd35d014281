"""Issue 15.6: the advisor judges the form matching uses, flags look-alike names, and a deeply
nested policy document is a clean error everywhere a policy is read."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.pipe import Raw, Serve, make_workspace, new_session, run

from talon_tui.engine.policy import checks
from talon_tui.engine.policy.advisor import lint, worst_level
from talon_tui.engine.policy.models import parse_policy


def _policy(*domains: str, **cons):
    return parse_policy(
        {
            "version": 1,
            "overrides": [
                {"tool": "http.fetch", "constraints": {"domains": list(domains), **cons}}
            ],
        }
    )


def _advice(*domains: str, **cons):
    return lint(_policy(*domains, **cons))


def _levels(*domains: str, **cons) -> list[tuple[str, str]]:
    return [(a.level, a.message) for a in _advice(*domains, **cons)]


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "talon_tui.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


# --------------------------------------------------------------------------- normalized form


@pytest.mark.parametrize(
    "spelling",
    ["*.github.ｉｏ", "*.ＧＩＴＨＵＢ.IO", "*.github.io.", "*.github。io", "*.GitHub.io"],
)
def test_wildcard_on_public_suffix_is_danger_in_every_spelling(spelling):
    # matching really treats the spelling as *.github.io
    assert checks.host_allowed("evil.github.io", [spelling])
    advice = _advice(spelling)
    assert worst_level(advice) == "danger"
    assert any("public suffix" in a.message for a in advice)


def test_fullwidth_spelling_exits_1_like_ascii(tmp_path):
    for spelling in ("*.github.io", "*.github.ｉｏ"):
        path = tmp_path / "p.json"
        path.write_text(json.dumps(json.loads(_policy(spelling).model_dump_json())))
        out = cli("policy", "lint", str(path))
        assert out.returncode == 1, (spelling, out.stdout, out.stderr)
        assert "matches every site under a public suffix" in out.stdout


@pytest.mark.parametrize("spelling", ["８.８.８.８", "8.8.8.8", "[::ffff:8.8.8.8]"])
def test_ip_literal_in_any_spelling_is_flagged(spelling):
    advice = _advice(spelling)
    assert any("is an IP address" in a.message for a in advice), advice


def test_fullwidth_private_address_with_private_allowed_is_danger():
    advice = _advice("１２７.０.０.１", allow_private_addresses=True)
    assert any(a.level == "danger" and "internal address" in a.message for a in advice)


# --------------------------------------------------------------------------- look-alikes


@pytest.mark.parametrize(
    ("domain", "reads_as"),
    [
        ("аррӏе.com", "apple"),  # all Cyrillic
        ("xn--80ak6aa92e.com", "apple"),  # the same, as punycode
        ("paypаl.com", "paypal"),  # Latin with one Cyrillic а
        ("gοοgle.com", "google"),  # Greek omicrons
        ("api.ехample.com", "example"),  # a look-alike in an inner label
        ("*.аррӏе.com", "apple"),
    ],
)
def test_confusable_labels_are_danger(domain, reads_as):
    advice = _advice(domain)
    hits = [a for a in advice if a.level == "danger" and f"drawn like {reads_as!r}" in a.message]
    assert hits, advice


def test_mixed_script_label_is_flagged():
    advice = _advice("bücherπ.com")  # Latin and Greek, no ASCII reading
    assert any("mixes scripts" in a.message and "GREEK" in a.message for a in advice), advice


@pytest.mark.parametrize(
    "domain", ["münchen.de", "пример.рф", "例え.jp", "日本語テキスト.jp", "api.example.com"]
)
def test_ordinary_names_are_not_flagged_as_look_alikes(domain):
    advice = _advice(domain)
    assert not any("drawn like" in a.message or "mixes" in a.message for a in advice), advice


def test_invalid_punycode_label_is_flagged():
    advice = _advice("xn--zz.example.com")
    assert any("not valid punycode" in a.message for a in advice)


def test_entries_that_match_nothing_are_said_to():
    advice = _advice("*.8.8.8.8", "*", "api.example.com")
    assert sum("matches no host" in a.message for a in advice) == 2


# --------------------------------------------------------------------------- secrets


def test_secret_on_a_wildcard_domain_is_danger():
    advice = _advice("*.example.com", secrets=["gh"])
    assert any(
        a.level == "danger" and a.field == "constraints.secrets" and "wildcard" in a.message
        for a in advice
    )
    advice = _advice("*.example.ｃｏｍ", secrets=["gh"])
    assert any(a.field == "constraints.secrets" and "wildcard" in a.message for a in advice)


def test_secret_over_plain_http_is_danger_with_an_https_fix():
    advice = _advice("api.example.com", secrets=["gh"], schemes=["http", "https"])
    (hit,) = [a for a in advice if a.field == "constraints.secrets"]
    assert hit.level == "danger" and "plain http" in hit.message
    assert hit.tightened["constraints"]["schemes"] == ["https"]


def test_secret_on_an_exact_https_host_is_quiet():
    advice = _advice("api.example.com", secrets=["gh"])
    assert not [a for a in advice if a.field == "constraints.secrets"]


# --------------------------------------------------------------------------- deep nesting


DEEP = '{"version": 1, "overrides": ' + "[" * 100_000 + "]" * 100_000 + "}"


@pytest.fixture
def deep_file(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text(DEEP)
    return str(path)


def _clean_exit_2(out: subprocess.CompletedProcess) -> None:
    assert out.returncode == 2, (out.returncode, out.stderr[-500:])
    assert "Traceback" not in out.stderr and "RecursionError" not in out.stderr
    assert "nests deeper" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_deep_policy_lint_is_exit_2(deep_file):
    _clean_exit_2(cli("policy", "lint", deep_file))
    _clean_exit_2(cli("policy", "lint", deep_file, "--json"))


def test_deep_policy_set_is_exit_2(deep_file, tmp_path):
    _clean_exit_2(cli("policy", "set", "ses_x", deep_file, "--data-dir", str(tmp_path / "data")))


def test_deep_replay_policy_is_exit_2(deep_file, tmp_path):
    from talon_tui.engine.engine import Engine

    async def make_log():
        eng = Engine(tmp_path / "data")
        await eng.start()
        await eng.stop()

    run(make_log())
    _clean_exit_2(
        cli("replay", "run_x", "--policy", deep_file, "--data-dir", str(tmp_path / "data"))
    )


def test_duplicate_keys_in_a_policy_file_are_refused(tmp_path):
    """Two readers must never see two documents: `allow` given twice is not last-one-wins."""
    path = tmp_path / "dup.json"
    path.write_text(
        '{"version": 1, "overrides": [{"tool": "file.read", "allow": false, "allow": true}]}'
    )
    out = cli("policy", "lint", str(path))
    assert out.returncode == 2 and "duplicate key" in out.stderr


def test_deep_policy_set_over_the_pipe_is_bad_request(tmp_path):
    serve = Serve(tmp_path / "data").start()
    try:
        sid, _key = run(new_session(serve, make_workspace(tmp_path)))
        raw = Raw(serve.socket_path)
        hello = raw.call({"id": 0, "op": "hello", "auth": {"admin_token": serve.admin_token}})
        assert hello["ok"] is True
        for depth in (200, 100_000):
            frame = (
                f'{{"id": 1, "op": "policy.set", "session_id": "{sid}", "policy": '
                '{"version": 1, "overrides": ' + "[" * depth + "]" * depth + "}}\n"
            )
            raw.send_bytes(frame.encode())
            reply = raw.recv()
            assert reply["ok"] is False and reply["error"]["code"] == "BAD_REQUEST", reply
        ok = raw.call({"id": 2, "op": "policy.get", "session_id": sid})
        assert ok["ok"] is True  # the connection survives, the policy is unchanged
        assert ok["policy"] == json.loads(json.dumps(ok["policy"]))
        raw.close()
    finally:
        serve.stop_quietly()


# --------------------------------------------------------------------------- other spellings


@pytest.mark.parametrize(
    "cons",
    [
        {"ports": [True]},  # a boolean was port 1
        {"ports": ["8443"]},
        {"ports": [8443.0]},
        {"domains": ["https://api.example.com:８４４３"]},  # full-width digits were port 8443
    ],
)
def test_ports_are_plain_integers(cons):
    from talon_tui.engine.errors import PolicyInvalid

    with pytest.raises(PolicyInvalid):
        _policy(*cons.pop("domains", ["api.example.com"]), **cons)


def test_deep_agent_params_are_exit_2(tmp_path):
    deep = '{"a": ' + "[" * 5000 + "]" * 5000 + "}"
    _clean_exit_2(cli("agent", "intent", "--key", "k", "--tool", "file.read", "--params", deep))
    batch = tmp_path / "intents.jsonl"
    batch.write_text('{"tool": "file.read", "params": ' + "[" * 5000 + "]" * 5000 + "}\n")
    _clean_exit_2(cli("agent", "run", str(batch), "--key", "k"))
