"""The README and docs/ hold together: every relative link and image points at a file of the repository
(and at a heading that exists, for an #anchor into markdown), and the README stays short."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
README = REPO_ROOT / "README.md"
PAGES = [README, *sorted((REPO_ROOT / "docs").glob("*.md"))]
README_MAX_BYTES = 10_000

FENCE = re.compile(r"^ {0,3}(```|~~~)")
INLINE_CODE = re.compile(r"`+[^`]*`+")
# [text](target "title") and ![alt](target); the text may hold one level of brackets.
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)")
HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # http:, https:, mailto: ...


def _prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks, inline code removed."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(INLINE_CODE.sub("", line))
    return lines


def _targets(page: Path) -> list[str]:
    found = []
    for line in _prose_lines(page.read_text()):
        found += INLINE_LINK.findall(line)
        if match := REFERENCE_DEFINITION.match(line):
            found.append(match.group(1))
    return found


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: link markup reduced to its text, lower case, punctuation
    dropped (word characters, hyphens and spaces kept), spaces made hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


@cache
def anchors(page: Path) -> frozenset[str]:
    seen: dict[str, int] = {}
    found = set()
    fenced = False
    for line in page.read_text().splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if fenced or not (match := HEADING.match(line)):
            continue
        slug = github_slug(match.group(1))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")  # a repeated heading gets -1, -2, ...
    return frozenset(found)


def broken_links(page: Path, root: Path = REPO_ROOT) -> list[str]:
    broken = []
    for target in _targets(page):
        if EXTERNAL.match(target):
            continue
        path_part, _, anchor = target.partition("#")
        if path_part.startswith("/"):
            broken.append(f"{target}: absolute path")
            continue
        resolved = (page.parent / unquote(path_part)).resolve() if path_part else page
        if not resolved.is_relative_to(root):
            broken.append(f"{target}: leaves the repository")
        elif not resolved.exists():
            broken.append(f"{target}: points at nothing")
        elif anchor and resolved.suffix == ".md" and unquote(anchor).lower() not in anchors(resolved):
            broken.append(f"{target}: no heading #{anchor} in {resolved.relative_to(root)}")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO_ROOT)))
def test_every_relative_link_points_into_the_repository(page: Path) -> None:
    assert not broken_links(page)


def test_the_readme_is_under_10_kb() -> None:
    assert README.stat().st_size < README_MAX_BYTES


def test_the_link_checker_catches_what_it_should(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text("# cvloop\n\n## Two commands\n")
    page = tmp_path / "docs" / "page.md"
    page.write_text(
        "# Page\n\n## The control plane (`services/api`)\n\n## Twice\n\n## Twice\n\n"
        "[ok](../README.md#two-commands) [ok](#the-control-plane-servicesapi) [ok](#twice-1) "
        "[web](https://example.com/x.md) `[code](missing.md)`\n\n```\n[fenced](missing.md)\n```\n\n"
        "[a](missing.md) ![b](../../outside.png) [c](#nowhere) [d](/etc/hosts) [e](../README.md#gone)\n"
    )
    assert broken_links(page, tmp_path) == [
        "missing.md: points at nothing",
        "../../outside.png: leaves the repository",
        "#nowhere: no heading #nowhere in docs/page.md",
        "/etc/hosts: absolute path",
        "../README.md#gone: no heading #gone in README.md",
    ]
