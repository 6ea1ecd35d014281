"""`talon hook install|uninstall claude-code|codex`: the agent's hook entries, written and removed.

Where each agent reads its hooks (checked against their docs, December 2026):
- Claude Code: `~/.claude/settings.json` (user) or `<project>/.claude/settings.json`
  (project), `{"hooks": {"PreToolUse": [{"matcher": "*", "hooks": [{"type": "command",
  "command": …, "timeout": seconds}]}], …}}`.
- Codex: `~/.codex/hooks.json` (user) or `<project>/.codex/hooks.json` (project), the same
  shape; its matcher is a regular expression, so Talon's entries have none (every tool).

Install backs the file up first (`<file>.talon-backup`, or `<file>.talon-created` when there
was none), is idempotent (Talon's entries are recognised by their command and replaced, never
duplicated) and returns the lines describing what changed. Uninstall removes exactly Talon's
entries: if nothing else changed since, the original bytes come back from the backup.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import sysconfig
from pathlib import Path
from typing import Any

EVENTS = ("PreToolUse", "PermissionRequest", "PostToolUse")
#: the hook's launcher, run by path: `python -I -S` puts neither `site` nor PYTHONPATH to work
SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "script.py")
BACKUP_SUFFIX = ".talon-backup"
CREATED_SUFFIX = ".talon-created"


class InstallError(Exception):
    """The settings file cannot be read or written as it is; the message says why."""


def settings_path(agent: str, scope: str, home: Path, project: Path) -> Path:
    base = home if scope == "user" else project
    if agent == "claude-code":
        return base / ".claude" / "settings.json"
    return base / ".codex" / "hooks.json"


def hook_command(agent: str, key_file: Path, data_dir: Path, wait_seconds: int) -> str:
    """The command line the agent runs per tool call: this Python, isolated (`-I`) and without
    `site` (`-S`), running `script.py` beside this file by its absolute path with this
    environment's site-packages as `--path` (see there: it saves most of Python's start-up
    and fails closed)."""
    return shlex.join(
        [
            sys.executable,
            "-I",
            "-S",
            SCRIPT,
            *[w for path in package_dirs() for w in ("--path", path)],
            "hook",
            agent,
            "--key-file",
            str(key_file),
            "--data-dir",
            str(data_dir),
            "--wait",
            str(wait_seconds),
        ]
    )


def package_dirs() -> list[str]:
    """This environment's site-packages (purelib, platlib), which `python -S` leaves off
    `sys.path`; the directory holding `talon_tui` is added by the script itself."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(SCRIPT)))
    paths = sysconfig.get_paths()
    found = [p for p in (paths.get("purelib"), paths.get("platlib")) if p and os.path.isdir(p)]
    return [p for p in dict.fromkeys(found) if os.path.abspath(p) != root]


def _is_talon_command(command: str) -> bool:
    try:
        words = shlex.split(command)
    except ValueError:
        return False
    for i, word in enumerate(words[:-1]):
        if word == "hook" and words[i + 1] in ("claude-code", "codex") and "--key-file" in words:
            return True
    return False


def _is_talon(entry: Any) -> bool:
    hooks = entry.get("hooks") if isinstance(entry, dict) else None
    return isinstance(hooks, list) and any(
        isinstance(h, dict) and _is_talon_command(str(h.get("command", ""))) for h in hooks
    )


def _load(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError) as exc:
        raise InstallError(f"{path}: cannot read it as JSON ({exc}); nothing changed") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("hooks", {}), dict):
        raise InstallError(f"{path}: not a settings object with a 'hooks' object; nothing changed")
    return doc


