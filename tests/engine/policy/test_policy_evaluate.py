"""policy.evaluate: deny by default, hostile intents, approval modes, reasons and fixes."""

from __future__ import annotations

import pytest

from talon_tui.engine.policy.evaluate import evaluate, suggest_fix
from talon_tui.engine.policy.models import Policy, ToolIntent, parse_policy

IMAGE_ID = "sha256:" + "ab" * 32
OTHER_ID = "sha256:" + "cd" * 32
NAMED = "ghcr.io/acme/tool@" + IMAGE_ID


def intent(tool: str, origin: str = "agent", **params) -> ToolIntent:
    return ToolIntent(tool=tool, params=params, origin=origin)


def policy(*overrides: dict) -> Policy:
    return parse_policy({"version": 1, "overrides": list(overrides)})


def files(tool: str = "file.read", roots=("work",), **extra) -> dict:
    return {
        "tool": tool,
        "approval": "never",
        **extra,
        "constraints": {"roots": list(roots), **extra.pop("constraints", {})},
    }


def http(domains=("api.example.com",), approval="never", **cons) -> dict:
    return {
        "tool": "http.fetch",
        "approval": approval,
        "constraints": {"domains": list(domains), **cons},
    }


def docker(images=(IMAGE_ID,), approval="never", **cons) -> dict:
    return {
        "tool": "docker.run",
        "approval": approval,
        "constraints": {"images": list(images), **cons},
    }


def shell(commands=("/bin/ls",), roots=("work",), approval="never") -> dict:
    return {
        "tool": "shell.exec",
        "approval": approval,
        "constraints": {"commands": list(commands), "roots": list(roots)},
    }


# --------------------------------------------------------------------------- deny by default


@pytest.mark.parametrize(
    "i",
    [
        intent("file.read", path="work/a.txt"),
        intent("file.write", path="work/a.txt", content="x"),
        intent("http.fetch", url="https://api.example.com/"),
        intent("docker.run", image=IMAGE_ID),
        intent("shell.exec", argv=["/bin/ls"]),
    ],
)
def test_empty_policy_denies_everything_with_a_fix(i):
    d = evaluate(i, Policy())
    assert d.decision == "DENY"
    assert d.reason.startswith(f"no override allows {i.tool}")
    assert d.constraints is None and d.override_index is None
    assert d.suggested_fix is not None
    fixed = evaluate(i, policy(d.suggested_fix))
    assert fixed.decision in ("ALLOW", "REQUIRE_APPROVAL")


def test_override_for_another_tool_does_not_allow():
    d = evaluate(intent("file.write", path="work/a", content=""), policy(files("file.read")))
    assert d.decision == "DENY" and "no override allows file.write" in d.reason


def test_disabled_override_allows_nothing():
    d = evaluate(intent("file.read", path="work/a"), policy(files(enabled=False)))
    assert d.decision == "DENY"


def test_allow_false_wins_over_earlier_and_later_allows():
    i = intent("file.read", path="work/a")
    for p in (
        policy(files(), {"tool": "file.read", "allow": False}),
        policy({"tool": "file.read", "allow": False}, files()),
    ):
        d = evaluate(i, p)
        assert d.decision == "DENY"
        assert "allow: false" in d.reason
        assert d.suggested_fix is None


def test_disabled_deny_does_not_deny():
    p = policy({"tool": "file.read", "allow": False, "enabled": False}, files())
    assert evaluate(intent("file.read", path="work/a"), p).decision == "ALLOW"


def test_deny_for_other_tool_does_not_matter():
    p = policy({"tool": "file.write", "allow": False}, files())
    assert evaluate(intent("file.read", path="work/a"), p).decision == "ALLOW"


# --------------------------------------------------------------------------- decisions carry data


def test_allow_carries_constraints_ttl_and_index():
    p = policy(http(), files(constraints={"max_bytes": 100, "ttl_seconds": 30}))
    d = evaluate(intent("file.read", path="work/sub/a.txt"), p)
    assert d.decision == "ALLOW"
    assert d.override_index == 1
    assert d.constraints == {"roots": ["work"], "max_bytes": 100, "ttl_seconds": 30}
    assert d.ttl_seconds == 30
    assert "override #1" in d.reason and "work/sub/a.txt" in d.reason
    assert d.suggested_fix is None


