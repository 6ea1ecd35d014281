"""The console's own settings file: the theme picked in the palette, kept across restarts.

`console.json` in the user config dir (`platformdirs.user_config_dir("talon")`, or
`$TALON_CONFIG_DIR`): a JSON object, `{"theme": "talon-light"}`. Keys this version does not
know are kept when it writes. A file that cannot be read is reported, never fatal: the console
starts with its default theme, and the broken file is moved aside (`console.json.broken`)
before a new one is written, so nothing in it is lost.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

CONFIG_ENV = "TALON_CONFIG_DIR"
CONFIG_NAME = "console.json"
MAX_CONFIG_BYTES = 64 * 1024


def config_path() -> Path:
    """Where the console's settings live: $TALON_CONFIG_DIR, else the user config dir."""
    base = os.environ.get(CONFIG_ENV)
    root = Path(base) if base else Path(platformdirs.user_config_dir("talon", appauthor=False))
    return root / CONFIG_NAME


@dataclass
class ConsoleSettings:
    """What `console.json` says, and the problem if it could not be read."""

    path: Path
    values: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None

    @property
    def theme(self) -> str | None:
        theme = self.values.get("theme")
        return theme if isinstance(theme, str) and theme else None

    @classmethod
    def load(cls, path: Path | None = None) -> ConsoleSettings:
        path = config_path() if path is None else path
        try:
            if path.stat().st_size > MAX_CONFIG_BYTES:
                return cls(path, problem=f"{path}: larger than {MAX_CONFIG_BYTES} bytes")
            doc = json.loads(path.read_bytes())
        except FileNotFoundError:
            return cls(path)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            return cls(path, problem=f"{path}: cannot read ({exc})")
        if not isinstance(doc, dict):
            return cls(path, problem=f"{path}: settings must be a JSON object")
        theme = doc.get("theme")
        if theme is not None and not isinstance(theme, str):
            return cls(path, problem=f"{path}: theme must be a string")
        return cls(path, values=doc)

    def save_theme(self, theme: str) -> str | None:
        """Write `theme` (keeping every other key). Returns a line for the operator when the
        broken file was moved aside first; raises OSError when the file cannot be written."""
        note = None
        if self.problem is not None and self.path.exists():
            aside = self.path.with_name(self.path.name + ".broken")
            os.replace(self.path, aside)
            note = f"the unreadable settings file was kept as {aside}"
            self.problem = None
            self.values = {}
        self.values["theme"] = theme
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.values, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)
        return note
