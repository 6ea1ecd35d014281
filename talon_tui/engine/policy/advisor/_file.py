"""Advisor rules for the file roots of file.read, file.write and shell.exec. `advisor.lint`
calls them.
"""

from __future__ import annotations

import os
import posixpath

from ..models import Override
from ._base import Advice, inside, make_advice, tighten


def advise_roots(
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
                make_advice(
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
                make_advice(
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
                    tighten(o, roots=narrower) if narrower else None,
                )
            )
        elif root.startswith("/"):
            if workspace is None:
                out.append(
                    make_advice(
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
            elif inside(norm, workspace):
                rel = posixpath.relpath(norm, posixpath.normpath(workspace))
                out.append(
                    make_advice(
                        "info",
                        index,
                        field,
                        f"root {root!r} is absolute; it is {rel!r} inside the workspace",
                        "Relative roots keep the policy valid when the workspace moves and "
                        "make its reach obvious to a reader.",
                        f"Write it as {rel!r}.",
                        tighten(o, roots=[rel if r == root else r for r in roots]),
                    )
                )
            else:
                out.append(
                    make_advice(
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
                        tighten(o, roots=narrower) if narrower else None,
                    )
                )
        elif parts and parts[0] == "..":
            out.append(
                make_advice(
                    "danger",
                    index,
                    field,
                    f"root {root!r} climbs out of the workspace",
                    f"'..' asks to {verb} the workspace's parent and everything beside it. "
                    "Talon refuses '..' in roots, so it matches nothing; remove it.",
                    "Name a subdirectory inside the workspace.",
                    tighten(o, roots=narrower) if narrower else None,
                )
            )
        elif norm == ".":
            out.append(
                make_advice(
                    "warn",
                    index,
                    field,
                    f"root {root!r} is the whole workspace",
                    f"Everything in the workspace becomes reachable, including files such "
                    f"as .git, .env or credentials the agent does not need to {verb}.",
                    'Name the subdirectory the task uses, e.g. roots: ["notes"].',
                    tighten(o, roots=narrower) if narrower else None,
                )
            )
        elif workspace is not None and not os.path.isdir(os.path.join(workspace, norm)):
            out.append(
                make_advice(
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