def test_first_matching_override_wins():
    p = policy(
        files(roots=["other"]), files(roots=["work"]), files(roots=["work"], approval="always")
    )
    d = evaluate(intent("file.read", path="work/a"), p)
    assert d.override_index == 1 and d.decision == "ALLOW"


@pytest.mark.parametrize(
    ("approval", "origin", "expected"),
    [
        ("never", "agent", "ALLOW"),
        ("never", "skill", "ALLOW"),
        ("always", "agent", "REQUIRE_APPROVAL"),
        ("always", "operator", "REQUIRE_APPROVAL"),
        ("untrusted", "agent", "ALLOW"),
        ("untrusted", "operator", "ALLOW"),
        ("untrusted", "skill", "REQUIRE_APPROVAL"),
    ],
)
def test_approval_modes(approval, origin, expected):
    p = policy(files(approval=approval))
    d = evaluate(intent("file.read", origin=origin, path="work/a"), p)
    assert d.decision == expected
    assert d.override_index == 0 and d.constraints is not None
    if expected == "REQUIRE_APPROVAL":
        assert "approv" in d.reason


def test_deny_reason_lists_every_override_tried():
    p = policy(files(roots=["a"]), files(roots=["b"]))
    d = evaluate(intent("file.read", path="notes/x.txt"), p)
    assert d.decision == "DENY"
    assert "path notes/x.txt is outside roots ['a'] (override #0)" in d.reason
    assert "outside roots ['b'] (override #1)" in d.reason
    assert d.suggested_fix["constraints"]["roots"] == ["notes"]


# --------------------------------------------------------------------------- params


@pytest.mark.parametrize(
    ("i", "needle"),
    [
        (
            intent("file.read", path="work/a", follow_symlinks=True),
            "params.follow_symlinks: unknown",
        ),
        (intent("file.read"), "params.path"),
        (intent("file.read", path=7), "params.path"),
        (intent("file.write", path="work/a", content="x", mode=0o777), "params.mode: unknown"),
        (intent("file.write", path="work/a", content="x", encoding="latin-1"), "params.encoding"),
        (intent("docker.run", image=IMAGE_ID, privileged=True), "params.privileged: unknown"),
        (intent("docker.run", image=IMAGE_ID, network_mode="host"), "params.network_mode: unknown"),
        (intent("docker.run", image=IMAGE_ID, volumes={"/": "/h"}), "params.volumes: unknown"),
        (intent("docker.run", image=IMAGE_ID, command="sh -c x"), "params.command"),
        (intent("shell.exec", argv=[]), "params.argv"),
        (intent("shell.exec", argv="/bin/ls -l"), "params.argv"),
        (intent("shell.exec", argv=["/bin/ls"], shell=True), "params.shell: unknown"),
        (intent("http.fetch", url="https://api.example.com/", proxy="http://x"), "params.proxy"),
    ],
)
def test_invalid_params_are_denied_naming_the_param(i, needle):
    p = policy(files(), files("file.write"), http(), docker(), shell())
    d = evaluate(i, p)
    assert d.decision == "DENY"
    assert needle in d.reason
    assert d.suggested_fix is None
    assert suggest_fix(i) is None


# --------------------------------------------------------------------------- files


@pytest.mark.parametrize(
    "path",
    [
        "work/../secret",
        "../work/a",
        "work/../../etc/passwd",
        "/etc/passwd",
        "/work/a",
        "work/a\x00.txt",
        "work\\..\\secret",
        "work//a",
        "work/a/",
        "",
        ".",
        "work/\u202etxt.exe",
    ],
)
def test_hostile_paths_are_denied_without_fix(path):
    p = policy(files(roots=["work", "."]))
    d = evaluate(intent("file.read", path=path), p)
    assert d.decision == "DENY", path
    assert d.suggested_fix is None
    assert "refused" in d.reason or "workspace itself" in d.reason


