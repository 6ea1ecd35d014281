"""Every sample policy parses; only risky.json has danger; the samples do what they say."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from talon_tui.engine.policy.advisor import lint, worst_level
from talon_tui.engine.policy.evaluate import evaluate
from talon_tui.engine.policy.models import ToolIntent, parse_policy

SAMPLES = Path(__file__).resolve().parents[3] / "sample_policies"
EXPECTED = {
    "file-read.json",
    "http-fetch.json",
    "docker-skill.json",
    "deny-then-fix-before.json",
    "deny-then-fix-after.json",
    "strict-readonly.json",
    "risky.json",
    "securetalon-reference.json",
}


def load(name: str):
    return parse_policy(json.loads((SAMPLES / name).read_text(encoding="utf-8")))


def test_all_samples_are_present():
    assert EXPECTED <= {p.name for p in SAMPLES.glob("*.json")}


@pytest.mark.parametrize("name", sorted(p.name for p in SAMPLES.glob("*.json")))
def test_sample_parses_and_only_risky_has_danger(name):
    advice = lint(load(name))
    if name == "risky.json":
        assert worst_level(advice) == "danger"
    else:
        assert worst_level(advice) in (None, "info", "warn"), [a.message for a in advice]


def test_risky_shows_every_kind_of_warning():
    advice = lint(load("risky.json"))
    fields = {a.field for a in advice}
    assert {
        "constraints.roots",
        "constraints.max_bytes",
        "constraints.ttl_seconds",
        "constraints.domains",
        "constraints.methods",
        "constraints.schemes",
        "constraints.allow_private_addresses",
        "constraints.network",
        "constraints.mounts",
        "constraints.images",
        "constraints.require_signed",
        "approval",
        "tool",
    } <= fields
    assert {a.level for a in advice} == {"info", "warn", "danger"}


def test_deny_then_fix_flow():
    i = ToolIntent(tool="file.read", params={"path": "reports/q3.txt"})
    before = evaluate(i, load("deny-then-fix-before.json"))
    assert before.decision == "DENY" and "outside roots ['notes']" in before.reason
    after_policy = load("deny-then-fix-after.json")
    added = after_policy.to_doc()["overrides"][-1]
    assert added == before.suggested_fix
    after = evaluate(i, after_policy)
    assert after.decision == "ALLOW" and after.override_index == 1
    # the fix allows exactly that directory, nothing beside it
    other = ToolIntent(tool="file.read", params={"path": "reports2/q3.txt"})
    assert evaluate(other, after_policy).decision == "DENY"


def test_strict_readonly_denies_everything_but_reading_docs():
    p = load("strict-readonly.json")
    assert (
        evaluate(ToolIntent(tool="file.read", params={"path": "docs/a.md"}), p).decision == "ALLOW"
    )
    for tool, params in [
        ("file.write", {"path": "docs/a.md", "content": "x"}),
        ("http.fetch", {"url": "https://api.example.com/"}),
        ("docker.run", {"image": "sha256:" + "ab" * 32}),
        ("shell.exec", {"argv": ["/bin/ls"]}),
    ]:
        d = evaluate(ToolIntent(tool=tool, params=params), p)
        assert d.decision == "DENY" and "allow: false" in d.reason


def test_samples_allow_what_their_notes_say():
    get = ToolIntent(tool="http.fetch", params={"url": "https://api.example.com/v1"})
    assert evaluate(get, load("http-fetch.json")).decision == "ALLOW"
    post = ToolIntent(
        tool="http.fetch", params={"url": "https://api.example.com/v1", "method": "POST"}
    )
    assert evaluate(post, load("http-fetch.json")).decision == "DENY"
    read = ToolIntent(tool="file.read", params={"path": "notes/today.md"})
    assert evaluate(read, load("file-read.json")).decision == "ALLOW"
    skill = load("docker-skill.json")
    image = skill.overrides[0].constraints.images[0]
    run = ToolIntent(tool="docker.run", params={"image": image}, origin="skill")
    assert evaluate(run, skill).decision == "REQUIRE_APPROVAL"


def test_securetalon_reference_loads_unchanged_and_works():
    raw = json.loads((SAMPLES / "securetalon-reference.json").read_text(encoding="utf-8"))
    docker_raw = raw["overrides"][1]["constraints"]
    assert "network_allowed" in docker_raw and "mounts_allowed" in docker_raw
    assert raw["overrides"][0]["constraints"]["domains"] == ["https://api.example.com"]
    p = parse_policy(raw)
    http, docker = (o.constraints for o in p.overrides)
    assert http.domains == ["api.example.com"] and http.schemes == ["https"]
    assert docker.network is False and docker.mounts == []
    image = docker_raw["images"][0]
    assert "@sha256:" in image
    run = ToolIntent(tool="docker.run", params={"image": image})
    assert evaluate(run, p).decision == "ALLOW"
    get = ToolIntent(tool="http.fetch", params={"url": "https://api.example.com/x"})
    assert evaluate(get, p).decision == "ALLOW"
    plain = ToolIntent(tool="http.fetch", params={"url": "http://api.example.com/x"})
    assert evaluate(plain, p).decision == "DENY"
