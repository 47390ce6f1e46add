"""The README is the front page: every link in it leads somewhere (mkdocs --strict checks the links
inside docs/; this checks the ones into it), and it stays a front page, not a manual."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_relative_link_of_the_readme_names_a_file_of_the_repository() -> None:
    links = [target for target in re.findall(r"\]\(([^)\s]+)\)", README) if "://" not in target]
    assert links, "the README links to the docs"
    missing = [t for t in links if not (ROOT / t.split("#")[0]).is_file()]
    assert missing == []


def test_every_docs_page_of_the_readme_is_in_the_site_navigation() -> None:
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = re.findall(r"\]\(docs/([^)#]+\.md)", README)
    assert pages and [p for p in pages if f": {p}" not in nav] == []


def test_the_readme_stays_a_front_page() -> None:
    assert len(README.splitlines()) <= 150
