"""`EngineAPI` (engine/api.py) is written out three times: the protocol, the in-process
`Engine` and `AdminClient` over the pipe; the console works with either. Python makes each
implementation restate the signature, so this pins that the copies agree: every protocol
member exists on both, with the same parameters (names, kinds, defaults, annotations) in the
same order; an implementation may only add keyword-only parameters that have defaults."""

from __future__ import annotations

import inspect

import pytest

from talon_tui.client import AdminClient
from talon_tui.engine.api import EngineAPI
from talon_tui.engine.engine import Engine

MEMBERS = sorted(
    name
    for name, value in vars(EngineAPI).items()
    if not name.startswith("_") and (inspect.isfunction(value) or isinstance(value, property))
)


def test_the_protocol_is_what_the_console_uses():
    assert {"session_timeline", "query_audit", "list_runs", "subscribe"} <= set(MEMBERS)


@pytest.mark.parametrize("impl", [Engine, AdminClient], ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", MEMBERS)
def test_implementations_restate_the_protocol_exactly(impl, name):
    declared, written = inspect.getattr_static(EngineAPI, name), inspect.getattr_static(impl, name)
    if isinstance(declared, property):
        assert isinstance(written, property), f"{impl.__name__}.{name} must be a property"
        return
    assert inspect.iscoroutinefunction(declared) == inspect.iscoroutinefunction(written)
    want = list(inspect.signature(declared).parameters.values())
    got = list(inspect.signature(written).parameters.values())
    assert got[: len(want)] == want, f"{impl.__name__}.{name}{inspect.signature(written)}"
    for extra in got[len(want) :]:
        assert extra.kind is inspect.Parameter.KEYWORD_ONLY, extra
        assert extra.default is not inspect.Parameter.empty, extra
