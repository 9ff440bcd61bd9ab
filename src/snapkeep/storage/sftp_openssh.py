"""SFTP over the OpenSSH client: ``ssh -s ... sftp`` speaking SFTP v3 over its pipes.

Why: with paramiko every SSH packet is decrypted, authenticated and reassembled in Python; in a
restore from SFTP that was the largest cost after creating the files (``docs/engine.md``, "Remote
restore profile"). The OpenSSH client does the same work in C (AES-NI), as restic uses it, and this
module only frames SFTP messages of up to 255 KiB. Everything a store does goes through it:
byte-range reads, whole-object writes (pipelined WRITE requests into a temporary file,
``fsync@openssh.com``, ``FSTAT`` to check the size, ``posix-rename@openssh.com``), listings, stats,
folders, deletes and ``statvfs@openssh.com``; so a store that logs in with a key never imports
paramiko (23 MiB; ``sftp_settings``).

The host key: ``ssh-keyscan`` fetches the server's public keys (no login), the one matching the
pinned fingerprint is kept (the first, in paramiko's order of preference, when nothing was pinned
yet: ``SftpSettings.choose_host_key``) and the client is told to trust that key alone. When
``ssh-keyscan`` is missing or gets no key, paramiko connects once to check and pin it and to name
what is wrong (a refused connection, an unknown host).

Safety: the client is started with ``BatchMode``, ``StrictHostKeyChecking=yes`` and a known-hosts
file holding only the host key checked against the pin (``HostKeyAlias``), so it refuses any other
key; ``IdentitiesOnly`` with the store's private key (an unencrypted key's text, copied to a
``memfd``, never to a disk, named ``/proc/<our pid>/fd/N`` while the client logs in: ssh closes
inherited descriptors); no agent, no forwarding, no user or system configuration
(``-F /dev/null``). A store that logs in with a password or a passphrase-protected key, or a machine
without ``ssh``, goes through paramiko. Answers are bounded (1 MiB a packet) and parsed with their
lengths checked: a malformed one is an ``OSError``, never an unbounded read; a folder lists at
most ``MAX_FOLDER_ENTRIES``.

Failures are raised as paramiko's are (``OSError`` with ``errno.ENOENT``/``EACCES``, ``EOFError``
when the connection is gone, ``TimeoutError``), so ``sftp_settings.translate`` names them alike.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import functools
import os
import selectors
import shutil
import struct
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from snapkeep.storage.sftp_settings import BASE_CONNECTION_ERRORS, HostKey, SftpSettings, unsupported

__all__ = [
    "Attributes",
    "ClientFailed",
    "OpenSshPool",
    "OpenSshReader",
    "ReaderUnavailable",
    "openssh_available",
    "scan_host_keys",
]

_INIT, _VERSION, _OPEN, _CLOSE, _READ, _WRITE, _FSTAT = 1, 2, 3, 4, 5, 6, 8
_OPENDIR, _READDIR, _REMOVE, _MKDIR, _STAT, _RENAME, _EXTENDED = 11, 12, 13, 14, 17, 18, 200
_STATUS, _HANDLE, _DATA, _NAME, _ATTRS, _EXTENDED_REPLY = 101, 102, 103, 104, 105, 201
_FX_EOF, _FX_NO_SUCH_FILE, _FX_PERMISSION_DENIED = 1, 2, 3
_READ_FLAG = 0x01
#: SSH_FXF_WRITE | SSH_FXF_CREAT | SSH_FXF_TRUNC (paramiko's "wb")
_WRITE_FLAGS = 0x02 | 0x08 | 0x10
_SIZE_FLAG, _UIDGID_FLAG, _PERMISSIONS_FLAG, _TIMES_FLAG, _EXTENDED_FLAG = 0x01, 0x02, 0x04, 0x08, 0x80000000
#: Entries one READDIR answer may hold (OpenSSH's sftp-server sends 100): more is a hostile server.
_MAX_NAMES = 10_000
#: Entries one folder may list (a repository's fullest folder holds a 256th of its packs): a server
#: that answers READDIR without end is refused here instead of filling memory.
MAX_FOLDER_ENTRIES = 1_000_000
#: Bytes per read request (OpenSSH's sftp-server answers up to 255 KiB) and requests in flight.
PIECE = 255 * 1024
IN_FLIGHT = 32
_ALIAS = "snapkeep-pinned-host"
_HOST_KEY_ALGORITHMS = {"ssh-rsa": "rsa-sha2-512,rsa-sha2-256"}
#: Host key types in paramiko's order of preference: the key pinned first when nothing was pinned.
_HOST_KEY_PREFERENCE = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
)
_U32 = struct.Struct(">I")
_LOST = (OSError, EOFError)
_HEADER = struct.Struct(">IB")
T = TypeVar("T")


#: With AES instructions, AES-GCM before OpenSSH's default chacha20-poly1305: 64 MiB read 4 times
#: on loopback, 343-377 MiB/s against 253-259 MiB/s, and a third less CPU in ssh and sshd.
_AES_FIRST = (
    "aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,"
    "aes128-ctr,aes192-ctr,aes256-ctr"
)


@functools.cache
def _aes_instructions() -> bool:
    """Whether this CPU has AES instructions (``aes`` among the flags of ``/proc/cpuinfo``)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            return any(line.startswith("flags") and "aes" in line.split() for line in info)
    except OSError:
        return False


