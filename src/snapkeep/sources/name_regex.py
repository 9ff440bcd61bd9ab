"""Regular expressions on account names in linear time (account filter type 256; attack report LOW-13).

``re.search`` backtracks: ``(a+)+$`` takes seconds on a 30-character name and doubles with every
character more, and the filter runs an administrator-supplied pattern against every account of the
server. Here the pattern is parsed with Python's own parser (so the syntax and the answer are those of
``re.search``) and run as a Thompson automaton, one set of program positions advanced per character:
at most ``len(program) x (len(name) + 1)`` steps, whatever the pattern.

Bounds (``RegexError`` when a pattern is saved, naming the reason):

- a pattern of at most ``MAX_PATTERN`` characters, compiling to at most ``MAX_PROGRAM`` instructions
  (counted repeats are unrolled: ``a{1,900}`` is 1,800);
- only the regular constructs: back-references, look-ahead and look-behind, atomic groups, possessive
  repeats and conditional groups are refused (the filter's ``condition`` 2 excludes what matches, which
  covers the usual negative look-ahead), as is the LOCALE flag;
- a name longer than ``MAX_NAME`` characters never matches (no system allows names that long).

Case-insensitive matching (``(?i)``) compares the one-character case forms of both sides, as ``re``
does for ASCII and for most of Unicode; ``re``'s few special folds (the Turkish dotted and dotless i,
a range tested against a long s) may answer differently. Usernames are ASCII on every supported
system, where the answers are the same (tests/unit/sources/test_name_regex.py compares them).
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Python's own parser (``re._parser``, public until 3.11 as ``sre_parse``), loaded by name: it has no
# type stubs, and parsing with it keeps the syntax exactly that of ``re``
_parser: Any = importlib.import_module("re._parser")
_c: Any = importlib.import_module("re._constants")

MAX_PATTERN = 256
MAX_PROGRAM = 1000
MAX_NAME = 255

Test = Callable[[str], bool]
# instructions: ("char", test) reads one character; ("split", a, b) and ("jump", a) branch without
# reading; ("at", code, flags) asserts a position; ("match",) accepts
Instruction = tuple[Any, ...]

_REFUSED = {
    "GROUPREF": "back-references",
    "GROUPREF_EXISTS": "conditional groups",
    "ASSERT": "look-ahead and look-behind",
    "ASSERT_NOT": "look-ahead and look-behind (use condition 2, exclude, instead)",
    "ATOMIC_GROUP": "atomic groups",
    "POSSESSIVE_REPEAT": "possessive repeats",
}


class RegexError(ValueError):
    """A pattern the filter cannot use; the message says why."""


def _is_word(char: str, flags: int) -> bool:
    if flags & re.ASCII:
        return char.isascii() and (char.isalnum() or char == "_")
    return char.isalnum() or char == "_"


def _category(code: Any, flags: int) -> Test:
    ascii_only = bool(flags & re.ASCII)
    name = str(code)
    if "DIGIT" in name:

        def base(char: str) -> bool:
            return char.isdecimal() and (char.isascii() or not ascii_only)
    elif "SPACE" in name:

        def base(char: str) -> bool:
            return char in " \t\n\r\f\v" if ascii_only else char.isspace()
    elif "WORD" in name:

        def base(char: str) -> bool:
            return _is_word(char, flags)
    else:
        raise RegexError(f"uses an unsupported character category ({name})")
    return _negate(base) if "NOT" in name else base


def _equals(wanted: str) -> Test:
    return lambda char: char == wanted


def _between(low: str, high: str) -> Test:
    return lambda char: low <= char <= high


def _negate(test: Test) -> Test:
    return lambda char: not test(char)


def _variants(char: str, flags: int) -> tuple[str, ...]:
    """``char`` and its one-character case forms (long s U+017F -> ``S`` -> ``s``; Kelvin sign -> ``k``);
    under the ASCII flag only ASCII letters have other forms."""
    if flags & re.ASCII and not char.isascii():
        return (char,)
    forms = (char, char.lower(), char.upper(), char.upper().lower())
    return tuple(
        dict.fromkeys(form for form in forms if len(form) == 1 and (form.isascii() or not flags & re.ASCII))
    )


def _folded(test: Test, flags: int) -> Test:
    """``test`` made case-insensitive under IGNORECASE: true when any case form of the character is."""
    if not flags & re.IGNORECASE:
        return test
    return lambda char: any(test(form) for form in _variants(char, flags))


def _literal(wanted: str, flags: int) -> Test:
    """Equality; under IGNORECASE with every case form of ``wanted`` (``(?i)[\\u017f]`` matches ``s``)."""
    if not flags & re.IGNORECASE:
        return _equals(wanted)
    forms = frozenset(_variants(wanted, flags))
    return lambda char: char in forms


def _class(items: list[tuple[Any, Any]], flags: int) -> Test:
    negated = False
    tests: list[Test] = []
    for op, value in items:
        name = str(op)
        if name == "NEGATE":
            negated = True
        elif name == "LITERAL":
            tests.append(_literal(chr(value), flags))
        elif name == "RANGE":
            tests.append(_between(chr(value[0]), chr(value[1])))
        elif name == "CATEGORY":
            tests.append(_category(value, flags))
        else:
            raise RegexError(f"uses an unsupported class item ({name})")
    member = _folded(lambda char: any(test(char) for test in tests), flags)
    return _negate(member) if negated else member


class _Compiler:
    def __init__(self) -> None:
        self.program: list[Instruction] = []

    def emit(self, instruction: Instruction) -> int:
        if len(self.program) >= MAX_PROGRAM:
            raise RegexError(f"is too complex (more than {MAX_PROGRAM} steps per character)")
        self.program.append(instruction)
        return len(self.program) - 1

    def sequence(self, nodes: Any, flags: int) -> None:
        for op, value in nodes:
            self.node(str(op), value, flags)

    def node(self, op: str, value: Any, flags: int) -> None:
        if op in _REFUSED:
            raise RegexError(f"uses {_REFUSED[op]}, which account filters do not support")
        if op in ("LITERAL", "NOT_LITERAL"):
            same = _folded(_literal(chr(value), flags), flags)
            self.emit(("char", same if op == "LITERAL" else _negate(same)))
        elif op == "ANY":
            self.emit(("char", (lambda char: True) if flags & re.DOTALL else (lambda char: char != "\n")))
        elif op == "IN":
            self.emit(("char", _class(value, flags)))
        elif op == "AT":
            self.emit(("at", str(value), flags))
        elif op == "SUBPATTERN":
            _group, add, remove, body = value
            self.sequence(body, (flags | add) & ~remove)
        elif op == "BRANCH":
            self.branch(value[1], flags)
        elif op in ("MAX_REPEAT", "MIN_REPEAT"):  # greedy or lazy: the same for "is there a match"
            low, high, body = value
            self.repeat(low, high, body, flags)
        else:
            raise RegexError(f"uses an unsupported construct ({op})")

    def branch(self, alternatives: list[Any], flags: int) -> None:
        jumps: list[int] = []
        for index, alternative in enumerate(alternatives):
            last = index == len(alternatives) - 1
            split = -1 if last else self.emit(("split", 0, 0))
            self.sequence(alternative, flags)
            if not last:
                jumps.append(self.emit(("jump", 0)))
                self.program[split] = ("split", split + 1, len(self.program))
        for jump in jumps:
            self.program[jump] = ("jump", len(self.program))

    def repeat(self, low: int, high: Any, body: Any, flags: int) -> None:
        for _ in range(low):
            self.sequence(body, flags)
        if high == _c.MAXREPEAT:
            loop = self.emit(("split", 0, 0))
            self.sequence(body, flags)
            self.emit(("jump", loop))
            self.program[loop] = ("split", loop + 1, len(self.program))
            return
        splits: list[int] = []
        for _ in range(high - low):
            splits.append(self.emit(("split", 0, 0)))
            self.sequence(body, flags)
        for split in splits:
            self.program[split] = ("split", split + 1, len(self.program))


def _at(code: str, flags: int, text: str, position: int) -> bool:
    size = len(text)
    if code == "AT_BEGINNING":
        return position == 0 or (bool(flags & re.MULTILINE) and text[position - 1] == "\n")
    if code == "AT_BEGINNING_STRING":
        return position == 0
    if code == "AT_END":
        if position == size or (position == size - 1 and text[position] == "\n"):
            return True
        return bool(flags & re.MULTILINE) and position < size and text[position] == "\n"
    if code == "AT_END_STRING":
        return position == size
    if code in ("AT_BOUNDARY", "AT_NON_BOUNDARY"):
        if size == 0:
            return False
        before = position > 0 and _is_word(text[position - 1], flags)
        after = position < size and _is_word(text[position], flags)
        return (before != after) == (code == "AT_BOUNDARY")
    raise RegexError(f"uses an unsupported position ({code})")


@dataclass(frozen=True)
class NameRegex:
    """A compiled pattern; ``search(name)`` answers what ``re.search(pattern, name)`` would."""

    pattern: str
    program: tuple[Instruction, ...]

    def search(self, text: str, counter: list[int] | None = None) -> bool:
        """Whether the pattern occurs in ``text``. ``counter[0]`` (when given) grows by the number of
        program positions visited, at most ``len(program) x (len(text) + 1)``."""
        if len(text) > MAX_NAME:
            return False
        program = self.program
        waiting: list[int] = []
        visited: set[int] = set()
        for position in range(len(text) + 1):
            visited.clear()
            ready: list[int] = []
            for start in [*waiting, 0]:  # a new attempt starts at every position (search)
                stack = [start]
                while stack:
                    pc = stack.pop()
                    if pc in visited:
                        continue
                    visited.add(pc)
                    kind = program[pc][0]
                    if kind == "char":
                        ready.append(pc)
                    elif kind == "match":
                        if counter is not None:
                            counter[0] += len(visited)
                        return True
                    elif kind == "jump":
                        stack.append(program[pc][1])
                    elif kind == "split":
                        stack.extend((program[pc][2], program[pc][1]))
                    elif _at(program[pc][1], program[pc][2], text, position):
                        stack.append(pc + 1)
            if counter is not None:
                counter[0] += len(visited)
            if position == len(text):
                break
            char = text[position]
            waiting = [pc + 1 for pc in ready if program[pc][1](char)]
        return False


@functools.lru_cache(maxsize=256)
def compile_name_regex(pattern: str) -> NameRegex:
    """Parse and compile ``pattern``; raises RegexError (also for what ``re`` itself refuses)."""
    if len(pattern) > MAX_PATTERN:
        raise RegexError(f"must be at most {MAX_PATTERN} characters (got {len(pattern)})")
    try:
        parsed = _parser.parse(pattern)
    except re.error as error:
        raise RegexError(f"is not a valid regular expression: {error}") from None
    flags = parsed.state.flags
    if flags & re.LOCALE:
        raise RegexError("uses the LOCALE flag, which account filters do not support")
    compiler = _Compiler()
    compiler.sequence(parsed, flags)
    compiler.emit(("match",))
    return NameRegex(pattern, tuple(compiler.program))
