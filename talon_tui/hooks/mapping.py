"""An agent's own tool call mapped onto Talon tools, and the paths no policy may open.

| agent tool                              | Talon tool  | judged on                              |
|-----------------------------------------|-------------|----------------------------------------|
| Read, Glob, Grep, LS, NotebookRead      | file.read   | the path (Glob: the pattern's fixed    |
|                                         |             | directory), made absolute              |
| Write, Edit, MultiEdit, NotebookEdit,   | file.write  | every target path (apply_patch: every  |
| apply_patch                             |             | `*** Add/Update/Delete File`, `Move to`)|
| WebFetch                                | http.fetch  | the URL (GET)                          |
| Bash                                    | shell.exec  | each simple command (see `bash.py`),   |
|                                         | + file.*    | redirection targets as reads/writes    |
| mcp__<server>__<tool>                   | mcp.call    | `{server, tool, arguments}`            |
| mcp__talon__*                           | (none)      | Talon's own gateway decides and audits |
| anything else                           | agent.native| allowed only if the policy names it    |

Paths are sent absolute; the engine resolves them and judges them relative to the session's
workspace. A Bash line that `bash.py` cannot judge becomes one `shell.exec` of
`/bin/sh -c <line>`: denied unless an override names `/bin/sh` (e.g. with `approval: always`,
so that the operator sees the whole line).

Self-protection (whatever the policy says): no write and no command may touch the agents'
hook and MCP configuration (any `.claude` or `.codex` directory, `.mcp.json`, `.claude.json`)
or Talon's data directory (admin token, keys, state, audit log; the session workspaces under
`<data>/workspaces/` excepted) or the hook's agent key file; no read may open the data
directory or the key file either.
"""

from __future__ import annotations

import os

from .bash import SimpleCommand, Unparseable, parse_command_line

TYPE_CHECKING = False  # typing is not imported at run time: the hook's start-up is its cost
if TYPE_CHECKING:
    from typing import Any


UNPARSEABLE_SHELL = "/bin/sh"
GATEWAY_SERVER = "talon"
READ_TOOLS = frozenset({"Read", "Glob", "Grep", "LS", "NotebookRead"})
CONFIG_DIRS = frozenset({".claude", ".codex"})
CONFIG_FILES = (".mcp.json", ".claude.json")
GLOB_CHARS = frozenset("*?[{")


class Intent:
    __slots__ = ("params", "tool")

    def __init__(self, tool: str, params: dict[str, Any]) -> None:
        self.tool = tool
        self.params = params


class Plan:
    """What to ask the engine for one agent tool call."""

    __slots__ = ("deny", "intents", "passthrough", "unparseable")

    def __init__(
        self,
        intents: list[Intent] | None = None,
        *,
        deny: str | None = None,
        unparseable: str | None = None,
        passthrough: bool = False,
    ) -> None:
        self.intents: list[Intent] = [] if intents is None else intents
        #: refused before the engine is asked (self-protection, malformed input)
        self.deny = deny
        #: why a Bash line could not be judged command by command (it is then one `sh -c`)
        self.unparseable = unparseable
        #: Talon's own MCP gateway governs this call; the hook gives no verdict
        self.passthrough = passthrough


class BadToolInput(ValueError):
    """The agent's tool input lacks a field Talon judges (or has the wrong type)."""


