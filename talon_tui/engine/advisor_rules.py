"""Advisor rules for the tools that touch the host: file roots (file.read, file.write and
shell.exec) and shell.exec's programs and approval. `advisor.lint` calls them.
"""

from __future__ import annotations

import os
import posixpath

from .advisor_base import Advice, _advice, _inside, _tighten
from .models import Override, ShellConstraints

# Programs that run whatever code their arguments contain: allowing one allows everything.
INTERPRETERS = frozenset(
    {
        "sh",
        "bash",
        "dash",
        "zsh",
        "ksh",
        "fish",
        "csh",
        "tcsh",
        "busybox",
        "env",
        "sudo",
        "doas",
        "su",
        "xargs",
        "find",
        "python",
        "python3",
        "perl",
        "ruby",
        "node",
        "php",
        "lua",
        "awk",
        "gawk",
        "docker",
        "ssh",
        "nohup",
        "timeout",
        "nice",
        "git",
        "make",
    }
)


def _roots(
    index: int, o: Override, roots: list[str], workspace: str | None, *, writes: bool
) -> list[Advice]:
    out: list[Advice] = []
    field = "constraints.roots"
    verb = "change" if writes else "read"
    for root in roots:
        norm = posixpath.normpath(root) if root else "."
        parts = [p for p in norm.split("/") if p]
        narrower = [r for r in roots if r != root]
        if root.startswith("~"):
            out.append(
                _advice(
                    "warn",
                    index,
                    field,
                    f"root {root!r} looks like a home directory",
                    "Talon never expands '~': this root is a directory literally named '~' "
                    "inside the workspace. Whoever wrote it probably meant the home "
                    "directory, which holds SSH keys, tokens and browser profiles.",
                    'Name one project subdirectory of the workspace, e.g. roots: ["work"].',
                )
            )
        elif norm == "/" or (root.startswith("/") and not parts):
            out.append(
                _advice(
                    "danger",
                    index,
                    field,
                    "root '/' asks for the whole machine",
                    f"It asks for every file your user can open: keys, configuration, other "
                    f"projects. Talon honours absolute roots only inside the session "
                    f"workspace, so today it allows nothing more, but a policy that reads "
                    f"as 'everything' gets copied and trusted; the agent must never {verb} "
                    "outside its workspace.",
                    'Name the one workspace subdirectory the task needs, e.g. roots: ["work"].',
                    _tighten(o, roots=narrower) if narrower else None,
                )
            )
        elif root.startswith("/"):
            if workspace is None:
                out.append(
                    _advice(
                        "warn",
                        index,
                        field,
                        f"root {root!r} is absolute; whether it is inside the workspace "
                        "cannot be told without one",
                        "Paths are relative to the session workspace; an absolute root "
                        "either repeats the workspace path or points somewhere else.",
                        "Write roots relative to the workspace (run lint with --workspace "
                        "to check absolute ones).",
                    )
                )
            elif _inside(norm, workspace):
                rel = posixpath.relpath(norm, posixpath.normpath(workspace))
                out.append(
                    _advice(
                        "info",
                        index,
                        field,
                        f"root {root!r} is absolute; it is {rel!r} inside the workspace",
                        "Relative roots keep the policy valid when the workspace moves and "
                        "make its reach obvious to a reader.",
                        f"Write it as {rel!r}.",
                        _tighten(o, roots=[rel if r == root else r for r in roots]),
                    )
                )
            else:
                out.append(
                    _advice(
                        "danger",
                        index,
                        field,
                        f"root {root!r} is outside the workspace {workspace!r}",
                        f"It asks to {verb} files that belong to nothing the session was "
                        "given: other projects, system files, other users' data. Talon "
                        "honours absolute roots only inside the workspace, so it matches "
                        "nothing today; remove it rather than rely on that.",
                        "Copy what the task needs into the workspace and name that "
                        "subdirectory instead.",
                        _tighten(o, roots=narrower) if narrower else None,
                    )
                )
        elif parts and parts[0] == "..":
            out.append(
                _advice(
                    "danger",
                    index,
                    field,
                    f"root {root!r} climbs out of the workspace",
                    f"'..' asks to {verb} the workspace's parent and everything beside it. "
                    "Talon refuses '..' in roots, so it matches nothing; remove it.",
                    "Name a subdirectory inside the workspace.",
                    _tighten(o, roots=narrower) if narrower else None,
                )
            )
        elif norm == ".":
            out.append(
                _advice(
                    "warn",
                    index,
                    field,
                    f"root {root!r} is the whole workspace",
                    f"Everything in the workspace becomes reachable, including files such "
                    f"as .git, .env or credentials the agent does not need to {verb}.",
                    'Name the subdirectory the task uses, e.g. roots: ["notes"].',
                    _tighten(o, roots=narrower) if narrower else None,
                )
            )
        elif workspace is not None and not os.path.isdir(os.path.join(workspace, norm)):
            out.append(
                _advice(
                    "info",
                    index,
                    field,
                    f"root {root!r} does not exist in the workspace",
                    "A root that does not exist allows nothing today, but whoever creates "
                    "it later (including the agent, if it may write nearby) widens the policy.",
                    "Create the directory now or remove the root.",
                )
            )
    return out


def _shell(index: int, o: Override, c: ShellConstraints, workspace: str | None) -> list[Advice]:
    out = [
        _advice(
            "danger",
            index,
            "tool",
            f"shell.exec runs host programs: {', '.join(c.commands)}",
            "A program runs with your user's rights outside any container: it can read, "
            "change and send anything you can, and its arguments come from the agent.",
            "Prefer file.read/file.write/http.fetch, or package the task as a docker.run "
            "skill with no network; if a program is unavoidable, list one and keep "
            "approval 'always'.",
        )
    ]
    for command in c.commands:
        name = posixpath.basename(command)
        base = name.rstrip("0123456789.")
        if name in INTERPRETERS or base in INTERPRETERS:
            others = [x for x in c.commands if x != command]
            out.append(
                _advice(
                    "danger",
                    index,
                    "constraints.commands",
                    f"{command} runs whatever code its arguments contain",
                    "Allowing a shell, interpreter or launcher with agent-chosen arguments "
                    "allows every program on the machine.",
                    "List the specific tool the task needs (e.g. /usr/bin/wc), not a shell "
                    "or interpreter.",
                    _tighten(o, commands=others) if others else None,
                )
            )
        if posixpath.normpath(command) != command:
            out.append(
                _advice(
                    "warn",
                    index,
                    "constraints.commands",
                    f"{command!r} is not a normalized path; argv[0] must match it exactly",
                    "Talon compares program paths exactly, so this entry only matches the "
                    "same odd spelling, which hides what actually runs.",
                    f"Write it as {posixpath.normpath(command)!r}.",
                )
            )
    out.extend(_roots(index, o, c.roots, workspace, writes=True))
    if o.approval != "always":
        out.append(
            _advice(
                "danger" if o.approval == "never" else "warn",
                index,
                "approval",
                f"host programs run with approval {o.approval!r}",
                "Without an operator approving each run, the agent chooses arguments for "
                "a host program unattended.",
                "Set approval to 'always' for shell.exec.",
                _tighten(o, approval="always"),
            )
        )
    return out
