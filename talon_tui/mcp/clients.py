"""`talon mcp install|uninstall`: an MCP client's config entry for `talon mcp`.

- claude-desktop: `claude_desktop_config.json` in `~/Library/Application Support/Claude/`
  (macOS), `%APPDATA%\\Claude\\` (Windows), `~/.config/Claude/` (Linux); entry
  `mcpServers.NAME = {command, args}`.
- claude-code: `~/.claude.json` (user scope) or `<project>/.mcp.json` (project scope); entry
  `mcpServers.NAME = {type: "stdio", command, args}`.
- cursor: `~/.cursor/mcp.json`; entry `mcpServers.NAME = {command, args}`.
- codex: `~/.codex/config.toml` (`$CODEX_HOME/config.toml`); table `[mcp_servers.NAME]` with
  `command` and `args`.

The agent key never goes into the client's config (a project's `.mcp.json` is often committed):
it is written to a key file (0600, in a 0700 directory under the user's config dir) that the
entry passes as `--key-file`. Before the first change the original file is copied to
`<file>.talon-backup` (or `<file>.talon-created` records that it did not exist); `uninstall`
takes the entry out and, when nothing else changed since, puts back the original bytes.
Every write is atomic (temp file, fsync, rename) and keeps the file's mode.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import sys
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

CLIENTS: dict[str, str] = {
    "claude-desktop": "json",
    "claude-code": "json",
    "cursor": "json",
    "codex": "toml",
}


class ConfigError(Exception):
    """The client's config cannot be read or written safely: one clear line."""


@dataclass
class Target:
    client: str
    path: Path
    kind: str  # json | toml


@dataclass
class Change:
    summary: str
    diff: list[str] = field(default_factory=list)


def home() -> Path:
    return Path(os.path.expanduser("~"))


def default_path(client: str, *, project: str | None = None) -> Path:
    if client == "claude-desktop":
        if sys.platform == "darwin":
            return home() / "Library/Application Support/Claude/claude_desktop_config.json"
        if sys.platform == "win32":
            return Path(os.environ.get("APPDATA", home())) / "Claude/claude_desktop_config.json"
        return home() / ".config/Claude/claude_desktop_config.json"
    if client == "claude-code":
        return Path(project) / ".mcp.json" if project else home() / ".claude.json"
    if client == "cursor":
        return home() / ".cursor/mcp.json"
    if client == "codex":
        return Path(os.environ.get("CODEX_HOME") or home() / ".codex") / "config.toml"
    raise ConfigError(f"unknown MCP client {client!r} (one of {', '.join(CLIENTS)})")


def target(client: str, *, config: str | None = None, project: str | None = None) -> Target:
    if client not in CLIENTS:
        raise ConfigError(f"unknown MCP client {client!r} (one of {', '.join(CLIENTS)})")
    if project and client != "claude-code":
        raise ConfigError("--project is for claude-code only")
    path = Path(config) if config else default_path(client, project=project)
    return Target(client, path.absolute(), CLIENTS[client])


def key_path(client: str, name: str) -> Path:
    return Path(platformdirs.user_config_dir("talon")) / "mcp-keys" / f"{client}-{name}.key"


def server_entry(
    *, command: str, data_dir: str | None, agent_key: str, key_file: Path | None = None
) -> dict[str, Any]:
    """What `install` writes (with `key_file` filled in by `install`); the key itself goes to
    the key file, never into the entry."""
    args = ["-m", "talon_tui.cli", "mcp", "--key-file", str(key_file or "")]
    if data_dir:
        args += ["--data-dir", str(Path(data_dir).absolute())]
    return {"command": command, "args": args, "_agent_key": agent_key}


_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _check_name(name: str) -> None:
    if not _NAME_RE.match(name):
        raise ConfigError(f"entry name {name!r}: use letters, digits, - and _ (at most 64)")


# --------------------------------------------------------------------------- files


def _read(path: Path) -> str | None:
    if path.is_symlink():
        raise ConfigError(f"{path}: is a symlink; edit its target directly with --config")
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({exc})") from None


def _write(path: Path, text: str, mode: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode is None:
        try:
            mode = path.stat().st_mode & 0o777
        except FileNotFoundError:
            mode = 0o600
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with_suppress_unlink(Path(tmp))
        raise


def with_suppress_unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _backup(path: Path, original: str | None) -> str:
    """Record the original once (before talon's first change); returns what was done."""
    backup = path.with_name(path.name + ".talon-backup")
    created = path.with_name(path.name + ".talon-created")
    if backup.exists() or created.exists():
        return f"backup kept: {backup if backup.exists() else created}"
    if original is None:
        _write(created, "talon mcp install created this file\n", 0o600)
        return f"{path} did not exist (recorded in {created})"
    _write(backup, original, path.stat().st_mode & 0o777)
    return f"backed up {path} to {backup}"


# --------------------------------------------------------------------------- json


def _json_doc(path: Path, text: str | None) -> dict[str, Any]:
    if text is None or not text.strip():
        return {}
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
            "fix it first, nothing was changed"
        ) from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: not a JSON object; nothing was changed")
    servers = doc.get("mcpServers")
    if servers is not None and not isinstance(servers, dict):
        raise ConfigError(f"{path}: mcpServers is not an object; nothing was changed")
    return doc


