"""The file store's state file for the benches: read its text, write a new one as a login does.

Format (pbx-mfa.conf(5), STATE FILE FORMAT; lib/include/pbx/totp/state_file.hpp): two slots of
4096 bytes (a multiple of 4096 if a state needs more), each a 56-byte header (magic, SHA-256 of
the bytes from offset 40 to the end of the text, sequence number, text length, slot size; little
endian) and serialize_state's text. The state is the valid slot with the higher number. A file
that starts with "version " is the text format of earlier releases (still read; an older build
reads only that).
"""
import hashlib
import os
import struct

MAGIC = b"PBXSTAT\x01"
HEADER = 56
ALIGN = 4096
MAX_TEXT = 16 * 1024
MAX_FILE = 2 * 20480


def _newest(data):
    """(slot size, (slot, sequence, text bytes) or None), or None when not a two-slot size."""
    n = len(data)
    if n == 0 or n % (2 * ALIGN) or n > MAX_FILE:
        return None
    size = n // 2
    best = None
    for i in (0, 1):
        s = data[i * size:(i + 1) * size]
        if s[:8] != MAGIC:
            continue
        seq, length, slot_size = struct.unpack_from("<QII", s, 40)
        if slot_size != size or length > MAX_TEXT or length > size - HEADER:
            continue
        if hashlib.sha256(s[40:HEADER + length]).digest() != s[8:40]:
            continue
        if best is None or seq > best[1]:
            best = (i, seq, s[HEADER:HEADER + length])
    return size, best


def read_text(path):
    """The state text of a state file (either format); ValueError when it holds none."""
    with open(path, "rb") as f:
        data = f.read()
    if data.startswith(b"version "):
        return data.decode()
    got = _newest(data)
    if not got or not got[1]:
        raise ValueError(f"{path}: not a valid state file")
    return got[1][2].decode()


def _slot(payload, seq, size):
    body = struct.pack("<QII", seq, len(payload), size) + payload
    return MAGIC + hashlib.sha256(body).digest() + body


def write_text(path, text, text_format=False):
    """Writes `text` as the user's state, root-owned 0600. Into the slot not holding the state,
    in place, as a login writes it (no fsync: this is untimed setup), so the timed login after it
    finds a file of this release and writes in place too; a new two-slot file when there is none
    yet. text_format: the text alone, for an older build."""
    payload = text.encode()
    got = None
    if not text_format and os.path.exists(path):
        with open(path, "rb") as f:
            data = f.read()
        if not data.startswith(b"version "):
            got = _newest(data)
    if got and got[1]:
        size, (i, seq, _) = got
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.pwrite(fd, _slot(payload, seq + 1, size), (1 - i) * size)
        finally:
            os.close(fd)
        return
    if text_format:
        data = payload
    else:
        size = max(ALIGN, (HEADER + len(payload) + ALIGN - 1) // ALIGN * ALIGN)
        data = _slot(payload, 1, size).ljust(2 * size, b"\0")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
