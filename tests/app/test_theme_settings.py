"""The palette-picked theme is kept across restarts in console.json under the user config dir;
a broken settings file gives a clear message and the default theme, and nothing in it is lost;
the palette's theme picker lists Talon's three themes first, marked."""

from __future__ import annotations

import json

from support.app import settle, talon_app
from textual.command import CommandPalette

from talon_tui.app.settings import CONFIG_NAME, ConsoleSettings, config_path
from talon_tui.app.themes import DEFAULT_THEME, TalonThemeProvider


def _settings_notes(app) -> list[str]:
    return [f"{n.title}: {n.message}" for n in app._notifications if n.title == "Settings"]


def test_the_settings_file_lives_under_the_config_dir(console_config_dir):
    assert config_path() == console_config_dir / CONFIG_NAME


async def test_a_theme_picked_in_the_palette_is_there_after_a_restart(tmp_path, console_config_dir):
    app, _ = talon_app(tmp_path / "data", pipe=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.theme == DEFAULT_THEME
        switch = next(
            c for c in app.get_system_commands(app.screen) if c.title == "theme: talon-light"
        )
        switch.callback()
        await settle(pilot)
    saved = json.loads((console_config_dir / CONFIG_NAME).read_text())
    assert saved == {"theme": "talon-light"}
    again, _ = talon_app(tmp_path / "data", pipe=False)
    async with again.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert again.theme == "talon-light"


async def test_the_theme_flag_wins_over_the_saved_theme_and_is_not_saved(
    tmp_path, console_config_dir
):
    (console_config_dir / CONFIG_NAME).write_text('{"theme": "talon-light", "other": 1}')
    app, _ = talon_app(tmp_path / "data", pipe=False, theme="talon-high-contrast")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.theme == "talon-high-contrast"
    assert json.loads((console_config_dir / CONFIG_NAME).read_text()) == {
        "theme": "talon-light",
        "other": 1,
    }


async def test_a_broken_settings_file_is_reported_and_kept(tmp_path, console_config_dir):
    broken = '{"theme": "talon-light",'
    (console_config_dir / CONFIG_NAME).write_text(broken)
    app, _ = talon_app(tmp_path / "data", pipe=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.theme == DEFAULT_THEME
        notes = _settings_notes(app)
        assert len(notes) == 1 and "cannot read" in notes[0] and CONFIG_NAME in notes[0]
        assert (console_config_dir / CONFIG_NAME).read_text() == broken  # untouched
        app.theme = "talon-light"  # the operator picks a theme: the broken file goes aside
        await settle(pilot)
        assert any("console.json.broken" in n for n in _settings_notes(app))
    assert (console_config_dir / (CONFIG_NAME + ".broken")).read_text() == broken
    assert ConsoleSettings.load().theme == "talon-light"


def test_settings_that_are_not_an_object_or_a_bad_theme_are_problems(console_config_dir):
    path = console_config_dir / CONFIG_NAME
    for text, problem in (
        ("[1]", "must be a JSON object"),
        ('{"theme": 3}', "theme must be a string"),
        (b"\xff\xfe".decode("latin-1"), "cannot read"),
    ):
        path.write_text(text, encoding="latin-1")
        assert problem in (ConsoleSettings.load().problem or ""), text


async def test_the_theme_picker_lists_talon_themes_first_and_marked(tmp_path):
    app, _ = talon_app(tmp_path / "data", pipe=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.search_themes()
        await settle(pilot)
        assert isinstance(app.screen, CommandPalette)
        provider = TalonThemeProvider(app.screen)
        names = [name for name, _ in provider.commands]
        assert names[:3] == [
            "★ talon-dark (Talon)",
            "★ talon-light (Talon)",
            "★ talon-high-contrast (Talon)",
        ]
        assert "textual-dark" in names[3:]
        dict(provider.commands)["★ talon-light (Talon)"]()
        assert app.theme == "talon-light"
