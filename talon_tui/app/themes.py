"""Theme files (`themes/*.json`, `themes/*.toml`) validated into a model and made into
Textual themes. A broken file is reported, never fatal: the app falls back and tells the user."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from textual.color import Color, ColorParseError
from textual.theme import Theme, ThemeProvider

THEMES_DIR = Path(__file__).resolve().parents[2] / "themes"
DEFAULT_THEME = "talon-dark"
TALON_THEMES = ("talon-dark", "talon-light", "talon-high-contrast")  # listed first, marked
FALLBACK_THEME = "textual-dark"  # built into Textual, used when talon-dark itself is broken


def _color(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        Color.parse(value)
    except ColorParseError as exc:
        raise ValueError(f"{value!r} is not a colour") from exc
    return value


class ThemeFile(BaseModel):
    """What a theme file may say; unknown keys are refused so typos are caught."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$")
    primary: str
    secondary: str | None = None
    accent: str | None = None
    warning: str | None = None
    error: str | None = None
    success: str | None = None
    foreground: str | None = None
    background: str | None = None
    surface: str | None = None
    panel: str | None = None
    boost: str | None = None
    dark: bool = True
    luminosity_spread: float = Field(0.15, ge=0, le=1)
    text_alpha: float = Field(0.95, ge=0, le=1)
    variables: dict[str, str] = Field(default_factory=dict)

    @field_validator(
        "primary",
        "secondary",
        "accent",
        "warning",
        "error",
        "success",
        "foreground",
        "background",
        "surface",
        "panel",
        "boost",
    )
    @classmethod
    def _colors(cls, v: str | None) -> str | None:
        return _color(v)

    def to_theme(self) -> Theme:
        return Theme(**self.model_dump())


@dataclass
class ThemeLoad:
    themes: list[Theme] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def load_theme_file(path: Path) -> Theme:
    """Read and validate one theme file; raises ValueError naming the file and the problem."""
    try:
        raw = path.read_bytes()
        if path.suffix == ".toml":
            doc = tomllib.loads(raw.decode("utf-8"))
        else:
            doc = json.loads(raw)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path.name}: cannot read ({exc})") from exc
    if not isinstance(doc, dict):
        raise ValueError(f"{path.name}: a theme must be an object/table")
    try:
        return ThemeFile.model_validate(doc).to_theme()
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "(file)"
        msg = first["msg"].removeprefix("Value error, ")
        raise ValueError(f"{path.name}: {loc}: {msg}") from exc


def load_themes(directory: Path | None = None) -> ThemeLoad:
    """Every valid theme in `directory` (default THEMES_DIR), plus one line per broken file."""
    directory = THEMES_DIR if directory is None else directory
    result = ThemeLoad()
    if not directory.is_dir():
        result.problems.append(f"theme directory {directory} not found")
        return result
    for path in sorted([*directory.glob("*.json"), *directory.glob("*.toml")]):
        try:
            result.themes.append(load_theme_file(path))
        except ValueError as exc:
            result.problems.append(str(exc))
    return result


class TalonThemeProvider(ThemeProvider):
    """The palette's theme list: Talon's three themes first, marked "★ … (Talon)", then the
    themes built into Textual."""

    @property
    def commands(self) -> list[tuple[str, Callable[[], None]]]:
        themes = self.app.available_themes

        def use(name: str) -> None:
            self.app.theme = name

        ours = [
            (f"★ {name} (Talon)", partial(use, name)) for name in TALON_THEMES if name in themes
        ]
        rest = [(name, partial(use, name)) for name in sorted(themes) if name not in TALON_THEMES]
        return ours + rest
