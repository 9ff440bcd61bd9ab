"""Account filter type 256: regular expressions on usernames answer what ``re.search`` answers, in
linear time, within the bounds the filter documents."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from snapkeep.errors import ValidationError
from snapkeep.jobs.models import FilterFields, validate
from snapkeep.sources.filters import AccountFilter
from snapkeep.sources.name_regex import MAX_NAME, MAX_PATTERN, MAX_PROGRAM, RegexError, compile_name_regex


def search(pattern: str, text: str) -> bool:
    return compile_name_regex(pattern).search(text)


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("^web", "web01", True),
        ("^web", "myweb", False),
        ("dev$", "shopdev", True),
        ("dev$", "dev\n", True),  # "$" also matches before a final line break, as in re
        (r"dev\Z", "dev\n", False),
        ("(?i)^ADMIN", "admin2", True),
        ("^[a-m]", "kate", True),
        ("^[^a-m]", "kate", False),
        (r"\d{3}$", "user123", True),
        (r"\bx", "a x", True),
        (r"\Bx", "a x", False),
        ("^(foo|bar)+$", "foobarfoo", True),
        ("^(foo|bar)+$", "foobaz", False),
        ("a.c", "a\nc", False),
        ("(?s)a.c", "a\nc", True),
        ("(?m)^b", "a\nb", True),
        ("", "anything", True),
    ],
)
def test_answers_like_re_search(pattern: str, text: str, expected: bool) -> None:
    assert search(pattern, text) is expected
    assert (re.search(pattern, text) is not None) is expected


@pytest.mark.parametrize(
    ("pattern", "text"),
    [("(a+)+$", "a" * 64 + "!"), ("(a|aa)*b", "a" * 200), ("(x*)*y", "x" * 255), ("(.*a){12}b", "a" * 40)],
)
def test_backtracking_patterns_run_in_linear_time(pattern: str, text: str) -> None:
    """``re.search`` needs 2^64 steps for the first (and years for the others); this is bounded."""
    compiled = compile_name_regex(pattern)
    counter = [0]
    started = time.monotonic()
    assert not compiled.search(text, counter)
    assert counter[0] <= len(compiled.program) * (len(text) + 1)
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        (r"(a)\1", "uses back-references"),
        ("(?!test)", "uses look-ahead and look-behind (use condition 2, exclude, instead)"),
        ("(?<=a)b", "uses look-ahead and look-behind"),
        ("(?>a+)b", "uses atomic groups"),
        ("a*+b", "uses possessive repeats"),
        ("(a)?(?(1)b|c)", "uses conditional groups"),
        ("a{1000}", f"is too complex (more than {MAX_PROGRAM} steps per character)"),
        ("((a{30}){30}){30}", "is too complex"),
        ("x" * (MAX_PATTERN + 1), f"must be at most {MAX_PATTERN} characters"),
        ("(", "is not a valid regular expression: missing ), unterminated subpattern"),
        ("[z-a]", "is not a valid regular expression: bad character range z-a"),
    ],
)
def test_what_the_filter_refuses(pattern: str, problem: str) -> None:
    with pytest.raises(RegexError, match=re.escape(problem)):
        compile_name_regex(pattern)
    with pytest.raises(ValidationError) as caught:
        validate(FilterFields, {"name": "f", "type": 256, "regex": pattern})
    assert caught.value.field == "regex"
    assert f"regex: {problem}" in str(caught.value)
    with pytest.raises(ValidationError) as at_run:
        AccountFilter.from_document({"type": 256, "regex": pattern})
    assert at_run.value.field == "regex"


def test_names_longer_than_any_system_allows_never_match() -> None:
    assert search("a", "a" * MAX_NAME)
    assert not search("a", "a" * (MAX_NAME + 1))


# --- agreement with re.search on small random patterns ---------------------------------------------

ATOMS = ["a", "b", "A", ".", "[ab]", "[^a]", "[a-c]", r"\d", r"\w", r"\W", r"\s", "^", "$", r"\b", r"\B"]
ATOMS += [r"\A", r"\Z", "-", "1"]
QUANTIFIERS = ["*", "+", "?", "*?", "+?", "{2}", "{1,2}", "{0,3}", "{2,}"]
FLAGS = ["", "(?i)", "(?m)", "(?s)", "(?a)", "(?im)", "(?ai)"]

regexes = st.recursive(
    st.sampled_from(ATOMS),
    lambda inner: st.one_of(
        st.tuples(inner, inner).map("".join),
        st.tuples(inner, inner).map(lambda pair: f"(?:{pair[0]}|{pair[1]})"),
        st.tuples(inner, inner).map(lambda pair: f"({pair[0]}|{pair[1]})"),
        st.tuples(inner, st.sampled_from(QUANTIFIERS)).map(lambda pair: f"(?:{pair[0]}){pair[1]}"),
    ),
    max_leaves=8,
)
texts = st.text(alphabet="abcAB1 _-\n", max_size=8)


@settings(max_examples=800, deadline=None)
@given(flags=st.sampled_from(FLAGS), body=regexes, text=texts)
def test_the_automaton_agrees_with_re_search(flags: str, body: str, text: str) -> None:
    pattern = flags + body
    try:
        expected = re.search(pattern, text) is not None
    except re.error:
        assume(False)
        return
    assert search(pattern, text) is expected, (pattern, text)


LETTERS = [
    "s",
    "S",
    "k",
    "K",
    "\u212a",
    "\u017f",
    "é",
    "É",
    "ß",
    "ñ",
    "[a-z]",
    "[^s]",
    "[\u017f]",
    "\\w",
    ".",
]
letters = st.recursive(
    st.sampled_from(LETTERS),
    lambda inner: st.one_of(
        st.tuples(inner, inner).map("".join),
        st.tuples(inner, inner).map(lambda pair: f"(?:{pair[0]}|{pair[1]})"),
    ),
    max_leaves=4,
)


@settings(max_examples=400, deadline=None)
@given(
    flags=st.sampled_from(["(?i)", "", "(?ai)"]),
    body=letters,
    text=st.text(alphabet="asSkK\u212a\u017féÉßñz", max_size=4),
)
def test_case_insensitive_letters_agree_with_re_search(flags: str, body: str, text: str) -> None:
    pattern = flags + body
    assert search(pattern, text) is (re.search(pattern, text) is not None), (pattern, text)
