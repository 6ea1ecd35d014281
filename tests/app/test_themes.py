"""Themes: the three shipped files load and register; a broken file (bad JSON, a missing field,
a bad colour) is skipped with a notification, the app falls back and still starts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from support.app import settle, talon_app

from talon_tui.app import themes
from talon_tui.app.themes import (
    DEFAULT_THEME,
    FALLBACK_THEME,
    THEMES_DIR,
    load_theme_file,
    load_themes,
)

SHIPPED = {"talon-dark", "talon-light", "talon-high-contrast"}


def theme_dir(tmp_path: Path, broken: dict[str, str], keep: set[str] = SHIPPED) -> Path:
    """A themes directory with the shipped files named in `keep` plus `broken` files."""
    directory = tmp_path / "themes"
    directory.mkdir()
    for path in THEMES_DIR.iterdir():
        if path.stem in keep:
            shutil.copy(path, directory / path.name)
    for name, content in broken.items():
        (directory / name).write_text(content, encoding="utf-8")
    return directory


BAD_JSON = '{"name": "bad-json", "primary": "#ff0000",'
MISSING_FIELD = json.dumps({"name": "no-primary", "dark": True})
BAD_COLOR = json.dumps({"name": "bad-color", "primary": "not-a-colour"})


def test_the_three_shipped_themes_load():
    loaded = load_themes()
    assert loaded.problems == []
    assert {t.name for t in loaded.themes} == SHIPPED
    light = next(t for t in loaded.themes if t.name == "talon-light")
    assert light.dark is False


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("a.json", BAD_JSON, "a.json: cannot read"),
        ("b.json", MISSING_FIELD, "b.json: primary: Field required"),
        ("c.json", BAD_COLOR, "c.json: primary: 'not-a-colour' is not a colour"),
        ("d.toml", 'name = "x"\nprimary = ', "d.toml: cannot read"),
        ("e.json", "[1, 2]", "e.json: a theme must be an object/table"),
        ("f.json", json.dumps({"name": "f", "primary": "#fff", "primery": "#000"}), "primery"),
        ("g.json", json.dumps({"name": "Bad Name!", "primary": "#fff"}), "g.json: name"),
    ],
)
def test_a_broken_file_names_the_file_and_the_problem(tmp_path, name, content, problem):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError) as caught:
        load_theme_file(path)
    assert problem in str(caught.value)


def test_broken_files_are_skipped_and_the_good_ones_kept(tmp_path):
    directory = theme_dir(
        tmp_path, {"bad.json": BAD_JSON, "missing.json": MISSING_FIELD, "color.json": BAD_COLOR}
    )
    loaded = load_themes(directory)
    assert {t.name for t in loaded.themes} == SHIPPED
    assert len(loaded.problems) == 3


def test_a_missing_directory_is_a_problem_not_a_crash(tmp_path):
    loaded = load_themes(tmp_path / "nowhere")
    assert loaded.themes == []
    assert "not found" in loaded.problems[0]


def _theme_notes(app) -> list[str]:
    return [f"{n.title}: {n.message}" for n in app._notifications if n.title.startswith("Theme")]


async def test_the_app_registers_the_themes_and_starts_on_talon_dark(tmp_path):
    app, _ = talon_app(tmp_path / "data", pipe=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert SHIPPED <= set(app.available_themes)
        assert app.theme == DEFAULT_THEME
        assert _theme_notes(app) == []
        names = [c.title for c in app.get_system_commands(app.screen)]
        assert {f"theme: {t}" for t in SHIPPED} <= set(names)
        switch = next(
            c for c in app.get_system_commands(app.screen) if c.title == "theme: talon-light"
        )
        switch.callback()
        assert app.theme == "talon-light"


async def test_broken_theme_files_notify_and_the_app_still_starts(tmp_path, monkeypatch):
    directory = theme_dir(
        tmp_path, {"bad.json": BAD_JSON, "missing.json": MISSING_FIELD, "color.json": BAD_COLOR}
    )
    monkeypatch.setattr(themes, "THEMES_DIR", directory)
    app, _ = talon_app(tmp_path / "data", pipe=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        notes = _theme_notes(app)
        assert len(notes) == 3
        assert any("bad.json: cannot read" in n for n in notes)
        assert any("missing.json: primary" in n for n in notes)
        assert any("color.json: primary" in n for n in notes)
        assert app.theme == DEFAULT_THEME
        assert app.screen.name == "dashboard"


async def test_a_broken_default_theme_falls_back_to_textual(tmp_path, monkeypatch):
    directory = theme_dir(tmp_path, {"talon-dark.json": BAD_COLOR}, keep=set())
    monkeypatch.setattr(themes, "THEMES_DIR", directory)
    app, _ = talon_app(tmp_path / "data", pipe=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.theme == FALLBACK_THEME
        notes = _theme_notes(app)
        assert any("talon-dark.json" in n for n in notes)
        assert any("'talon-dark' is not available" in n for n in notes)
        assert app.screen.name == "dashboard"


async def test_an_unknown_requested_theme_falls_back(tmp_path):
    app, _ = talon_app(tmp_path / "data", pipe=False, theme="no-such-theme")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.theme == DEFAULT_THEME
        assert any("'no-such-theme' is not available" in n for n in _theme_notes(app))
