"""Allowlist fields whose every entry is checked (docker images, shell commands, MCP servers and
tools) share one validator (`models._allowlist`): each refuses a bad entry with
`field: 'entry' problem`, an empty list and a blank entry, and keeps the good ones trimmed."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from talon_tui.engine.policy.models import DockerConstraints, McpConstraints, ShellConstraints

D, S, M = DockerConstraints, ShellConstraints, McpConstraints
BAD = [
    (D, {"images": ["alpine", "evil image"]}, "images: 'evil image' is not an image reference"),
    (D, {"images": ["alp\x00ine"]}, "images: 'alp\\x00ine' is not an image reference"),
    (D, {"images": ["a\tb"]}, "images: 'a\\tb' is not an image reference"),
    (S, {"commands": ["/bin/ls", "ls"]}, "commands: 'ls' must be an absolute program path"),
    (M, {"servers": ["Notes"], "tools": ["*"]}, "servers: 'Notes' is not a server name"),
    (M, {"servers": ["notes"], "tools": ["a b"]}, "tools: 'a b' is not an MCP tool name"),
    (M, {"servers": ["notes"], "tools": ["**"]}, "tools: '**' is not an MCP tool name"),
    (D, {"images": []}, "images must not be empty"),
    (S, {"commands": ["/bin/ls", "  "]}, "commands must not contain blank entries"),
    (M, {"servers": ["notes"], "tools": []}, "tools must not be empty"),
]


@pytest.mark.parametrize(("model", "fields", "message"), BAD)
def test_a_bad_entry_is_refused_by_name(model, fields, message):
    with pytest.raises(ValidationError) as exc:
        model.model_validate(fields)
    assert message in str(exc.value)


def test_good_entries_pass_trimmed():
    assert DockerConstraints.model_validate({"images": [" alpine:3 "]}).images == ["alpine:3"]
    assert ShellConstraints.model_validate({"commands": ["/bin/ls "]}).commands == ["/bin/ls"]
    mcp = McpConstraints.model_validate({"servers": ["*", "notes-1"], "tools": ["*", "a.b-c_d"]})
    assert (mcp.servers, mcp.tools) == (["*", "notes-1"], ["*", "a.b-c_d"])
