"""The email component: a Maildir tree, with the job's ``options`` deciding what goes in.

Maildir keeps one file per message in each folder's ``cur/``, ``new/`` and ``tmp/``; folders are
``.Name`` sub-directories (Maildir++), and dovecot keeps its index, uid list and keyword files beside
them. ``options`` (API.md section 4):

======  =============================================================================
value   email contents
======  =============================================================================
0, 2    everything (messages included)
1       the mailbox structure only: every folder, its ``cur``/``new``/``tmp`` and the dovecot
        files are kept, message files are left out
4       messages included, but no Trash, Spam or Junk folders (``.Trash``, ``.Junk``,
        ``.Spam`` and their sub-folders, any case, at any depth); databases are left out
        too, which ``components`` decides
6       everything, junk folders included
======  =============================================================================

The rules are exclude globs (``engine.fs.walker`` syntax) anchored at the mail root.
"""

from __future__ import annotations

from snapkeep.errors import ValidationError

INCLUDE_DATABASES = 0
NO_MESSAGES = 1
INCLUDE_CONTENTS = 2
NO_DATABASES_NO_JUNK = 4
INCLUDE_JUNK = 6
OPTIONS = (INCLUDE_DATABASES, NO_MESSAGES, INCLUDE_CONTENTS, NO_DATABASES_NO_JUNK, INCLUDE_JUNK)
JUNK_FOLDERS = ("Trash", "Spam", "Junk")
MESSAGE_FOLDERS = ("cur", "new", "tmp")


def check_options(options: int) -> int:
    """``options`` when it is one of the values API.md allows; raises ``ValidationError``."""
    if options not in OPTIONS:
        allowed = ", ".join(str(value) for value in OPTIONS)
        raise ValidationError(field="options", problem=f"must be one of {allowed}, not {options}")
    return options


def _any_case(word: str) -> str:
    return "".join(f"[{char.upper()}{char.lower()}]" if char.isalpha() else char for char in word)


def junk_globs(mail_root: str) -> list[str]:
    """Exclude globs for the Trash/Spam/Junk folders (and their sub-folders) under ``mail_root``."""
    root = mail_root.rstrip("/")
    globs: list[str] = []
    for folder in JUNK_FOLDERS:
        name = _any_case(folder)
        # Maildir++ names a folder ".Trash" and a sub-folder ".Trash.Old"; some layouts nest
        # ".INBOX.Trash" or keep plain "Trash" folders (mdbox/sdbox style).
        globs += [f"{root}/**/.{name}", f"{root}/**/.{name}.*", f"{root}/**/.*.{name}", f"{root}/**/{name}"]
    return globs


def message_globs(mail_root: str) -> list[str]:
    """Exclude globs for every message file (the entries of ``cur``/``new``/``tmp``)."""
    root = mail_root.rstrip("/")
    return [f"{root}/**/{folder}/*" for folder in MESSAGE_FOLDERS]


def mail_excludes(mail_root: str, options: int) -> list[str]:
    """The exclude globs the email component of a job with ``options`` uses under ``mail_root``.
    Raises ``ValidationError`` for an ``options`` value API.md does not define."""
    check_options(options)
    if options == NO_MESSAGES:
        return message_globs(mail_root)
    if options == NO_DATABASES_NO_JUNK:
        return junk_globs(mail_root)
    return []


def includes_databases(options: int) -> bool:
    """Whether a job with ``options`` backs up databases (every value but 4)."""
    return check_options(options) != NO_DATABASES_NO_JUNK
