"""The README as a front door, and every relative link of the documentation resolving."""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _slug(heading):
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page):
    return {_slug(line.lstrip("#")) for line in page.read_text().splitlines() if line.startswith("#")}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        assert resolved.exists(), f"{page.relative_to(ROOT)} links to {target}, which does not exist"
        if anchor:
            assert anchor in _anchors(resolved), f"{page.relative_to(ROOT)} links to {target}: no such heading"


def test_the_readme_is_a_front_door_with_both_pictures():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    for picture in ("docs/images/quickstart.png", "docs/images/darts_v2.png"):
        assert f"]({picture})" in readme and f"--out={picture}" in readme  # shown, and how it is made
        assert (ROOT / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the test command's pytest, which CI runs verbatim
    line = next(line for line in readme.splitlines() if 'pytest' in line and '-m "not slow"' in line)
    assert line[line.index(".venv/bin/python -m pytest"):] in (ROOT / ".ci" / "run").read_text()
