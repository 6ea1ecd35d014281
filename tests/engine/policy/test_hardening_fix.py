"""Issue 15.4: "fix safely" allows exactly what the policy allowed plus the denied intent's
narrow class, never a cross product with an existing rule, and says what it newly allows."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from support.pipe import REPO, TALON, Serve, make_workspace, new_session, run
from support.policy_strategies import SETTINGS, TOOLS, WORKSPACE, intents, overrides

from talon_tui.engine.policy import checks
from talon_tui.engine.policy.evaluate import APPROVAL_STRICTNESS, evaluate, suggest_fix
from talon_tui.engine.policy.fix import merge_fix, plan_fix
from talon_tui.engine.policy.models import ToolIntent, parse_policy

API_GET = {
    "tool": "http.fetch",
    "allow": True,
    "approval": "never",
    "constraints": {"domains": ["api.example.com"], "methods": ["GET"], "schemes": ["https"]},
}


def _judge(intent: ToolIntent, overrides: list[dict]):
    policy = parse_policy({"version": 1, "overrides": overrides})
    return evaluate(intent, policy, workspace=WORKSPACE)


def _fetch(url: str, method: str = "GET") -> ToolIntent:
    return ToolIntent(tool="http.fetch", params={"url": url, "method": method})


def test_the_issues_example_is_no_cross_product():
    before = [parse_policy({"version": 1, "overrides": [API_GET]}).to_doc()["overrides"][0]]
    denied = _fetch("http://attacker.example:8080/x", "POST")
    assert _judge(denied, before).decision == "DENY"
    plan = plan_fix(before, suggest_fix(denied))
    after = plan.overrides
    assert not plan.merged and plan.index == 1 and after[0] == before[0]
    assert _judge(denied, after).decision == "ALLOW"
    for intent in (
        _fetch("https://api.example.com/x", "POST"),  # POST to api.example.com
        _fetch("http://api.example.com/x"),  # plain http to it
        _fetch("https://api.example.com:8080/x"),  # port 8080 on it
        _fetch("http://api.example.com:8080/x", "POST"),
        _fetch("https://attacker.example:8080/x", "POST"),
        _fetch("http://attacker.example:8080/x", "GET"),
    ):
        assert _judge(intent, after).decision == "DENY", intent.params
    kept = _judge(_fetch("https://api.example.com/x"), after)
    assert kept.decision == "ALLOW" and kept.override_index == 0
    # what the operator confirms: every newly allowed combination (port 80 comes with http)
    assert plan.newly_allowed == [
        "POST http://attacker.example:80",
        "POST http://attacker.example:8080",
    ]


def test_fix_never_asks_less_than_the_tools_strictest_rule():
    always = {**API_GET, "approval": "always"}
    plan = plan_fix([always], suggest_fix(_fetch("https://other.example/x")))
    assert plan.override["approval"] == "always"
    assert _judge(_fetch("https://other.example/x"), plan.overrides).decision == (
        "REQUIRE_APPROVAL"
    )


def test_merge_only_when_exactly_one_allowlist_differs():
    a = parse_policy({"version": 1, "overrides": [API_GET]}).to_doc()["overrides"][0]
    b = {**a, "constraints": {**a["constraints"], "domains": ["b.example"]}}
    merged = merge_fix(a, b)
    assert merged["constraints"]["domains"] == ["api.example.com", "b.example"]
    assert merged["approval"] == "never"
    two = {**b, "constraints": {**b["constraints"], "methods": ["POST"]}}
    assert merge_fix(a, two) is None  # would allow GET b.example and POST api.example.com
    limit = {**b, "constraints": {**b["constraints"], "max_bytes": 5}}
    assert merge_fix(a, limit) is None
    assert merge_fix(a, {**b, "approval": "always"}) is None
    assert merge_fix({**a, "enabled": False}, b) is None


def test_a_deny_override_still_wins_and_is_reported():
    deny = {"tool": "http.fetch", "allow": False}
    plan = plan_fix([deny, API_GET], suggest_fix(_fetch("https://x.example/")))
    assert plan.denied_by == 0 and plan.newly_allowed == []
    assert _judge(_fetch("https://x.example/"), plan.overrides).decision == "DENY"


# ------------------------------------------------------------------ the property


@st.composite
def fix_cases(draw):
    policy = draw(st.lists(st.sampled_from(TOOLS).flatmap(overrides), max_size=4))
    tool = draw(st.sampled_from(TOOLS))
    denied = draw(intents(tool))
    # nearby intents: the same tool mostly, plus others
    nearby = draw(st.lists(intents(tool), min_size=15, max_size=30))
    nearby += draw(st.lists(st.sampled_from(TOOLS).flatmap(intents), max_size=5))
    return policy, denied, nearby


def _covered(line_set: list[str], y: ToolIntent) -> bool:
    """Some newly-allowed line names `y`'s combination."""
    p = y.params
    if y.tool == "http.fetch":
        u = checks.parse_fetch_url(p["url"])
        return f"{p['method'].upper()} {u.scheme}://{u.host}:{u.port}" in [
            line.removesuffix(" (private addresses too)") for line in line_set
        ]
    if y.tool == "docker.run":
        return any(line.startswith(f"docker.run {p['image']} ") for line in line_set)
    if y.tool == "shell.exec":
        return any(line.startswith(f"run {p['argv'][0]} ") for line in line_set) or any(
            line.startswith("run exactly ") for line in line_set
        )
    comps = checks.normalize_rel_path(p["path"])
    size = len(p.get("content", "").encode())
    for line in line_set:
        found = re.fullmatch(rf"{y.tool} of (.*) \(and below it\), up to (\d+) bytes", line)
        if found and size <= int(found[2]):
            if checks.path_under_roots(comps, [found[1]], workspace=WORKSPACE):
                return True
    return False


