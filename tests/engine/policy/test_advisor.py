"""advisor.lint: each risky setting is flagged with a level, a why and a tighter alternative."""

from __future__ import annotations

import pytest

from talon_tui.engine.policy.advisor import Advice, lint, worst_level
from talon_tui.engine.policy.models import parse_policy

IMAGE_ID = "sha256:" + "ab" * 32


def advise(*overrides: dict, workspace: str | None = None) -> list[Advice]:
    return lint(parse_policy({"version": 1, "overrides": list(overrides)}), workspace=workspace)


def only(advice: list[Advice], field: str) -> list[Advice]:
    return [a for a in advice if a.field == field]


def fr(roots, tool="file.read", **cons) -> dict:
    return {"tool": tool, "constraints": {"roots": roots, **cons}}


def web(domains, **cons) -> dict:
    return {"tool": "http.fetch", "constraints": {"domains": domains, **cons}}


def box(approval="untrusted", **cons) -> dict:
    cons.setdefault("images", [IMAGE_ID])
    cons.setdefault("require_signed", True)
    return {"tool": "docker.run", "approval": approval, "constraints": cons}


def assert_complete(a: Advice) -> None:
    assert a.level in ("info", "warn", "danger")
    assert a.message and a.why and a.alternative
    assert a.why != a.message and a.alternative != a.why


def assert_tightened_is_valid(a: Advice, *overrides: dict) -> None:
    """A tightened override parses and clears this very warning."""
    assert a.tightened is not None
    docs = list(overrides)
    docs[a.override_index] = a.tightened
    again = lint(parse_policy({"version": 1, "overrides": docs}))
    assert not [b for b in again if b.field == a.field and b.message == a.message]


def test_narrow_policy_has_no_advice():
    assert advise(fr(["notes"]), web(["api.example.com"]), box()) == []
    assert worst_level([]) is None


def test_empty_policy_has_no_advice():
    assert advise() == []


@pytest.mark.parametrize(
    ("root", "level", "needle"),
    [
        ("/", "danger", "whole machine"),
        ("///", "danger", "whole machine"),
        (".", "warn", "whole workspace"),
        ("./", "warn", "whole workspace"),
        ("~", "warn", "home directory"),
        ("~/projects", "warn", "home directory"),
        ("../sibling", "danger", "climbs out"),
        ("/etc", "warn", "absolute"),
    ],
)
def test_broad_roots(root, level, needle):
    advice = only(advise(fr([root, "notes"])), "constraints.roots")
    assert len(advice) == 1
    a = advice[0]
    assert a.level == level and needle in a.message and a.override_index == 0
    assert_complete(a)


def test_absolute_roots_judged_against_workspace(tmp_path):
    ws = str(tmp_path)
    (tmp_path / "notes").mkdir()
    inside = only(advise(fr([f"{ws}/notes"]), workspace=ws), "constraints.roots")
    assert [a.level for a in inside] == ["info"]
    assert inside[0].tightened["constraints"]["roots"] == ["notes"]
    outside = only(advise(fr(["/etc", "notes"]), workspace=ws), "constraints.roots")
    assert [a.level for a in outside] == ["danger"]
    assert "outside the workspace" in outside[0].message
    assert outside[0].tightened["constraints"]["roots"] == ["notes"]


def test_missing_root_is_info_with_workspace(tmp_path):
    advice = only(advise(fr(["nope"]), workspace=str(tmp_path)), "constraints.roots")
    assert [a.level for a in advice] == ["info"] and "does not exist" in advice[0].message
    (tmp_path / "nope").mkdir()
    assert advise(fr(["nope"]), workspace=str(tmp_path)) == []