class Protected:
    """The paths self-protection keeps every agent tool away from."""

    def __init__(self, data_dir: str, extra: list[str] | tuple[str, ...] = ()) -> None:
        self.data_dir = _forms(data_dir)
        self.workspaces = _forms(os.path.join(data_dir, "workspaces"))
        self.extra = [f for p in extra for f in _forms(p)]

    def reason(self, path: str, *, write: bool) -> str | None:
        """Why `path` may not be read (`write` False) or written/touched, or None."""
        for form in _forms(path):
            if write:
                parts = form.split("/")
                if CONFIG_DIRS.intersection(parts):
                    return f"{path} is agent hook/MCP configuration (.claude/.codex)"
                if parts[-1].startswith(CONFIG_FILES):
                    return f"{path} is agent MCP configuration ({parts[-1]})"
            if _under(form, self.data_dir) and not _under(form, self.workspaces):
                return f"{path} is inside Talon's data directory"
            if _under(form, self.extra):
                return f"{path} is the hook's agent key"
        return None

    def check_command(self, cmd: SimpleCommand) -> str | None:
        import fnmatch  # imports `re`: only for a command line with patterns (start-up cost)

        for pattern in cmd.patterns:
            for comp in pattern.split("/"):
                # bash's globs match a leading dot only when the pattern writes it (no dotglob)
                if (
                    comp.startswith(".")
                    and GLOB_CHARS.intersection(comp)
                    and any(
                        fnmatch.fnmatchcase(name, comp) for name in (*CONFIG_DIRS, *CONFIG_FILES)
                    )
                ):
                    return f"the pattern {pattern} can match agent configuration"
        for p in [cmd.cwd, *cmd.writes, *cmd.touches]:
            why = self.reason(p, write=True)
            if why:
                return why
        for p in cmd.reads:
            why = self.reason(p, write=False)
            if why:
                return why
        return None

    def mentioned(self, text: str) -> str | None:
        """A protected name anywhere in an unparseable command line."""
        names = [*CONFIG_DIRS, *CONFIG_FILES, "admin.token", *self.data_dir, *self.extra]
        for name in names:
            if name in text:
                return f"the command mentions {name}"
        return None


def _forms(path: str) -> list[str]:
    """The lexical and the resolved form of an absolute path (both are checked)."""
    lexical = os.path.normpath(path)
    real = os.path.realpath(path)
    return [lexical] if real == lexical else [lexical, real]