def _json_text(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


# --------------------------------------------------------------------------- toml (codex)

_TABLE_RE = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")


def _toml_key(name: str) -> str:
    return f"mcp_servers.{name}"


def _toml_doc(path: Path, text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); nothing was changed") from None


def _toml_without(text: str, name: str) -> str:
    """`text` without the `[mcp_servers.NAME]` table and its sub-tables (line based: the
    file is otherwise kept byte for byte, comments included)."""
    key = _toml_key(name)
    out: list[str] = []
    skipping = False
    for raw in text.splitlines(keepends=True):
        m = _TABLE_RE.match(raw)
        if m:
            header = m.group(1).replace('"', "").replace(" ", "")
            skipping = header == key or header.startswith(key + ".")
        if not skipping:
            out.append(raw)
    return "".join(out)


def _toml_string(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def _toml_table(name: str, entry: dict[str, Any]) -> str:
    args = ", ".join(_toml_string(a) for a in entry["args"])
    return f"[{_toml_key(name)}]\ncommand = {_toml_string(entry['command'])}\nargs = [{args}]\n"


# --------------------------------------------------------------------------- install


def _diff(path: Path, before: str | None, after: str | None) -> list[str]:
    return [
        d.rstrip("\n")
        for d in difflib.unified_diff(
            (before or "").splitlines(keepends=True),
            (after or "").splitlines(keepends=True),
            fromfile=f"{path} (before)",
            tofile=f"{path} (after)",
        )
    ]


def _entry_for(t: Target, entry: dict[str, Any]) -> dict[str, Any]:
    clean = {"command": entry["command"], "args": list(entry["args"])}
    if t.client == "claude-code":
        return {"type": "stdio", **clean}
    return clean


def install(t: Target, name: str, entry: dict[str, Any]) -> Change:
    """Write (or leave as it is) the entry NAME in the client's config; the agent key goes
    to the key file. Returns what changed, with a unified diff of the config."""
    _check_name(name)
    key = entry.get("_agent_key")
    if not isinstance(key, str) or not key:
        raise ConfigError("no agent key to install")
    kfile = key_path(t.client, name)
    args = list(entry["args"])
    args[args.index("--key-file") + 1] = str(kfile)
    entry = {"command": entry["command"], "args": args}
    before = _read(t.path)
    if t.kind == "json":
        doc = _json_doc(t.path, before)
        servers = doc.setdefault("mcpServers", {})
        servers[name] = _entry_for(t, entry)
        after = _json_text(doc)
        unchanged = before is not None and _json_doc(t.path, before) == doc
    else:
        current = _toml_doc(t.path, before)
        existing = (current.get("mcp_servers") or {}).get(name)
        unchanged = existing == entry
        if unchanged:
            after = before or ""
        else:
            base = _toml_without(before or "", name)
            sep = (
                ""
                if not base or base.endswith("\n\n")
                else ("\n" if base.endswith("\n") else "\n\n")
            )
            after = base + sep + _toml_table(name, entry)
            parsed = _toml_doc(t.path, after)
            if parsed.get("mcp_servers", {}).get(name) != entry:
                raise ConfigError(f"{t.path}: could not place [{_toml_key(name)}] safely")
    _write_key(kfile, key)
    if unchanged:
        return Change(
            f"{t.path}: entry {name!r} already up to date; renewed its agent key in {kfile} (0600)"
        )
    note = _backup(t.path, before)
    _write(t.path, after)
    return Change(
        f"{t.path}: wrote entry {name!r} for talon mcp ({note}); agent key in {kfile} (0600)",
        _diff(t.path, before, after),
    )


def _write_key(path: Path, key: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    _write(path, key + "\n", 0o600)


def uninstall(t: Target, name: str) -> Change:
    """Take entry NAME out; restore the original bytes when nothing else changed since."""
    _check_name(name)
    before = _read(t.path)
    backup = t.path.with_name(t.path.name + ".talon-backup")
    created = t.path.with_name(t.path.name + ".talon-created")
    kfile = key_path(t.client, name)
    with_suppress_unlink(kfile)
    if before is None:
        with_suppress_unlink(created)
        return Change(f"{t.path}: no such file; nothing to remove")
    if t.kind == "json":
        doc = _json_doc(t.path, before)
        servers = doc.get("mcpServers") or {}
        if name not in servers:
            return Change(f"{t.path}: no entry {name!r}; nothing changed")
        del servers[name]
        after: str | None = _json_text(doc)
        original_text = _read(backup) if backup.exists() else None
        if original_text is not None and _json_doc(backup, original_text) == doc:
            after = original_text
        elif created.exists() and doc in ({}, {"mcpServers": {}}):
            after = None
    else:
        if name not in (_toml_doc(t.path, before).get("mcp_servers") or {}):
            return Change(f"{t.path}: no entry {name!r}; nothing changed")
        after = _toml_without(before, name)
        original_text = _read(backup) if backup.exists() else None
        if original_text is not None and _toml_doc(backup, original_text) == _toml_doc(
            t.path, after
        ):
            after = original_text
        elif (
            created.exists()
            and not _toml_doc(t.path, after).get("mcp_servers")
            and not (after.strip())
        ):
            after = None
    diff = _diff(t.path, before, after)
    if after is None:
        t.path.unlink()
        with_suppress_unlink(created)
        return Change(f"{t.path}: removed (talon mcp install had created it)", diff)
    _write(t.path, after)
    restored = after == original_text if original_text is not None else False
    if restored:
        with_suppress_unlink(backup)
        return Change(f"{t.path}: removed entry {name!r}; restored the original file", diff)
    with_suppress_unlink(created)
    kept = f"; the original is still in {backup}" if backup.exists() else ""
    return Change(f"{t.path}: removed entry {name!r}{kept}", diff)
