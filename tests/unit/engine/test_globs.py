"""Exclude globs in linear time: the rules, validation, the complexity bound, and agreement with a
regular-expression translation of the same rules on small random cases."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapkeep.engine.fs.globs import MAX_PATTERN, GlobError, GlobSet, check_glob


def matches(pattern: str, path: str) -> bool:
    return GlobSet([pattern]).match(path)


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("/a[!x]b", "/a/b", False),  # a class never matches "/"
        ("/a[^x]b", "/ayb", True),
        ("/a?b", "/a/b", False),
        ("/[]x]", "/]", True),  # "]" first in a class is a member
        ("/[!]x]", "/]", False),
        ("/[!]x]", "/y", True),
        ("/[ab", "/[ab", True),  # no closing bracket: a plain "["
        ("/[a-c-]", "/-", True),
        ("/[a-c]x", "/bx", True),
        ("/[a-c]x", "/dx", False),
        ("/a\\b", "/a\\b", True),  # no escape character
        ("/data/**", "/data/x/y", True),
        ("/data/**", "/data", False),
        ("/data/**/", "/data/x", True),  # a trailing "/" is ignored
        ("**/x", "/a/bx", False),  # "**/" reads whole folders only
        ("**/x", "/a/b/x", True),
        ("a**b", "/a/c/b", True),
        ("/", "/", True),
        ("/", "/a", False),
        ("*", "/any/thing", True),
    ],
)
def test_glob_rules(pattern: str, path: str, expected: bool) -> None:
    assert matches(pattern, path) is expected


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("[z-a]", "bad character range z-a at position 1"),
        ("/x/[!0-9a-A]", "bad character range a-A at position 8"),
        ("a\x00b", "must not contain a NUL byte"),
        ("a" * (MAX_PATTERN + 1), f"is longer than {MAX_PATTERN} characters"),
    ],
)
def test_unusable_globs_are_refused(pattern: str, problem: str) -> None:
    with pytest.raises(GlobError, match=re.escape(problem)):
        check_glob(pattern)
    with pytest.raises(GlobError) as caught:  # a ValidationError: the command line prints it, exit 2
        GlobSet(["*.log", pattern])
    assert caught.value.field == "exclude[1]"
    assert caught.value.problem.startswith(f"{problem} (got {pattern[:50]!r}")


def test_the_backtracking_pattern_is_linear_on_a_long_path() -> None:
    """Attack report LOW-13: ``**a**a**a**a**a**a**b`` took over a minute on a 100-character path."""
    pattern = "**a**a**a**a**a**a**b"
    for path in ("/" + "a" * 9_999, "/" + "a/" * 4_999 + "a", "/" + "ab" * 4_999 + "a"):
        globs = GlobSet([pattern])
        started = time.monotonic()
        assert not globs.match(path)
        elapsed = time.monotonic() - started
        # one step per character, plus the automaton's width per transition computed: c x m x n
        assert globs.steps <= (globs.width + 1) * len(path)
        assert elapsed < 1.0, f"{elapsed:.2f} s on a {len(path)}-character path"
    assert GlobSet([pattern]).match("/" + "a" * 9_998 + "b")


def test_steps_stay_within_m_times_n_without_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the transition cache disabled every character computes its transition: the work is then
    exactly n x (m + 1), the worst case the cache can only improve."""
    import snapkeep.engine.fs.globs as globs_module

    monkeypatch.setattr(globs_module, "MAX_CACHED", 0)
    globs = GlobSet(["**a**a**a**b", "/x/*/y*z?[a-c]", "cache"])
    path = "/" + "ab/" * 2_000
    assert not globs.match(path)
    assert globs.steps == len(path) * (globs.width + 1)


# --- agreement with a regular-expression translation on small cases --------------------------------

CLASSES = ["[ab]", "[!a]", "[^b]", "[a-c]", "[]a]", "[!b-c]"]
ATOMS = ["a", "b", "c", "/", "*", "**", "?", "**/", *CLASSES]


def reference_regex(pattern: str) -> str:
    """The same rules as a regular expression (what the matcher replaced, with classes kept off "/").
    Only for the well-formed classes of ``CLASSES``."""
    pattern = pattern.rstrip("/") or "/"
    body = pattern.lstrip("/")
    out = ["/" if pattern.startswith("/") else "(?:.*/)?"]
    index = 0
    while index < len(body):
        if body.startswith("**/", index):
            out.append("(?:.*/)?")
            index += 3
        elif body.startswith("**", index):
            out.append(".*")
            index += 2
        elif body[index] == "*":
            out.append("[^/]*")
            index += 1
        elif body[index] == "?":
            out.append("[^/]")
            index += 1
        elif body[index] == "[":
            klass = next(item for item in CLASSES if body.startswith(item, index))
            inner = klass[1:-1]
            negated = inner[:1] in ("!", "^")
            inner = inner[1:] if negated else inner
            items = inner.replace("]", "\\]")
            out.append("(?!/)[" + ("^" if negated else "") + items + "]")
            index += len(klass)
        else:
            out.append(re.escape(body[index]))
            index += 1
    return "".join(out)


patterns = st.lists(st.sampled_from(ATOMS), max_size=7).map("".join).filter(bool)
anchors = st.sampled_from(["", "/"])
paths = st.lists(st.sampled_from(["a", "b", "c", "]", "-", "/"]), max_size=12).map(lambda p: "/" + "".join(p))


@settings(max_examples=600, deadline=None)
@given(anchor=anchors, pattern=patterns, path=paths)
def test_the_matcher_agrees_with_the_regular_expression(anchor: str, pattern: str, path: str) -> None:
    pattern = anchor + pattern
    expected = re.fullmatch(reference_regex(pattern), path, re.DOTALL) is not None
    assert matches(pattern, path) is expected, (pattern, path, reference_regex(pattern))


@settings(max_examples=200, deadline=None)
@given(chosen=st.lists(st.tuples(anchors, patterns), min_size=1, max_size=4), path=paths)
def test_a_set_matches_when_any_of_its_globs_does(chosen: list[tuple[str, str]], path: str) -> None:
    globs = [anchor + pattern for anchor, pattern in chosen]
    assert GlobSet(globs).match(path) is any(matches(glob, path) for glob in globs)