def test_large_max_bytes_and_long_ttl_are_tightened():
    o = fr(["notes"], max_bytes=100 * 1024 * 1024, ttl_seconds=900)
    advice = advise(o)
    big = only(advice, "constraints.max_bytes")[0]
    ttl = only(advice, "constraints.ttl_seconds")[0]
    assert big.level == "warn" and ttl.level == "warn"
    assert big.tightened["constraints"]["max_bytes"] == 1_048_576
    assert ttl.tightened["constraints"]["ttl_seconds"] == 60
    assert_tightened_is_valid(big, o)
    assert_tightened_is_valid(ttl, o)
    assert advise(fr(["notes"], ttl_seconds=300)) == []


@pytest.mark.parametrize(
    ("domain", "level", "needle"),
    [
        ("*.example.com", "warn", "wildcard"),
        ("*.com", "danger", "public suffix"),
        ("*.co.uk", "danger", "public suffix"),
        ("*.github.io", "danger", "public suffix"),
        ("com", "warn", "bare suffix"),
        ("co.uk", "danger", "bare suffix"),
        (".example.com", "warn", "bare suffix"),
        ("93.184.216.34", "warn", "IP address"),
        ("10.0.0.5", "warn", "IP address"),
        ("[2001:db8::1]", "warn", "IP address"),
    ],
)
def test_domains(domain, level, needle):
    advice = only(advise(web([domain, "api.example.com"])), "constraints.domains")
    assert len(advice) == 1, advice
    assert advice[0].level == level and needle in advice[0].message
    assert_complete(advice[0])


def test_private_ip_with_private_addresses_allowed_is_danger():
    advice = advise(web(["10.0.0.5"], allow_private_addresses=True))
    levels = {(a.field, a.level) for a in advice}
    assert ("constraints.domains", "danger") in levels
    assert ("constraints.allow_private_addresses", "danger") in levels
    private = only(advice, "constraints.allow_private_addresses")[0]
    assert private.tightened["constraints"]["allow_private_addresses"] is False


def test_methods_schemes_ports():
    o = web(
        ["api.example.com"],
        methods=["GET", "POST", "DELETE"],
        schemes=["http", "https"],
        ports=[8080],
    )
    advice = advise(o)
    methods = only(advice, "constraints.methods")[0]
    assert methods.level == "warn" and "POST" in methods.message and "DELETE" in methods.message
    assert methods.tightened["constraints"]["methods"] == ["GET"]
    assert_tightened_is_valid(methods, o)
    scheme = only(advice, "constraints.schemes")[0]
    assert scheme.level == "warn" and scheme.tightened["constraints"]["schemes"] == ["https"]
    assert_tightened_is_valid(scheme, o)
    assert only(advice, "constraints.ports")[0].level == "info"
    assert advise(web(["api.example.com"], methods=["GET", "HEAD"])) == []


def test_docker_network_mounts_tags_signing_approval():
    o = box(
        approval="never",
        images=["busybox:latest", IMAGE_ID],
        network=True,
        mounts=[
            {"source": "/srv/in", "target": "/in", "read_only": True},
            {"source": "/srv/out", "target": "/out", "read_only": False},
        ],
        require_signed=False,
    )
    advice = advise(o)
    by = {(a.field, a.level) for a in advice}
    assert ("constraints.network", "danger") in by  # network with approval never
    assert ("constraints.mounts", "danger") in by  # rw mount
    assert ("constraints.mounts", "warn") in by  # ro mount
    assert ("constraints.images", "warn") in by
    assert ("constraints.require_signed", "warn") in by
    assert ("approval", "warn") in by
    rw = [a for a in advice if a.field == "constraints.mounts" and a.level == "danger"][0]
    assert [m["read_only"] for m in rw.tightened["constraints"]["mounts"]] == [True, True]
    assert_tightened_is_valid(rw, o)
    net = only(advice, "constraints.network")[0]
    assert net.tightened["constraints"]["network"] is False
    tag = only(advice, "constraints.images")[0]
    assert "busybox:latest" in tag.message and tag.tightened is None
    for a in advice:
        assert_complete(a)


def test_docker_network_with_approval_is_warn():
    advice = only(advise(box(network=True)), "constraints.network")
    assert [a.level for a in advice] == ["warn"]