def test_sibling_prefix_is_not_under_root():
    p = policy(files(roots=["work"]))
    d = evaluate(intent("file.read", path="work2/a.txt"), p)
    assert d.decision == "DENY"
    assert "outside roots ['work']" in d.reason
    assert d.suggested_fix["constraints"]["roots"] == ["work2"]
    assert evaluate(intent("file.read", path="workspace"), p).decision == "DENY"


def test_dot_components_are_normalized_not_tricks():
    p = policy(files(roots=["work"]))
    assert evaluate(intent("file.read", path="./work/./a.txt"), p).decision == "ALLOW"


def test_root_with_trailing_slash_and_nested_root():
    p = policy(files(roots=["work/sub/"]))
    assert evaluate(intent("file.read", path="work/sub/a"), p).decision == "ALLOW"
    assert evaluate(intent("file.read", path="work/a"), p).decision == "DENY"


def test_absolute_root_matches_only_inside_given_workspace():
    p = policy(files(roots=["/srv/ws/work"]))
    i = intent("file.read", path="work/a")
    assert evaluate(i, p).decision == "DENY"
    assert evaluate(i, p, workspace="/srv/ws").decision == "ALLOW"
    assert evaluate(i, p, workspace="/srv/other").decision == "DENY"


def test_write_size_is_checked_against_max_bytes():
    p = policy(files("file.write", constraints={"max_bytes": 4}))
    ok = evaluate(intent("file.write", path="work/a", content="abcd"), p)
    assert ok.decision == "ALLOW"
    big = evaluate(intent("file.write", path="work/a", content="abcdé"), p)
    assert big.decision == "DENY"
    assert "content is 6 bytes, over max_bytes 4" in big.reason
    b64 = evaluate(intent("file.write", path="work/a", content="AAAAAA==", encoding="base64"), p)
    assert b64.decision == "ALLOW"  # 4 decoded bytes
    bad = evaluate(intent("file.write", path="work/a", content="!!", encoding="base64"), p)
    assert bad.decision == "DENY" and "base64" in bad.reason


def test_write_fix_covers_content_size():
    i = intent("file.write", path="out/big.bin", content="x" * 2_000_000)
    fix = suggest_fix(i)
    assert fix["constraints"]["max_bytes"] == 2_000_000
    assert evaluate(i, policy(fix)).decision == "ALLOW"


def test_read_does_not_allow_write():
    p = policy(files("file.read"))
    assert evaluate(intent("file.write", path="work/a", content=""), p).decision == "DENY"


# --------------------------------------------------------------------------- http


@pytest.mark.parametrize(
    ("url", "domains", "decision"),
    [
        ("https://api.example.com/v1?q=1", ["api.example.com"], "ALLOW"),
        ("https://API.Example.COM./v1", ["api.example.com"], "ALLOW"),
        ("https://notexample.com/", ["example.com"], "DENY"),
        ("https://example.com.evil.net/", ["example.com"], "DENY"),
        ("https://evilapi.example.com/", ["api.example.com"], "DENY"),
        ("https://a.example.com/", ["*.example.com"], "ALLOW"),
        ("https://a.b.example.com/", ["*.example.com"], "ALLOW"),
        ("https://example.com/", ["*.example.com"], "DENY"),
        ("https://notexample.com/", ["*.example.com"], "DENY"),
        ("https://evil.com/", ["*"], "DENY"),
        ("https://api.example.com@evil.com/", ["api.example.com", "evil.com"], "DENY"),
        ("https://evil.com\\@api.example.com/", ["api.example.com"], "DENY"),
        ("ftp://api.example.com/", ["api.example.com"], "DENY"),
        ("file:///etc/passwd", ["api.example.com"], "DENY"),
        ("//api.example.com/", ["api.example.com"], "DENY"),
        ("https://api.example.com:8443/", ["api.example.com"], "DENY"),
        ("https://api.example.com:443/", ["api.example.com"], "ALLOW"),
        ("http://api.example.com/", ["api.example.com"], "DENY"),
    ],
)
def test_url_and_host_matching(url, domains, decision):
    d = evaluate(intent("http.fetch", url=url), policy(http(domains)))
    assert d.decision == decision, (url, d.reason)


