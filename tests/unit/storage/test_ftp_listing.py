"""Parsing what FTP servers list: ``MLSD`` facts and ``ls -l`` style ``LIST`` lines.

vsftpd (the test server) sends ``LIST`` lines only; these are the formats other common servers send
(RFC 3659 examples, ProFTPD, Pure-FTPd, FileZilla Server), checked line by line.
"""

from __future__ import annotations

import pytest

from snapkeep.storage.ftp_listing import _mlsd_entry, _unix_entries


@pytest.mark.parametrize(
    ("line", "entry"),
    [
        ("type=file;size=1234;modify=20261205114300;perm=adfrw; ab01", ("ab01", "file", 1234)),
        ("Type=File;Size=7;UNIX.mode=0644; config", ("config", "file", 7)),
        ("type=dir;modify=20261205114300;perm=flcdmpe; data", ("data", "dir", -1)),
        ("type=file;modify=20261205114300; nosize", ("nosize", "file", -1)),
        ("type=cdir;perm=el; .", None),
        ("type=pdir;perm=el; ..", None),
        ("type=OS.unix=symlink;size=9; link", None),
        ("type=file;size=3; .tmp-0123", None),
        ("type=file;size=3; with space", None),
        ("type=file;size=99999999999999999999999; huge", ("huge", "file", -1)),
    ],
)
def test_mlsd_lines(line: str, entry: tuple[str, str, int] | None) -> None:
    assert _mlsd_entry(line) == entry


def test_unix_listing_lines() -> None:
    lines = [
        "total 16",
        "-rw-r--r--    1 995      994            10 Dec 05 11:43 ab01",
        "drwxr-xr-x    2 ftp      ftp          4096 Jan  1  2025 data",
        "-rw-r--r--+   1 owner    group  5368709120 Feb 29 23:59 big",
        "lrwxrwxrwx    1 owner    group          4 Dec 05 11:43 link -> ab01",
        "-rw-r--r--    1 owner    group          1 Dec 05 11:43 .tmp-1",
        "-rw-r--r--    1 owner    group          1 Dec 05 11:43 two words",
        "",
    ]
    assert _unix_entries(lines) == [("ab01", "file", 10), ("data", "dir", -1), ("big", "file", 5368709120)]


@pytest.mark.parametrize(
    "line",
    [
        "12-05-26  11:43AM                   10 ab01",  # IIS / DOS style
        "-rw-r--r-- 1 owner 10 Dec 05 11:43 ab01",  # no group column
        "+i8388621.48594,m825718503,r,s280, ab01",  # EPLF
    ],
)
def test_other_listing_formats_fall_back_to_nlst(line: str) -> None:
    assert _unix_entries(["-rw-r--r--    1 o g 1 Dec 05 11:43 fine", line]) is None
