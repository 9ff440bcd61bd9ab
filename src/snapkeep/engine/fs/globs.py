"""Exclude globs matched in linear time (attack report LOW-13).

The rules are restic's: ``*`` matches any run of characters within one path component, ``?`` one
character other than ``/``, ``[...]`` one character of a class (``[a-z0-9_]``, negated by a leading
``!`` or ``^``; a ``]`` right after the opening bracket or its negation is a member; a ``[`` with no
closing ``]`` is a plain character) and, like ``*`` and ``?``, never ``/``; ``**`` matches anything
including ``/`` and ``**/`` any number of whole folders (none included). A pattern that starts with
``/`` is anchored at the root; any other matches at any depth (as if it started with ``**/``). A
trailing ``/`` is ignored. A pattern matches a whole absolute path; there is no escape character.

Why not a regular expression: Python's ``re`` backtracks, and ``**a**a**a**b`` took over a minute on
one 100-character path. Here every pattern becomes a small nondeterministic automaton, one bit per
pattern position, and all the patterns of a set are advanced together over the path with a few integer
operations per character (shift-and), so one character costs O(m / 64) word operations for m pattern
positions and a whole path O(m x n) at worst, whatever the pattern. Transitions already computed are
cached per (state, character), which makes the common case one dictionary lookup per character; the
cache is bounded, so the worst case stays O(m x n) in time and bounded in memory.

``GlobSet.steps`` counts the work done: one step per character read, plus the number of automaton
positions for each transition computed (a cache miss), so a test can hold it to c x m x n.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from snapkeep.errors import ValidationError

MAX_PATTERN = 4096
MAX_CACHED = 1 << 16  # transitions kept before the cache starts over


class GlobError(ValidationError):
    """A pattern that cannot be used: ``problem`` says why and where, ``field`` names the glob
    (``exclude``, or ``exclude[i]`` from a ``GlobSet``; a saved job names ``exclude_list[i]``)."""

    def __init__(self, problem: str, field: str = "exclude") -> None:
        super().__init__(field=field, problem=problem)


# token kinds: a literal character, one character of a class, ``*``, ``**``, ``**/``
LITERAL, ONE, STAR, ANY, FOLDERS = range(5)


@dataclass(frozen=True)
class CharClass:
    """``[...]``: single characters and inclusive ranges, possibly negated; never matches ``/``."""

    chars: frozenset[str] = frozenset()
    ranges: tuple[tuple[str, str], ...] = ()
    negated: bool = True  # the default, negated and empty, is ``?``: any character but ``/``

    def accepts(self, char: str) -> bool:
        if char == "/":
            return False
        inside = char in self.chars or any(low <= char <= high for low, high in self.ranges)
        return inside != self.negated


ANY_CHAR = CharClass()
Token = tuple[int, str | CharClass | None]


def _char_class(body: str, start: int, offset: int) -> tuple[CharClass, int] | None:
    """The class opening at ``body[start] == "["`` and the index after it; None when unclosed.
    ``offset`` is where ``body`` starts in the pattern as written (for the error's position)."""
    index = start + 1
    negated = index < len(body) and body[index] in "!^"
    if negated:
        index += 1
    end = body.find("]", index + 1)  # a "]" first in the class is a member
    if end < 0:
        return None
    items = body[index:end]
    chars: set[str] = set()
    ranges: list[tuple[str, str]] = []
    position = 0
    while position < len(items):
        if position + 2 < len(items) and items[position + 1] == "-":
            low, high = items[position], items[position + 2]
            if low > high:
                at = offset + index + position
                raise GlobError(f"bad character range {low}-{high} at position {at}")
            ranges.append((low, high))
            position += 3
        else:
            chars.add(items[position])
            position += 1
    return CharClass(frozenset(chars), tuple(ranges), negated), end + 1


def parse(pattern: str) -> list[Token]:
    """The tokens of one glob, the implied start (``/`` or any folders) included. Raises GlobError."""
    if "\x00" in pattern:
        raise GlobError("must not contain a NUL byte")
    if len(pattern) > MAX_PATTERN:
        raise GlobError(f"is longer than {MAX_PATTERN} characters")
    pattern = pattern.rstrip("/") or "/"
    tokens: list[Token] = [(LITERAL, "/")] if pattern.startswith("/") else [(FOLDERS, None)]
    body = pattern.lstrip("/")
    offset = len(pattern) - len(body)
    index = 0
    while index < len(body):
        char = body[index]
        if body.startswith("**/", index):
            tokens.append((FOLDERS, None))
            index += 3
        elif body.startswith("**", index):
            tokens.append((ANY, None))
            index += 2
        elif char == "*":
            tokens.append((STAR, None))
            index += 1
        elif char == "?":
            tokens.append((ONE, ANY_CHAR))
            index += 1
        elif char == "[" and (found := _char_class(body, index, offset)) is not None:
            tokens.append((ONE, found[0]))
            index = found[1]
        else:
            tokens.append((LITERAL, char))
            index += 1
    return tokens


def check_glob(pattern: str) -> None:
    """Raise GlobError when ``pattern`` cannot be used (the validation done when a job is saved)."""
    parse(pattern)


class GlobSet:
    """Several globs matched together: ``match(path)`` is true when any of them matches all of it.

    Bit ``i`` of a state means "the next thing to match is token ``i``"; each pattern's tokens take
    consecutive bits and one more bit, its accepting position, follows them. ``*``, ``**`` and ``**/``
    may match nothing (an epsilon move to the next bit) or loop on a character (``*`` only on one
    that is not ``/``). ``**/`` is ``(.*/)?``: once it has read a character it may move on only by
    reading a ``/``."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = [pattern for pattern in patterns if pattern]
        self._literals: dict[str, int] = {}
        self._classes: list[tuple[int, CharClass]] = []
        self._folders = self._skip = self._loop_any = self._loop_inner = 0
        start = accept = 0
        bit = 0
        for index, pattern in enumerate(self.patterns):
            start |= 1 << bit
            try:
                tokens = parse(pattern)
            except GlobError as error:
                got = repr(pattern) if len(pattern) <= 60 else repr(pattern[:50]) + "..."
                raise GlobError(f"{error.problem} (got {got})", f"exclude[{index}]") from None
            for kind, value in tokens:
                mask = 1 << bit
                if kind == LITERAL:
                    assert isinstance(value, str)
                    self._literals[value] = self._literals.get(value, 0) | mask
                elif kind == ONE:
                    assert isinstance(value, CharClass)
                    self._classes.append((mask, value))
                else:
                    self._skip |= mask
                    if kind == STAR:
                        self._loop_inner |= mask
                    elif kind == ANY:
                        self._loop_any |= mask
                    else:
                        self._folders |= mask
                bit += 1
            accept |= 1 << bit
            bit += 1
        self.width = bit
        self._accept = accept
        self._start = self._closure(start)
        self._advance: dict[str, int] = {}
        self._cache: dict[int, dict[str, int]] = {}
        self._cached = 0
        #: work done so far: characters read, plus ``width`` for each transition computed
        self.steps = 0

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def _closure(self, state: int) -> int:
        """``state`` with every epsilon move taken. Bits of a run of skippable tokens are filled from
        the lowest set one to the bit after the run in one addition (the carry does the walking)."""
        skip = self._skip
        return state | ((skip + (state & skip)) ^ skip)

    def _advancing(self, char: str) -> int:
        """The bits whose token consumes ``char`` and moves on to the next bit."""
        mask = self._advance.get(char)
        if mask is None:
            mask = self._literals.get(char, 0)
            if char == "/":
                mask |= self._folders
            for bit, klass in self._classes:
                if klass.accepts(char):
                    mask |= bit
            if len(self._advance) < MAX_CACHED:
                self._advance[char] = mask
        return mask

    def _step(self, state: int, char: str) -> int:
        """The state after ``char``. A ``*`` or ``**`` that loops may still end here (its epsilon move
        is taken again); a ``**/`` that loops may not: it only ends on a ``/``, so its loop bits join
        after the closure."""
        looping = self._loop_any if char == "/" else self._loop_any | self._loop_inner
        moved = ((state & self._advancing(char)) << 1) | (state & looping)
        return self._closure(moved) | (state & self._folders)

    def match(self, text: str) -> bool:
        """Whether one of the globs matches the whole of ``text``."""
        state = self._start
        if not state:
            return False
        cache = self._cache
        self.steps += len(text)
        for char in text:
            row = cache.get(state)
            if row is None:
                row = cache[state] = {}
            following = row.get(char)
            if following is None:
                following = self._step(state, char)
                self.steps += self.width
                self._cached += 1
                if self._cached > MAX_CACHED:
                    cache.clear()
                    self._cached = 0
                    row = cache[state] = {}
                row[char] = following
            state = following
            if not state:
                return False
        return bool(state & self._accept)