def openssh_available() -> str | None:
    """The ``ssh`` program, or ``None`` when there is none or no ``memfd``/``/proc`` to hand it
    the key without a file (not Linux)."""
    if not hasattr(os, "memfd_create") or not os.path.isdir(f"/proc/{os.getpid()}/fd"):
        return None
    return shutil.which("ssh")


def _memory_file(text: bytes, name: str) -> int:
    """A file descriptor of an in-memory file holding ``text``, readable only by us."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text)
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _string(data: bytes) -> bytes:
    return _U32.pack(len(data)) + data


@dataclass(frozen=True)
class Attributes:
    """A file's name (in listings), mode and size, as paramiko's ``SFTPAttributes`` names them."""

    filename: str
    st_mode: int | None
    st_size: int | None


class _Parser:
    """Reads SFTP fields from an answer; running past its end is a malformed answer (``OSError``)."""

    def __init__(self, body: memoryview) -> None:
        self.body = body
        self.at = 0

    def _take(self, size: int) -> memoryview:
        if self.at + size > len(self.body):
            raise OSError("malformed SFTP answer: a field runs past its end")
        piece = self.body[self.at : self.at + size]
        self.at += size
        return piece

    def u32(self) -> int:
        return int(_U32.unpack(self._take(4))[0])

    def u64(self) -> int:
        return int(struct.unpack(">Q", self._take(8))[0])

    def string(self) -> bytes:
        return bytes(self._take(self.u32()))

    def attributes(self, filename: str = "") -> Attributes:
        flags = self.u32()
        size = self.u64() if flags & _SIZE_FLAG else None
        if flags & _UIDGID_FLAG:
            self._take(8)
        mode = self.u32() if flags & _PERMISSIONS_FLAG else None
        if flags & _TIMES_FLAG:
            self._take(8)
        if flags & _EXTENDED_FLAG:
            for _ in range(self.u32()):  # each pair takes at least 8 bytes: bounded by the packet
                self.string()
                self.string()
        return Attributes(filename, mode, size)


def scan_host_keys(host: str, port: int, timeout: float) -> list[HostKey] | None:
    """The server's public host keys, preferred first (``_HOST_KEY_PREFERENCE``), fetched with
    ``ssh-keyscan`` (no login); ``None`` when there is no ``ssh-keyscan`` or it got no key (the
    server is down, refuses, or is no SSH server: paramiko then names what is wrong)."""
    program = shutil.which("ssh-keyscan")
    if program is None:
        return None
    wait = str(max(1, int(timeout)))
    command = [program, "-p", str(port), "-T", wait, "-t", "ed25519,ecdsa,rsa", "--", host]
    try:
        done = subprocess.run(
            command, capture_output=True, timeout=3 * timeout + 5, check=False, start_new_session=True
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    keys: dict[str, HostKey] = {}
    for line in done.stdout[: 1 << 20].decode("ascii", "replace").splitlines():
        fields = line.split()
        if len(fields) != 3 or fields[0].startswith("#") or fields[1] not in _HOST_KEY_PREFERENCE:
            continue
        try:
            blob = base64.b64decode(fields[2], validate=True)
            declared = _Parser(memoryview(blob)).string()
        except (ValueError, OSError):
            continue
        if declared == fields[1].encode():  # the key says what type it is: a mismatch is no key
            keys.setdefault(fields[1], HostKey(fields[1], blob))
    ordered = [keys[name] for name in _HOST_KEY_PREFERENCE if name in keys]
    return ordered or None


class OpenSshReader:
    """One ``ssh`` process with its SFTP subsystem; one caller at a time."""

    def __init__(
        self,
        *,
        program: str,
        host: str,
        port: int,
        username: str,
        host_key: HostKey,
        private_key: str,
        timeout: float,
    ) -> None:
        self.timeout = timeout
        key_fd = _memory_file(private_key.encode(), "snapkeep-sftp-key")
        known = f"{_ALIAS} {host_key.name} {host_key.base64}\n".encode()
        known_fd = _memory_file(known, "snapkeep-sftp-known-hosts")
        algorithms = _HOST_KEY_ALGORITHMS.get(host_key.name, host_key.name)
        command = [
            program,
            "-F", "/dev/null",
            "-p", str(port),
            "-l", username,
            "-i", f"/proc/{os.getpid()}/fd/{key_fd}",
            "-o", "IdentitiesOnly=yes",
            "-o", "IdentityAgent=none",
            "-o", "BatchMode=yes",
            "-o", "PasswordAuthentication=no",
            "-o", "KbdInteractiveAuthentication=no",
            "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile=/proc/{os.getpid()}/fd/{known_fd}",
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "UpdateHostKeys=no",
            "-o", f"HostKeyAlias={_ALIAS}",
            "-o", f"HostKeyAlgorithms={algorithms}",
            *(["-o", f"Ciphers={_AES_FIRST}"] if _aes_instructions() else []),
            "-o", f"ConnectTimeout={max(1, int(timeout))}",
            "-o", "ServerAliveInterval=15",
            "-o", "LogLevel=ERROR",
            "-o", "ForwardAgent=no",
            "-o", "ForwardX11=no",
            "-o", "ClearAllForwardings=yes",
            "-s", "--", host, "sftp",
        ]  # fmt: skip
        try:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                bufsize=0,
                start_new_session=True,
            )
            self._out = self.process.stdout.fileno()  # type: ignore[union-attr]
            self._in = self.process.stdin.fileno()  # type: ignore[union-attr]
            self._selector = selectors.DefaultSelector()
            self._selector.register(self._out, selectors.EVENT_READ)
            self._buffer = bytearray()
            self._next_id = 0
            try:
                self._send(_INIT, _U32.pack(3))
                kind, _body = self._receive_packet()  # after the login: the files were read
                if kind != _VERSION:
                    raise EOFError(f"unexpected SFTP answer {kind} to INIT")
            except BaseException:
                self.close()
                raise
        finally:
            os.close(key_fd)
            os.close(known_fd)

    # --- framing ---------------------------------------------------------------------------------

    def alive(self) -> bool:
        return self.process.poll() is None

    def _send(self, kind: int, payload: bytes) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        try:
            stdin.write(_HEADER.pack(len(payload) + 1, kind) + payload)
        except (BrokenPipeError, ValueError) as error:
            raise EOFError(f"the ssh client is gone: {error}") from None

    def _request(self, kind: int, payload: bytes) -> int:
        self._next_id = (self._next_id + 1) & 0xFFFFFFFF
        self._send(kind, _U32.pack(self._next_id) + payload)
        return self._next_id

    def _request_with_data(self, kind: int, head: bytes, data: memoryview) -> int:
        """A request whose last field is ``data`` (an SFTP string), written without joining it to
        the header (``writev``)."""
        self._next_id = (self._next_id + 1) & 0xFFFFFFFF
        header = _HEADER.pack(len(head) + len(data) + 9, kind) + _U32.pack(self._next_id) + head
        buffers: list[bytes | memoryview] = [header + _U32.pack(len(data)), data]
        try:
            while buffers:
                written = os.writev(self._in, buffers)
                while buffers and written >= len(buffers[0]):
                    written -= len(buffers.pop(0))
                if buffers and written:
                    buffers[0] = memoryview(buffers[0])[written:]
        except (BrokenPipeError, ValueError) as error:
            raise EOFError(f"the ssh client is gone: {error}") from None
        return self._next_id

    def _fill(self, wanted: int) -> None:
        while len(self._buffer) < wanted:
            if not self._selector.select(self.timeout):
                self.close()
                raise TimeoutError(f"no answer from the SFTP server in {self.timeout:g}s")
            piece = os.read(self._out, max(1 << 20, wanted - len(self._buffer)))
            if not piece:
                raise EOFError("the SSH connection closed")
            self._buffer += piece

    def _receive_packet(self) -> tuple[int, memoryview]:
        self._fill(5)
        length, kind = _HEADER.unpack_from(self._buffer)
        if length < 1 or length > (1 << 20):
            raise EOFError(f"malformed SFTP packet of {length} bytes")
        self._fill(4 + length)
        body = memoryview(bytes(self._buffer[5 : 4 + length]))
        del self._buffer[: 4 + length]
        return kind, body

    def _reply(self) -> tuple[int, int, memoryview]:
        kind, body = self._receive_packet()
        return kind, _U32.unpack_from(body)[0], body[4:]

    @staticmethod
    def _failure(body: memoryview, path: str) -> OSError:
        code = _U32.unpack_from(body)[0]
        size = _U32.unpack_from(body, 4)[0] if len(body) >= 8 else 0
        message = bytes(body[8 : 8 + size]).decode("utf-8", "replace") or f"SFTP status {code}"
        if code == _FX_NO_SUCH_FILE:
            return FileNotFoundError(errno.ENOENT, message, path)
        if code == _FX_PERMISSION_DENIED:
            return PermissionError(errno.EACCES, message, path)
        return OSError(message)

    def _call(self, kind: int, payload: bytes, path: str) -> tuple[int, memoryview]:
        wanted = self._request(kind, payload)
        answer, number, body = self._reply()
        if number != wanted:
            raise EOFError(f"SFTP answer {number} out of order (expected {wanted})")
        if answer == _STATUS and _U32.unpack_from(body)[0] != 0:
            raise self._failure(body, path)
        return answer, body

    # --- reading ---------------------------------------------------------------------------------

    def read(self, path: str, offset: int, length: int | None) -> bytes:
        """``length`` bytes of ``path`` from ``offset`` (to the end when ``None``; fewer at the end)."""
        answer, body = self._call(_OPEN, _string(path.encode()) + _U32.pack(_READ_FLAG) + _U32.pack(0), path)
        if answer != _HANDLE:
            raise OSError(f"unexpected SFTP answer {answer} to OPEN")
        handle = bytes(body[4 : 4 + _U32.unpack_from(body)[0]])
        try:
            if length is None:
                answer, body = self._call(_FSTAT, _string(handle), path)
                flags = _U32.unpack_from(body)[0] if answer == _ATTRS else 0
                if not flags & _SIZE_FLAG:
                    raise OSError("the server did not give the file's size")
                length = max(0, struct.unpack_from(">Q", body, 4)[0] - offset)
            data = self._read_range(handle, offset, offset + length, path)
        except BaseException:
            if self.alive():  # a failed read still closes its handle; a lost session cannot
                with contextlib.suppress(*_LOST):
                    self._call(_CLOSE, _string(handle), path)
            raise
        self._call(_CLOSE, _string(handle), path)
        return data

    def _read_range(self, handle: bytes, start: int, end: int, path: str) -> bytes:
        pieces: dict[int, memoryview] = {}
        todo = deque((position, min(PIECE, end - position)) for position in range(start, end, PIECE))
        waiting: dict[int, tuple[int, int]] = {}
        eof = end
        handle_string = _string(handle)
        while todo or waiting:
            while todo and len(waiting) < IN_FLIGHT:
                position, size = todo.popleft()
                if position >= eof:
                    continue
                number = self._request(_READ, handle_string + struct.pack(">QI", position, size))
                waiting[number] = (position, size)
            if not waiting:
                break
            answer, number, body = self._reply()
            request = waiting.pop(number, None)
            if request is None:
                raise EOFError(f"SFTP answer {number} to no request")
            position, size = request
            if answer == _DATA:
                got = _U32.unpack_from(body)[0]
                pieces[position] = body[4 : 4 + got]
                if 0 < got < size:  # answered short: ask for the rest
                    todo.appendleft((position + got, size - got))
                elif got == 0:
                    eof = min(eof, position)
            elif answer == _STATUS and _U32.unpack_from(body)[0] == _FX_EOF:
                eof = min(eof, position)
            elif answer == _STATUS:
                raise self._failure(body, path)
            else:
                raise OSError(f"unexpected SFTP answer {answer} to READ")
        ordered: list[memoryview] = []
        position = start
        while position < eof and position in pieces:
            piece = pieces.pop(position)
            ordered.append(piece)
            position += len(piece)
        return b"".join(ordered)

    # --- writing ---------------------------------------------------------------------------------

    def write_file(self, path: str, chunks: Iterable[bytes], *, fsync: bool) -> tuple[int, bool]:
        """Create (or truncate) ``path`` and write the chunks to it in pipelined requests of up to
        ``PIECE`` bytes; with ``fsync``, ask for ``fsync@openssh.com``. Returns the size written and
        whether fsync is supported (``False`` when the server said it is not). The size the server
        holds is checked (``FSTAT``) before the handle is closed. Raises like paramiko (a missing
        folder is ``FileNotFoundError`` at the open, before any chunk is taken)."""
        answer, body = self._call(
            _OPEN, _string(path.encode()) + _U32.pack(_WRITE_FLAGS) + _U32.pack(0), path
        )
        if answer != _HANDLE:
            raise OSError(f"unexpected SFTP answer {answer} to OPEN")
        handle = bytes(body[4 : 4 + _U32.unpack_from(body)[0]])
        handle_string = _string(handle)
        waiting: set[int] = set()
        size = 0
        try:
            for chunk in chunks:
                view = memoryview(chunk).cast("B")
                for start in range(0, len(view), PIECE):
                    piece = view[start : start + PIECE]
                    while len(waiting) >= IN_FLIGHT:
                        self._write_answer(waiting, path)
                    waiting.add(
                        self._request_with_data(_WRITE, handle_string + struct.pack(">Q", size), piece)
                    )
                    size += len(piece)
            while waiting:
                self._write_answer(waiting, path)
            if fsync:
                try:
                    self._call(_EXTENDED, _string(b"fsync@openssh.com") + handle_string, path)
                except OSError as error:
                    if not unsupported(error):
                        raise
                    fsync = False
            answer, body = self._call(_FSTAT, handle_string, path)
            flags = _U32.unpack_from(body)[0] if answer == _ATTRS else 0
            if flags & _SIZE_FLAG and struct.unpack_from(">Q", body, 4)[0] != size:
                raise OSError(f"the server stored {struct.unpack_from('>Q', body, 4)[0]} of {size} bytes")
        except BaseException:
            if self.alive():  # answer what is still in flight, then close the handle
                with contextlib.suppress(*_LOST):
                    while waiting:
                        waiting.discard(self._reply()[1])
                    self._call(_CLOSE, handle_string, path)
            raise
        self._call(_CLOSE, handle_string, path)
        return size, fsync

    def _write_answer(self, waiting: set[int], path: str) -> None:
        answer, number, body = self._reply()
        if number not in waiting:
            raise EOFError(f"SFTP answer {number} to no request")
        waiting.discard(number)
        if answer != _STATUS:
            raise OSError(f"unexpected SFTP answer {answer} to WRITE")
        if _U32.unpack_from(body)[0] != 0:
            raise self._failure(body, path)

    def rename(self, old: str, new: str, *, posix: bool) -> bool:
        """Move ``old`` over ``new``: ``posix-rename@openssh.com`` (atomic replace) when ``posix``
        and the server offers it, else remove and plain rename. Returns whether the posix rename
        is offered."""
        old_string, new_string = _string(old.encode()), _string(new.encode())
        if posix:
            try:
                self._call(_EXTENDED, _string(b"posix-rename@openssh.com") + old_string + new_string, new)
                return True
            except OSError as error:
                if not unsupported(error):
                    raise
        with contextlib.suppress(FileNotFoundError):
            self._call(_REMOVE, new_string, new)
        self._call(_RENAME, old_string + new_string, new)
        return False

    def remove(self, path: str) -> None:
        self._call(_REMOVE, _string(path.encode()), path)

    # --- listings, folders, space (what paramiko's client offers, raising alike) -----------------

    def stat(self, path: str) -> Attributes:
        """The attributes of ``path`` (links followed)."""
        answer, body = self._call(_STAT, _string(path.encode()), path)
        if answer != _ATTRS:
            raise OSError(f"unexpected SFTP answer {answer} to STAT")
        return _Parser(body).attributes()

    def mkdir(self, path: str, mode: int) -> None:
        """Create the folder ``path`` with ``mode``."""
        self._call(_MKDIR, _string(path.encode()) + _U32.pack(_PERMISSIONS_FLAG) + _U32.pack(mode), path)

    def listdir_attr(self, path: str) -> list[Attributes]:
        """The entries of folder ``path`` (without ``.`` and ``..``), with their attributes."""
        answer, body = self._call(_OPENDIR, _string(path.encode()), path)
        if answer != _HANDLE:
            raise OSError(f"unexpected SFTP answer {answer} to OPENDIR")
        handle_string = _string(_Parser(body).string())
        entries: list[Attributes] = []
        try:
            while True:
                number = self._request(_READDIR, handle_string)
                answer, got, body = self._reply()
                if got != number:
                    raise EOFError(f"SFTP answer {got} out of order (expected {number})")
                if answer == _STATUS:
                    if _U32.unpack_from(body)[0] == _FX_EOF:
                        break
                    raise self._failure(body, path)
                if answer != _NAME:
                    raise OSError(f"unexpected SFTP answer {answer} to READDIR")
                parser = _Parser(body)
                count = parser.u32()
                if count > _MAX_NAMES:
                    raise OSError(f"malformed SFTP answer: {count} names in one READDIR")
                for _ in range(count):
                    name = parser.string().decode("utf-8", "surrogateescape")
                    parser.string()  # the long name, as ls -l would print it
                    attributes = parser.attributes(name)
                    if name not in (".", ".."):
                        entries.append(attributes)
                if len(entries) > MAX_FOLDER_ENTRIES:
                    raise OSError(f"the server listed more than {MAX_FOLDER_ENTRIES} entries in {path}")
        except BaseException:
            if self.alive():
                with contextlib.suppress(*_LOST):
                    self._call(_CLOSE, handle_string, path)
            raise
        self._call(_CLOSE, handle_string, path)
        return entries

    def statvfs(self, path: str) -> tuple[int, int] | None:
        """(free, total) bytes of the file system holding ``path`` (``statvfs@openssh.com``), or
        ``None`` when the server does not offer it."""
        try:
            request = _string(b"statvfs@openssh.com") + _string(path.encode())
            answer, body = self._call(_EXTENDED, request, path)
        except OSError as error:
            if isinstance(error, FileNotFoundError) or unsupported(error):
                return None
            raise
        if answer != _EXTENDED_REPLY:
            return None
        parser = _Parser(body)
        _block_size, fragment_size, blocks, _free, available = (parser.u64() for _ in range(5))
        return available * fragment_size, blocks * fragment_size

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            if self.process.stdin is not None:
                self.process.stdin.close()
        with contextlib.suppress(OSError, ValueError, KeyError):
            self._selector.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            with contextlib.suppress(OSError):
                self.process.stdout.close()


class ReaderUnavailable(Exception):
    """No OpenSSH reader can start now (no ssh, no usable key, a changed host key, a stopped
    server): the caller reads through paramiko, which names the problem."""


class ClientFailed(Exception):
    """A read or write through OpenSSH failed: ``error`` as paramiko's would be, ``lost`` when the
    connection was gone (after one fresh reader was tried)."""

    def __init__(self, error: BaseException, lost: bool) -> None:
        super().__init__(str(error))
        self.error = error
        self.lost = lost


class OpenSshPool:
    """Up to ``size`` OpenSSH readers of one store, started on demand and reused.

    Enabled for a private key without a passphrase when ``ssh`` exists; disabled for good when the
    first reader cannot start. The host key the readers trust alone is learnt once, with
    ``ssh-keyscan`` or else ``check_host_key`` (paramiko's connection), and checked against the pin."""

    def __init__(self, settings: SftpSettings, size: int, check_host_key: Callable[[], None]) -> None:
        usable = settings.private_key is not None and not settings.passphrase
        self.program = openssh_available() if usable else None
        self.settings = settings
        self.check_host_key = check_host_key
        self.slots = threading.BoundedSemaphore(size)
        self.lock = threading.Lock()
        self.idle: list[OpenSshReader] = []
        self.started = 0
        self.closed = False

    @property
    def enabled(self) -> bool:
        return self.program is not None

    def read(self, path: str, offset: int, length: int | None) -> bytes:
        """Raises ``ReaderUnavailable`` or ``ClientFailed``; a reader found dead is replaced once."""
        return self.run(lambda reader: reader.read(path, offset, length))

    def run(self, action: Callable[[OpenSshReader], T], replayable: Callable[[], bool] = lambda: True) -> T:
        """``action`` on a pooled reader. Raises ``ReaderUnavailable`` or ``ClientFailed``; when the
        reader was found dead, ``action`` is tried once more on a fresh one if ``replayable()``."""
        attempt = 1
        while True:
            with self.slots:
                reader = self._take()
                try:
                    result = action(reader)
                except BASE_CONNECTION_ERRORS as error:
                    lost = isinstance(error, EOFError | TimeoutError) or not reader.alive()
                    if lost:
                        reader.close()
                    else:
                        self._give(reader)
                    if lost and attempt == 1 and replayable():
                        attempt += 1
                        continue
                    raise ClientFailed(error, lost) from error
                except BaseException:
                    reader.close()  # e.g. the caller's chunks failed: the session's state is unknown
                    raise
                self._give(reader)
                return result

    def _take(self) -> OpenSshReader:
        with self.lock:
            if self.closed:
                raise ReaderUnavailable("the store is closed")
            while self.idle:
                reader = self.idle.pop()
                if reader.alive():
                    return reader
                reader.close()
        if self.settings.host_key is None:
            self._learn_host_key()
        settings, program = self.settings, self.program
        if settings.host_key is None or program is None or settings.private_key is None:
            raise ReaderUnavailable("no pinned host key or no usable private key")
        try:
            reader = OpenSshReader(
                program=program,
                host=settings.host,
                port=settings.port,
                username=settings.username,
                host_key=settings.host_key,
                private_key=settings.private_key,
                timeout=settings.timeout,
            )
        except (OSError, EOFError) as error:
            if self.started == 0:
                self.program = None  # ssh never worked for this store: paramiko from now on
            raise ReaderUnavailable(str(error)) from error
        with self.lock:
            self.started += 1
        return reader

    def _learn_host_key(self) -> None:
        """Check (and pin) the server's host key through ``ssh-keyscan``; through paramiko when
        that gets no key. Raises ``HostKeyChangedError`` or what paramiko's connection raises."""
        settings = self.settings
        offered = scan_host_keys(settings.host, settings.port, settings.timeout)
        if offered is None:
            self.check_host_key()
        else:
            settings.choose_host_key(offered)

    def _give(self, reader: OpenSshReader) -> None:
        with self.lock:
            if reader.alive() and not self.closed:
                self.idle.append(reader)
                return
        reader.close()

    def close(self) -> None:
        with self.lock:
            self.closed = True
            readers, self.idle = self.idle, []
        for reader in readers:
            reader.close()