def test_non_default_port_needs_ports():
    p = policy(http(ports=[8443]))
    assert (
        evaluate(intent("http.fetch", url="https://api.example.com:8443/"), p).decision == "ALLOW"
    )
    d = evaluate(intent("http.fetch", url="https://api.example.com:8444/"), p)
    assert d.decision == "DENY" and "port 8444" in d.reason


def test_plain_http_needs_scheme():
    p = policy(http(schemes=["http"]))
    assert evaluate(intent("http.fetch", url="http://api.example.com/"), p).decision == "ALLOW"
    assert evaluate(intent("http.fetch", url="https://api.example.com/"), p).decision == "DENY"


@pytest.mark.parametrize(
    ("method", "decision"),
    [("GET", "ALLOW"), ("get", "ALLOW"), ("Get", "ALLOW"), ("POST", "DENY"), ("post", "DENY")],
)
def test_method_case_is_normalized(method, decision):
    d = evaluate(
        intent("http.fetch", url="https://api.example.com/", method=method), policy(http())
    )
    assert d.decision == decision
    if decision == "DENY":
        assert "method POST" in d.reason and d.suggested_fix["constraints"]["methods"] == ["POST"]


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "G ET", "GET\r\nX: y", "", "GET1"])
def test_odd_methods_are_refused(method):
    d = evaluate(
        intent("http.fetch", url="https://api.example.com/", method=method),
        policy(http(methods=["GET", "POST"])),
    )
    assert d.decision == "DENY" and d.suggested_fix is None


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://10.0.0.5/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0/",
    ],
)
def test_private_ip_literals_need_allow_private_addresses(url):
    from talon_tui.engine.policy.checks import parse_fetch_url

    host = parse_fetch_url(url).host
    closed = policy(http([host], schemes=["http"]))
    d = evaluate(intent("http.fetch", url=url), closed)
    assert d.decision == "DENY" and "allow_private_addresses" in d.reason
    opened = policy(http([host], schemes=["http"], allow_private_addresses=True))
    assert evaluate(intent("http.fetch", url=url), opened).decision == "ALLOW"
    none = evaluate(intent("http.fetch", url=url), Policy())
    assert none.suggested_fix is None and "no fix is suggested" in none.reason


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://[::ffff:169.254.169.254]/",
    ],
)
def test_metadata_addresses_denied_even_with_allow_private_addresses(url):
    """Cloud metadata endpoints hand out credentials: no policy switch opens them."""
    from talon_tui.engine.policy.checks import parse_fetch_url

    host = parse_fetch_url(url).host
    opened = policy(http([host], schemes=["http"], allow_private_addresses=True))
    d = evaluate(intent("http.fetch", url=url), opened)
    assert d.decision == "DENY" and "metadata" in d.reason


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433/",
        "http://0x7f000001/",
        "http://0177.0.0.1/",
        "http://127.1/",
        "http://0x7f.1/",
        "http://[::1%25eth0]/",
    ],
)
def test_obfuscated_ip_forms_are_refused_outright(url):
    p = policy(http(["127.0.0.1", "2130706433"], schemes=["http"], allow_private_addresses=True))
    d = evaluate(intent("http.fetch", url=url), p)
    assert d.decision == "DENY" and d.suggested_fix is None


def test_public_ip_literal_fix_is_offered():
    i = intent("http.fetch", url="https://93.184.216.34/")
    fix = suggest_fix(i)
    assert fix["constraints"]["domains"] == ["93.184.216.34"]
    assert fix["constraints"]["allow_private_addresses"] is False
    assert evaluate(i, policy(fix)).decision == "ALLOW"


def test_idna_hosts_compare_on_punycode():
    p = policy(http(["xn--bcher-kva.example"]))
    assert evaluate(intent("http.fetch", url="https://bücher.example/"), p).decision == "ALLOW"
    fix = suggest_fix(intent("http.fetch", url="https://bücher.example/"))
    assert fix["constraints"]["domains"] == ["xn--bcher-kva.example"]


