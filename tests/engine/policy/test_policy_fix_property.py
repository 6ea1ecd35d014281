"""Property tests: a DENY's suggested_fix is a valid override that allows exactly that intent."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from talon_tui.engine.policy.evaluate import evaluate, suggest_fix
from talon_tui.engine.policy.models import HTTP_METHODS, Policy, ToolIntent, parse_policy

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

component = st.text(alphabet=st.sampled_from("abcxyz019._-~é"), min_size=1, max_size=8).filter(
    lambda c: c not in (".", "..")
)
rel_path = st.lists(component, min_size=1, max_size=4).map("/".join)
label = st.text(alphabet=st.sampled_from("abcdefxyz0123-"), min_size=1, max_size=10).filter(
    lambda s: not s.startswith("-") and not s.endswith("-")
)
host = st.builds(
    lambda labels, tld: ".".join([*labels, tld]),
    st.lists(label, min_size=1, max_size=3),
    st.sampled_from(["com", "org", "example", "io"]),
)
hexdigest = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
image = st.one_of(
    hexdigest.map(lambda h: "sha256:" + h),
    st.builds(
        lambda name, h: f"{name}@sha256:{h}",
        st.sampled_from(["busybox", "ghcr.io/acme/tool", "registry:5000/x/y"]),
        hexdigest,
    ),
)
program = st.lists(label, min_size=1, max_size=3).map(lambda parts: "/" + "/".join(parts))
origin = st.sampled_from(["agent", "skill", "operator"])


@st.composite
def intents(draw) -> ToolIntent:
    tool = draw(
        st.sampled_from(["file.read", "file.write", "http.fetch", "docker.run", "shell.exec"])
    )
    if tool == "file.read":
        params = {"path": draw(rel_path)}
    elif tool == "file.write":
        params = {"path": draw(rel_path), "content": draw(st.text(max_size=50))}
    elif tool == "http.fetch":
        scheme = draw(st.sampled_from(["http", "https"]))
        port = draw(st.one_of(st.none(), st.integers(1, 65535)))
        netloc = draw(host) + (f":{port}" if port is not None else "")
        path = draw(st.sampled_from(["/", "/v1/items", "/a?b=c", ""]))
        method = draw(st.sampled_from(HTTP_METHODS))
        method = draw(st.sampled_from([method, method.lower(), method.title()]))
        params = {"url": f"{scheme}://{netloc}{path}", "method": method}
    elif tool == "docker.run":
        params = {"image": draw(image)}
        if draw(st.booleans()):
            params["command"] = draw(st.lists(st.text(max_size=5), max_size=3))
    else:
        args = st.lists(st.text(max_size=5).filter(lambda a: "\x00" not in a), max_size=3)
        params = {"argv": [draw(program), *draw(args)]}
        if draw(st.booleans()):
            params["cwd"] = draw(st.one_of(rel_path, st.just(".")))
    return ToolIntent(tool=tool, params=params, origin=draw(origin))


def _policy_of(fix: dict) -> Policy:
    return parse_policy({"version": 1, "overrides": [fix]})


@pytest.mark.slow
@SETTINGS
@given(intents())
def test_fix_parses_and_allows_exactly_the_intent(i):
    denied = evaluate(i, Policy())
    assert denied.decision == "DENY"
    fix = denied.suggested_fix
    assert fix is not None, denied.reason
    assert fix == suggest_fix(i)
    d = evaluate(i, _policy_of(fix))
    needs_approval = fix["approval"] == "always" or (
        fix["approval"] == "untrusted" and i.origin == "skill"
    )
    assert d.decision == ("REQUIRE_APPROVAL" if needs_approval else "ALLOW"), d.reason
    assert d.override_index == 0
    assert d.constraints == fix["constraints"]


def _neighbours(i: ToolIntent) -> list[ToolIntent]:
    """Intents one step away from `i` that the narrowest fix for `i` must not allow."""
    p = dict(i.params)
    out: list[dict] = []
    if i.tool.startswith("file."):
        parts = p["path"].split("/")
        if len(parts) > 1:
            out.append({**p, "path": "/".join([*parts[:-2], parts[-2] + "x", parts[-1]])})
            out.append({**p, "path": "zz-other/" + p["path"]})
        else:  # a file at the top of the workspace gets only itself as root, never "."
            out.append({**p, "path": parts[0] + "x"})
            out.append({**p, "path": "zz-other/" + p["path"]})
    elif i.tool == "http.fetch":
        scheme, rest = p["url"].split("://", 1)
        out.append({**p, "url": f"{scheme}://evil-{rest}"})
        out.append({**p, "url": f"{scheme}://x.{rest}"})
        out.append({**p, "url": f"{'https' if scheme == 'http' else 'http'}://{rest}"})
        other = "DELETE" if p["method"].upper() != "DELETE" else "GET"
        out.append({**p, "method": other})
    elif i.tool == "docker.run":
        img = p["image"]
        flipped = img[:-1] + ("0" if img[-1] != "0" else "1")
        out.append({**p, "image": flipped})
    else:
        argv = list(p["argv"])
        out.append({**p, "argv": [argv[0] + "x", *argv[1:]]})
        out.append({**p, "argv": ["/bin/sh", "-c", " ".join(argv)]})
        if p.get("cwd", ".") != ".":
            out.append({**p, "cwd": "zz-other"})
    return [ToolIntent(tool=i.tool, params=n, origin=i.origin) for n in out]


@pytest.mark.slow
@SETTINGS
@given(intents())
def test_fix_does_not_allow_neighbouring_intents(i):
    fix = suggest_fix(i)
    assert fix is not None
    p = _policy_of(fix)
    for n in _neighbours(i):
        d = evaluate(n, p)
        assert d.decision == "DENY", (i.params, n.params, d.reason)


@pytest.mark.slow
@SETTINGS
@given(
    st.sampled_from(["file.read", "file.write", "http.fetch", "docker.run", "shell.exec"]),
    st.dictionaries(
        st.sampled_from(["path", "content", "url", "method", "image", "argv", "cwd", "x"]),
        st.one_of(st.text(max_size=30), st.lists(st.text(max_size=10), max_size=3)),
        max_size=4,
    ),
    origin,
)
def test_any_fix_offered_for_arbitrary_input_is_valid_and_allows(tool, params, org):
    i = ToolIntent(tool=tool, params=params, origin=org)
    d = evaluate(i, Policy())
    assert d.decision == "DENY"
    assert d.reason
    if d.suggested_fix is not None:
        allowed = evaluate(i, _policy_of(d.suggested_fix))
        assert allowed.decision in ("ALLOW", "REQUIRE_APPROVAL"), allowed.reason
