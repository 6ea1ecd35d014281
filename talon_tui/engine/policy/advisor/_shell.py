"""Advisor rules for shell.exec: its programs and approval. `advisor.lint` calls them."""

from __future__ import annotations

import posixpath

from ..models import Override, ShellConstraints
from ._base import Advice, make_advice, tighten
from ._file import advise_roots

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


def advise_shell(
    index: int, o: Override, c: ShellConstraints, workspace: str | None
) -> list[Advice]:
    out = [
        make_advice(
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
                make_advice(
                    "danger",
                    index,
                    "constraints.commands",
                    f"{command} runs whatever code its arguments contain",
                    "Allowing a shell, interpreter or launcher with agent-chosen arguments "
                    "allows every program on the machine.",
                    "List the specific tool the task needs (e.g. /usr/bin/wc), not a shell "
                    "or interpreter.",
                    tighten(o, commands=others) if others else None,
                )
            )
        if posixpath.normpath(command) != command:
            out.append(
                make_advice(
                    "warn",
                    index,
                    "constraints.commands",
                    f"{command!r} is not a normalized path; argv[0] must match it exactly",
                    "Talon compares program paths exactly, so this entry only matches the "
                    "same odd spelling, which hides what actually runs.",
                    f"Write it as {posixpath.normpath(command)!r}.",
                )
            )
    out.extend(advise_roots(index, o, c.roots, workspace, writes=True))
    if o.approval != "always":
        out.append(
            make_advice(
                "danger" if o.approval == "never" else "warn",
                index,
                "approval",
                f"host programs run with approval {o.approval!r}",
                "Without an operator approving each run, the agent chooses arguments for "
                "a host program unattended.",
                "Set approval to 'always' for shell.exec.",
                tighten(o, approval="always"),
            )
        )
    return out