# --------------------------------------------------------------------------- docker


def test_pinned_image_in_list_is_allowed():
    assert evaluate(intent("docker.run", image=IMAGE_ID), policy(docker())).decision == "ALLOW"
    assert evaluate(intent("docker.run", image=NAMED), policy(docker([NAMED]))).decision == "ALLOW"


@pytest.mark.parametrize("image", ["busybox:latest", "busybox", "ghcr.io/acme/tool:1.0"])
def test_tag_is_denied_even_when_listed(image):
    d = evaluate(intent("docker.run", image=image), policy(docker([image, IMAGE_ID])))
    assert d.decision == "DENY"
    assert "pinned" in d.reason and "sha256" in d.reason
    assert d.suggested_fix is None


def test_digest_forms_do_not_cross_match():
    # an image id and a repository digest are different hashes: no cross matching
    assert (
        evaluate(intent("docker.run", image=NAMED), policy(docker([IMAGE_ID]))).decision == "DENY"
    )
    assert (
        evaluate(intent("docker.run", image=IMAGE_ID), policy(docker([NAMED]))).decision == "DENY"
    )
    d = evaluate(intent("docker.run", image=OTHER_ID), policy(docker()))
    assert d.decision == "DENY" and "not in images" in d.reason
    upper = "sha256:" + "AB" * 32
    assert evaluate(intent("docker.run", image=upper), policy(docker())).decision == "DENY"


def test_docker_fix_has_no_network_or_mounts():
    fix = suggest_fix(intent("docker.run", image=IMAGE_ID, command=["run"], env={"A": "1"}))
    c = fix["constraints"]
    assert c["images"] == [IMAGE_ID] and c["network"] is False and c["mounts"] == []


def test_untrusted_skill_output_waits_for_operator():
    p = policy(docker(approval="untrusted"))
    d = evaluate(intent("docker.run", origin="skill", image=IMAGE_ID), p)
    assert d.decision == "REQUIRE_APPROVAL"


# --------------------------------------------------------------------------- shell


@pytest.mark.parametrize(
    "argv0",
    [
        "/bin/sh/../sh",
        "/bin/./sh",
        "//bin/sh",
        "/bin//sh",
        "/bin/sh/",
        "sh",
        "bin/sh",
        "./sh",
        "/bin/sh\x00",
        " /bin/sh",
    ],
)
def test_shell_argv0_tricks_are_denied(argv0):
    p = policy(shell(commands=["/bin/sh"], roots=["."]))
    d = evaluate(intent("shell.exec", argv=[argv0, "-c", "id"]), p)
    assert d.decision == "DENY", argv0
    assert d.suggested_fix is None


def test_shell_exact_program_and_cwd():
    p = policy(shell(commands=["/bin/ls"], roots=["work"]))
    assert evaluate(intent("shell.exec", argv=["/bin/ls"], cwd="work/sub"), p).decision == "ALLOW"
    d = evaluate(intent("shell.exec", argv=["/bin/ls"], cwd="."), p)
    assert d.decision == "DENY" and "cwd . is outside roots" in d.reason
    d = evaluate(intent("shell.exec", argv=["/bin/cat"], cwd="work"), p)
    assert d.decision == "DENY" and "program /bin/cat is not in commands" in d.reason
    assert evaluate(intent("shell.exec", argv=["/bin/ls"], cwd="../x"), p).suggested_fix is None


def test_shell_argument_with_nul_is_refused():
    p = policy(shell(roots=["."]))
    d = evaluate(intent("shell.exec", argv=["/bin/ls", "a\x00b"]), p)
    assert d.decision == "DENY" and "NUL" in d.reason


def test_shell_fix_always_needs_approval():
    fix = suggest_fix(intent("shell.exec", argv=["/usr/bin/wc", "-l", "x"], cwd="work"))
    assert fix["approval"] == "always"
    assert fix["constraints"]["commands"] == ["/usr/bin/wc"]
    assert fix["constraints"]["roots"] == ["work"]
