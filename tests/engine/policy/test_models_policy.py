"""Policy documents: validation names the field; SecureTalon documents load unchanged."""

from __future__ import annotations

import pytest

from talon_tui.engine.errors import PolicyInvalid
from talon_tui.engine.policy.models import DockerConstraints, HttpConstraints, Policy, parse_policy

DIGEST = "sha256:" + "ab" * 32


def _one(tool: str, constraints: dict | None = None, **extra) -> dict:
    o = {"tool": tool, **extra}
    if constraints is not None:
        o["constraints"] = constraints
    return {"version": 1, "overrides": [o]}


def _error(doc) -> str:
    with pytest.raises(PolicyInvalid) as info:
        parse_policy(doc)
    return info.value.message


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        (_one("file.read", {"roots": []}), "overrides.0.constraints.roots"),
        (_one("file.read", {"roots": ["  "]}), "overrides.0.constraints.roots"),
        (_one("http.fetch", {"domains": []}), "overrides.0.constraints.domains"),
        (_one("docker.run", {"images": []}), "overrides.0.constraints.images"),
        (_one("shell.exec", {"commands": []}), "overrides.0.constraints.commands"),
        (_one("file.delete", {"roots": ["a"]}), "overrides.0.tool"),
        (_one("file.read", {"roots": "notes"}), "overrides.0.constraints.roots"),
        (_one("file.read", {"roots": ["a"], "max_bytes": "big"}), "constraints.max_bytes"),
        (_one("file.read", {"roots": ["a"], "ttl_seconds": 3601}), "constraints.ttl_seconds"),
        (_one("file.read", {"roots": ["a"], "ttl_seconds": 0}), "constraints.ttl_seconds"),
        (_one("file.read", {"roots": ["a"], "colour": "red"}), "constraints.colour"),
        (_one("file.read"), "constraints"),
        (_one("http.fetch", {"domains": ["a.com"], "methods": ["TRACE"]}), "methods"),
        (_one("http.fetch", {"domains": ["a.com/path"]}), "constraints.domains"),
        (_one("http.fetch", {"domains": ["https://a.com:http"]}), "constraints"),
        (_one("http.fetch", {"domains": ["ftp://a.com"]}), "constraints"),
        (_one("http.fetch", {"domains": ["a.com"], "ports": [70000]}), "constraints.ports"),
        (_one("shell.exec", {"commands": ["ls"]}), "constraints.commands"),
        (_one("file.read", {"roots": ["a"]}, approval="sometimes"), "overrides.0.approval"),
        (_one("file.read", {"roots": ["a"]}, allow="yes"), "overrides.0.allow"),
        ({"version": 2, "overrides": []}, "version"),
        ({"version": 1, "overrides": [], "extra": True}, "extra"),
        ({"version": 1, "overrides": {}}, "overrides"),
    ],
)
def test_invalid_documents_name_the_field(doc, field):
    message = _error(doc)
    assert message.startswith("invalid policy: ")
    assert field in message


def test_non_object_document_is_refused_plainly():
    assert "JSON object" in _error([])
    assert "JSON object" in _error("policy")


def test_blank_allowlist_message_says_why():
    assert "would allow nothing" in _error(_one("http.fetch", {"domains": []}))


def test_deny_override_needs_no_constraints_and_allow_does():
    p = parse_policy(_one("shell.exec", allow=False))
    assert p.overrides[0].allow is False and p.overrides[0].constraints is None


def test_constraints_are_typed_by_the_tool():
    p = parse_policy(
        {
            "version": 1,
            "overrides": [
                {"tool": "http.fetch", "constraints": {"domains": ["API.Example.COM."]}},
                {"tool": "docker.run", "constraints": {"images": [DIGEST]}},
            ],
        }
    )
    http, docker = (o.constraints for o in p.overrides)
    assert isinstance(http, HttpConstraints) and http.domains == ["api.example.com"]
    assert http.methods == ["GET"] and http.schemes == ["https"]
    assert isinstance(docker, DockerConstraints) and docker.network is False


def test_file_constraints_for_http_tool_are_refused():
    message = _error(_one("http.fetch", {"roots": ["a"]}))
    assert "domains" in message and "roots" in message


def test_methods_are_upper_cased():
    p = parse_policy(_one("http.fetch", {"domains": ["a.com"], "methods": ["get", "Post"]}))
    assert p.overrides[0].constraints.methods == ["GET", "POST"]


def test_securetalon_reference_document_loads_unchanged():
    doc = {
        "version": 1,
        "overrides": [
            {
                "tool": "http.fetch",
                "allow": True,
                "constraints": {
                    "domains": ["https://api.example.com", "http://old.example.com:8080"]
                },
            },
            {
                "tool": "docker.run",
                "allow": True,
                "constraints": {
                    "images": ["ghcr.io/acme/tool@" + DIGEST],
                    "network_allowed": True,
                    "mounts_allowed": ["/srv/data:/data:ro", "/srv/out:/out:rw", "/a:/b"],
                },
            },
            {
                "tool": "docker.run",
                "constraints": {
                    "images": [DIGEST],
                    "network_allowed": False,
                    "mounts_allowed": False,
                },
            },
        ],
    }
    before = repr(doc)
    p = parse_policy(doc)
    assert repr(doc) == before, "parsing must not modify the caller's document"
    http = p.overrides[0].constraints
    assert http.domains == ["api.example.com", "old.example.com"]
    assert http.schemes == ["http", "https"]
    assert http.ports == [8080]
    docker = p.overrides[1].constraints
    assert docker.images == ["ghcr.io/acme/tool@" + DIGEST]
    assert docker.network is True
    assert [(m.source, m.target, m.read_only) for m in docker.mounts] == [
        ("/srv/data", "/data", True),
        ("/srv/out", "/out", False),
        ("/a", "/b", True),
    ]
    closed = p.overrides[2].constraints
    assert closed.network is False and closed.mounts == []


def test_securetalon_ipv6_domain_with_port():
    p = parse_policy(_one("http.fetch", {"domains": ["https://[2001:db8::1]:8443"]}))
    c = p.overrides[0].constraints
    assert c.domains == ["[2001:db8::1]"] and c.ports == [8443]


def test_network_and_network_allowed_together_are_refused():
    message = _error(
        _one("docker.run", {"images": [DIGEST], "network": True, "network_allowed": True})
    )
    assert "network_allowed" in message


def test_bad_mount_string_names_the_problem():
    message = _error(_one("docker.run", {"images": [DIGEST], "mounts_allowed": ["/a:/b:rx"]}))
    assert "source:target" in message


def test_round_trip_through_to_doc():
    doc = _one("file.read", {"roots": ["notes"], "max_bytes": 10, "ttl_seconds": 30})
    p = parse_policy(doc)
    again = parse_policy(p.to_doc())
    assert again == p
    assert isinstance(again, Policy)


def test_for_tool_skips_disabled_overrides():
    p = parse_policy(
        {
            "version": 1,
            "overrides": [
                {"tool": "file.read", "enabled": False, "constraints": {"roots": ["a"]}},
                {"tool": "file.read", "constraints": {"roots": ["b"]}},
                {"tool": "file.write", "constraints": {"roots": ["b"]}},
            ],
        }
    )
    assert [i for i, _ in p.for_tool("file.read")] == [1]
