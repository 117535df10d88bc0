"""The README stays true: every setting is documented with its default."""

from __future__ import annotations

from pathlib import Path

from jobfleet.core.settings import Settings

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_every_setting_is_in_the_readme_with_its_default() -> None:
    for env, default, _doc in Settings.documentation():
        assert f"| `{env}` | `{default}` |" in README, f"README's configuration table lacks {env} (default {default})"


def test_readme_names_the_two_setup_commands() -> None:
    assert "make run" in README
    assert "make test" in README
