"""The README's feature table is generated from module metadata and must stay true."""

from pathlib import Path

from heron.features import END, START, feature_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_feature_table_matches_the_modules() -> None:
    text = README.read_text()
    start = text.index(START) + len(START)
    end = text.index(END)
    assert text[start:end].strip() == feature_table(), "run: make features"


def test_readme_shows_the_two_commands() -> None:
    text = README.read_text()
    assert "make run" in text
    assert "make test" in text
