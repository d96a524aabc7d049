"""The documentation's links: every relative link and picture in the project's markdown files names a file that
exists, and every #anchor a heading of that file, as GitHub renders them (a moved section breaks no reader's path)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Not the project's own pages: the venv's packages, caches, and anything git ignores that a test or tool writes.
SKIPPED = {".git", ".venv", ".pytest_cache", ".ruff_cache", ".hypothesis", "node_modules", "shared"}
PAGES = sorted(path for path in ROOT.rglob("*.md")
               if not SKIPPED & set(path.relative_to(ROOT).parts) and "egg-info" not in str(path))
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)


def prose(path):
    """The page without its code blocks and inline code: a link written inside code is an example, not a link."""
    return re.sub(r"`[^`\n]*`", "", FENCE.sub("", path.read_text()))


def anchors(path):
    """The ids GitHub gives the page's headings: lower case, punctuation dropped, spaces as hyphens, and a
    repeated heading numbered (-1, -2, ...)."""
    seen = {}
    ids = set()
    for heading in re.findall(r"^#{1,6}\s+(.*?)\s*#*$", FENCE.sub("", path.read_text()), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        ids.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    return ids


def test_the_pages_are_found():
    names = {path.relative_to(ROOT).as_posix() for path in PAGES}
    assert {"README.md", "CONTRIBUTING.md", "docs/architecture.md", "docs/protocol.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_every_relative_link_of_a_page_resolves(page):
    broken = []
    for target in LINK.findall(prose(page)):
        if re.match(r"[a-z][a-z+.-]*:", target):  # https:, mailto: ...: outside the repository
            continue
        file_part, _, anchor = target.partition("#")
        linked = (page.parent / file_part).resolve() if file_part else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif ROOT not in linked.parents and linked != ROOT:
            broken.append(f"{target}: outside the repository")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading #{anchor} in {linked.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)