def _write(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.talon-tmp{os.getpid()}")
    tmp.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _strip(doc: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """`doc` without Talon's entries (empty lists and an empty `hooks` dropped)."""
    hooks = doc.get("hooks")
    if not isinstance(hooks, dict):
        return doc, 0
    removed = 0
    new_hooks: dict[str, Any] = {}
    for event, entries in hooks.items():
        if isinstance(entries, list):
            kept = [e for e in entries if not _is_talon(e)]
            removed += len(entries) - len(kept)
            if kept:
                new_hooks[event] = kept
        else:
            new_hooks[event] = entries
    out = {k: v for k, v in doc.items() if k != "hooks"}
    if new_hooks:
        out["hooks"] = new_hooks
    return out, removed


def install(path: Path, agent: str, command: str, timeout_seconds: int) -> list[str]:
    """Write Talon's hook entries into `path`; returns what changed (one line each)."""
    doc = _load(path)
    base, removed = _strip(doc)
    hooks = dict(base.get("hooks", {}))
    entry: dict[str, Any] = {
        "hooks": [{"type": "command", "command": command, "timeout": timeout_seconds}]
    }
    if agent == "claude-code":
        entry = {"matcher": "*", **entry}
    for event in EVENTS:
        hooks[event] = [*hooks.get(event, []), entry]
    new = {**base, "hooks": hooks}
    if new == doc:
        return [f"{path}: Talon's hooks are already installed; nothing changed"]
    lines: list[str] = []
    backup, created = Path(str(path) + BACKUP_SUFFIX), Path(str(path) + CREATED_SUFFIX)
    if not backup.exists() and not created.exists():
        if path.exists():
            backup.write_bytes(path.read_bytes())
            os.chmod(backup, 0o600)
            lines.append(f"backed up {path} to {backup}")
        else:
            created.parent.mkdir(parents=True, exist_ok=True)
            created.write_text("created by talon hook install\n", encoding="utf-8")
    _write(path, new)
    verb = "replaced" if removed else "added"
    for event in EVENTS:
        lines.append(
            f"{path}: {verb} hooks.{event} entry -> {command} (timeout {timeout_seconds} s)"
        )
    return lines


def uninstall(path: Path) -> list[str]:
    """Remove Talon's entries from `path` (restoring the backup when nothing else changed)."""
    backup, created = Path(str(path) + BACKUP_SUFFIX), Path(str(path) + CREATED_SUFFIX)
    doc = _load(path)
    stripped, removed = _strip(doc)
    lines: list[str] = []
    if backup.exists():
        try:
            original = json.loads(backup.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError):
            original = None
        if original == stripped:
            path.write_bytes(backup.read_bytes())
            lines.append(f"restored {path} from {backup}")
        else:
            _write(path, stripped)
            lines.append(f"{path}: removed {removed} Talon hook entries (other changes kept)")
        backup.unlink()
    elif created.exists():
        if stripped:
            _write(path, stripped)
            lines.append(f"{path}: removed {removed} Talon hook entries (other changes kept)")
        else:
            path.unlink(missing_ok=True)
            lines.append(f"removed {path} (Talon had created it)")
        created.unlink()
    elif removed:
        _write(path, stripped)
        lines.append(f"{path}: removed {removed} Talon hook entries")
    else:
        lines.append(f"{path}: no Talon hooks installed; nothing changed")
    return lines


def disabled_warnings(agent: str, path: Path, home: Path) -> list[str]:
    """Settings that would switch the agent's hooks off (Talon's included): the agent would
    then run every tool unjudged, so install says so."""
    found: list[str] = []
    if agent == "claude-code":
        for p in (path, home / ".claude" / "settings.json"):
            try:
                doc = json.loads(p.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(doc, dict) and doc.get("disableAllHooks") is True:
                found.append(f"warning: {p} sets disableAllHooks: Claude Code runs no hook")
    else:
        config = home / ".codex" / "config.toml"
        try:
            text = config.read_text(encoding="utf-8")
        except OSError:
            text = ""
        for line in text.splitlines():
            key = line.split("#", 1)[0].replace(" ", "")
            if key in ("hooks=false", "codex_hooks=false"):
                found.append(f"warning: {config} sets {key}: Codex runs no hook")
    return found