def test_mount_outside_workspace_is_danger(tmp_path):
    o = box(mounts=[{"source": "/etc", "target": "/etc-host"}])
    advice = only(advise(o, workspace=str(tmp_path)), "constraints.mounts")
    assert [a.level for a in advice] == ["danger"]
    o = box(mounts=[{"source": f"{tmp_path}/data", "target": "/data"}])
    assert [a.level for a in only(advise(o, workspace=str(tmp_path)), "constraints.mounts")] == [
        "warn"
    ]


def test_securetalon_docker_fields_are_linted_the_same():
    o = {
        "tool": "docker.run",
        "constraints": {
            "images": ["busybox@" + IMAGE_ID],
            "network_allowed": True,
            "mounts_allowed": ["/srv/x:/x:rw"],
            "require_signed": True,
        },
    }
    by = {(a.field, a.level) for a in advise(o)}
    assert ("constraints.network", "warn") in by and ("constraints.mounts", "danger") in by


def test_every_shell_exec_is_danger():
    o = {
        "tool": "shell.exec",
        "approval": "always",
        "constraints": {"commands": ["/usr/bin/wc"], "roots": ["work"]},
    }
    advice = advise(o)
    assert [(a.field, a.level) for a in advice] == [("tool", "danger")]
    assert worst_level(advice) == "danger"


@pytest.mark.parametrize(
    "program", ["/bin/sh", "/bin/bash", "/usr/bin/python3", "/usr/bin/python3.11", "/usr/bin/env"]
)
def test_interpreters_are_called_out(program):
    o = {
        "tool": "shell.exec",
        "approval": "always",
        "constraints": {"commands": [program, "/usr/bin/wc"], "roots": ["w"]},
    }
    commands = only(advise(o), "constraints.commands")
    assert [a.level for a in commands] == ["danger"]
    assert commands[0].tightened["constraints"]["commands"] == ["/usr/bin/wc"]


def test_shell_approval_never_is_danger_untrusted_is_warn():
    base = {"tool": "shell.exec", "constraints": {"commands": ["/usr/bin/wc"], "roots": ["w"]}}
    never = only(advise({**base, "approval": "never"}), "approval")
    assert [a.level for a in never] == ["danger"]
    assert never[0].tightened["approval"] == "always"
    untrusted = only(advise({**base, "approval": "untrusted"}), "approval")
    assert [a.level for a in untrusted] == ["warn"]


def test_unnormalized_command_path_is_flagged():
    o = {
        "tool": "shell.exec",
        "approval": "always",
        "constraints": {"commands": ["/usr/bin/../bin/wc"], "roots": ["w"]},
    }
    msgs = [a.message for a in only(advise(o), "constraints.commands")]
    assert any("not a normalized path" in m for m in msgs)


def test_deny_overrides_raise_nothing_and_shadowing_is_info():
    advice = advise({"tool": "file.read", "allow": False}, fr(["notes"]))
    assert [(a.override_index, a.field, a.level) for a in advice] == [(1, "allow", "info")]
    assert "never applies" in advice[0].message


def test_disabled_overrides_are_still_linted_and_marked():
    advice = advise({**fr(["/"]), "enabled": False})
    assert advice and all(a.message.startswith("(disabled)") for a in advice)


def test_advice_is_ordered_by_override_then_severity():
    advice = advise(fr(["."], ttl_seconds=900), fr(["/"]))
    assert [a.override_index for a in advice] == sorted(a.override_index for a in advice)
    assert advice[-1].level == "danger" and advice[-1].override_index == 1
    assert advice[0].where.startswith("overrides[0].")


def test_advice_dumps_to_json():
    a = advise(fr(["/"]))[0]
    doc = a.model_dump(mode="json")
    assert set(doc) == {
        "level",
        "override_index",
        "field",
        "message",
        "why",
        "alternative",
        "tightened",
    }