@pytest.mark.slow
@SETTINGS
@given(fix_cases())
def test_policy_after_fix_allows_exactly_before_plus_the_fix_class(case):
    before, denied, nearby = case
    first = _judge(denied, before)
    assume(first.decision == "DENY")
    fix = suggest_fix(denied)
    assume(fix is not None)
    plan = plan_fix(before, fix)
    after = plan.overrides
    assert plan.denied_by is None
    assert _judge(denied, after).decision != "DENY"
    for y in [denied, *nearby]:
        was, now = _judge(y, before), _judge(y, after)
        in_class = _judge(y, [fix]).decision != "DENY"
        assert (now.decision != "DENY") == (was.decision != "DENY" or in_class), (
            y.params,
            was.reason,
            now.reason,
        )
        if was.decision != "DENY":
            # what was allowed is decided as before: same kind, same limits and ttl
            assert now.decision == was.decision and now.ttl_seconds == was.ttl_seconds
            if now.override_index == was.override_index:
                for key, value in (was.constraints or {}).items():
                    if not isinstance(value, list):
                        assert now.constraints[key] == value, key
        elif now.decision != "DENY":
            # newly allowed: asks at least as the fix does, and the operator was told
            deciding = after[now.override_index]
            assert APPROVAL_STRICTNESS[deciding["approval"]] >= APPROVAL_STRICTNESS[fix["approval"]]
            assert _covered(plan.newly_allowed, y), (y.params, plan.newly_allowed)


# ------------------------------------------------------------------ the CLI says it too


def test_cli_policy_set_lists_what_it_newly_allows(tmp_path):
    serve = Serve(tmp_path / "data").start()
    try:
        ws = make_workspace(tmp_path)
        sid, _key = run(new_session(serve, ws, {"version": 1, "overrides": [API_GET]}))
        fix = suggest_fix(_fetch("http://attacker.example:8080/x", "POST"))
        doc = {"version": 1, "overrides": [API_GET, fix]}
        path = tmp_path / "p.json"
        path.write_text(json.dumps(doc))
        out = subprocess.run(
            [*TALON, "policy", "set", sid, str(path), "--data-dir", str(serve.data)],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert "newly allows 2 combinations:" in out.stdout
        assert "+ POST http://attacker.example:8080" in out.stdout
        assert "+ POST http://attacker.example:80\n" in out.stdout
    finally:
        serve.stop_quietly()