def _under(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def _str(tool_input: dict[str, Any], key: str, *, required: bool = True) -> str | None:
    value = tool_input.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise BadToolInput(f"tool_input.{key} must be a non-empty string")
    return value


def _abs(path: str, cwd: str) -> str:
    """Absolute, not normalized: the engine resolves `..` after symlinks as the kernel does."""
    return os.path.join(cwd, os.path.expanduser(path))


def glob_base(pattern: str, root: str) -> str:
    """The directory a glob pattern can reach: its components before the first pattern."""
    base = root if not pattern.startswith("/") else "/"
    fixed: list[str] = []
    for comp in pattern.split("/"):
        if GLOB_CHARS.intersection(comp):
            break
        fixed.append(comp)
    else:
        fixed = fixed[:-1]  # the last component names files, not a directory
    return os.path.join(base, *[c for c in fixed if c])


def patch_targets(patch: str, cwd: str) -> list[tuple[str, str]]:
    """(absolute path, added text) for every file an apply_patch patch writes, deletes or
    moves to; raises Unparseable for anything but a well-formed `*** Begin Patch` body."""
    lines = patch.splitlines()
    try:
        start = next(i for i, ln in enumerate(lines) if ln.strip() == "*** Begin Patch")
    except StopIteration:
        raise Unparseable("the patch has no '*** Begin Patch' line") from None
    targets: list[tuple[str, list[str]]] = []
    ended = False
    for ln in lines[start + 1 :]:
        if ln.strip() == "*** End Patch":
            ended = True
            break
        if ln.startswith("*** "):
            head, sep, path = ln[4:].partition(": ")
            if head in ("Add File", "Update File", "Delete File", "Move to") and sep:
                if not path.strip():
                    raise Unparseable(f"an empty path in {ln!r}")
                targets.append((_abs(path.strip(), cwd), []))
                continue
            if ln.strip() == "*** End of File":
                continue
            raise Unparseable(f"an unknown patch header {ln!r}")
        if ln.startswith("+") and targets:
            targets[-1][1].append(ln[1:])
    if not ended:
        raise Unparseable("the patch has no '*** End Patch' line")
    if not targets:
        raise Unparseable("the patch names no file")
    return [(p, "\n".join(added)) for p, added in targets]


def plan_call(
    tool_name: Any,
    tool_input: Any,
    cwd: str,
    protected: Protected,
    *,
    env: dict[str, str] | None = None,
    gateway_server: str = GATEWAY_SERVER,
) -> Plan:
    """The Talon intents for one agent tool call (or a refusal); raises BadToolInput."""
    if not isinstance(tool_name, str) or not tool_name:
        raise BadToolInput("tool_name must be a non-empty string")
    if not isinstance(tool_input, dict):
        raise BadToolInput("tool_input must be an object")
    if not os.path.isabs(cwd):
        raise BadToolInput("cwd must be an absolute path")
    if tool_name.startswith("mcp__"):
        server, sep, tool = tool_name[5:].partition("__")
        if not server or not sep or not tool:
            raise BadToolInput(f"{tool_name!r} is not mcp__<server>__<tool>")
        if server == gateway_server:
            return Plan(passthrough=True)
        return Plan([Intent("mcp.call", {"server": server, "tool": tool, "arguments": tool_input})])
    if tool_name in READ_TOOLS:
        return _read(tool_name, tool_input, cwd, protected)
    if tool_name in ("Write", "Edit", "MultiEdit", "NotebookEdit"):
        return _write(tool_name, tool_input, cwd, protected)
    if tool_name == "apply_patch":
        patch = tool_input.get("command", tool_input.get("input", tool_input.get("patch")))
        if not isinstance(patch, str):
            raise BadToolInput("tool_input.command must hold the patch text")
        try:
            targets = patch_targets(patch, cwd)
        except Unparseable as exc:
            return Plan(deny=f"Talon cannot read this patch: {exc}")
        for path, _ in targets:
            why = protected.reason(path, write=True)
            if why:
                return Plan(deny=f"self-protection: {why}")
        return Plan([Intent("file.write", {"path": p, "content": c}) for p, c in targets])
    if tool_name == "WebFetch":
        return Plan([Intent("http.fetch", {"url": _str(tool_input, "url"), "method": "GET"})])
    if tool_name == "Bash":
        return _bash(_str(tool_input, "command") or "", cwd, protected, env)
    return Plan([Intent("agent.native", {"name": tool_name})])


def _read(name: str, tool_input: dict[str, Any], cwd: str, protected: Protected) -> Plan:
    if name == "Glob":
        pattern = _str(tool_input, "pattern") or ""
        root = _abs(_str(tool_input, "path", required=False) or cwd, cwd)
        path = glob_base(os.path.expanduser(pattern), root)
    elif name == "Grep" or name == "LS":
        path = _abs(_str(tool_input, "path", required=False) or cwd, cwd)
    else:
        key = "notebook_path" if name == "NotebookRead" else "file_path"
        path = _abs(_str(tool_input, key) or "", cwd)
    why = protected.reason(path, write=False)
    if why:
        return Plan(deny=f"self-protection: {why}")
    return Plan([Intent("file.read", {"path": path})])


def _write(name: str, tool_input: dict[str, Any], cwd: str, protected: Protected) -> Plan:
    key = "notebook_path" if name == "NotebookEdit" else "file_path"
    path = _abs(_str(tool_input, key) or "", cwd)
    if name == "Write":
        content = tool_input.get("content")
    elif name == "Edit":
        content = tool_input.get("new_string")
    elif name == "NotebookEdit":
        content = tool_input.get("new_source")
    else:
        edits = tool_input.get("edits")
        if not isinstance(edits, list) or not all(isinstance(e, dict) for e in edits):
            raise BadToolInput("tool_input.edits must be a list of objects")
        content = "\n".join(str(e.get("new_string", "")) for e in edits)
    if not isinstance(content, str):
        content = ""
    why = protected.reason(path, write=True)
    if why:
        return Plan(deny=f"self-protection: {why}")
    return Plan([Intent("file.write", {"path": path, "content": content})])


def _bash(command: str, cwd: str, protected: Protected, env: dict[str, str] | None) -> Plan:
    try:
        commands = parse_command_line(command, cwd, env)
    except Unparseable as exc:
        why = protected.mentioned(command)
        if why:
            return Plan(deny=f"self-protection: {why}", unparseable=str(exc))
        return Plan(
            [Intent("shell.exec", {"argv": [UNPARSEABLE_SHELL, "-c", command], "cwd": cwd})],
            unparseable=str(exc),
        )
    intents: list[Intent] = []
    for cmd in commands:
        why = protected.check_command(cmd)
        if why:
            return Plan(deny=f"self-protection: {why}")
        intents.extend(Intent("file.read", {"path": p}) for p in cmd.reads)
        intents.extend(Intent("file.write", {"path": p, "content": ""}) for p in cmd.writes)
        if cmd.argv:
            intents.append(Intent("shell.exec", {"argv": cmd.argv, "cwd": cmd.cwd}))
    if not intents:
        return Plan(deny="the command runs nothing Talon can judge")
    return Plan(intents)
