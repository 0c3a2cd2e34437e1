"""Open an untrusted zip archive safely: read its members into memory, within limits.

Nothing is extracted to disk and nothing in the archive is executed. Every member name is checked
(absolute paths, ``..``, control characters, duplicates, links and special files) and a member
that breaks a rule is never read. Sizes are counted while decompressing, never taken from the
headers; a member stops being read as soon as it passes the per-member cap, the total cap or the
compression-ratio cap (a zip bomb). Members whose local data overlap (the overlapping-entry bomb)
are refused.

Before anything is read, the archive's layout is checked to have exactly one reading (``layout``):
the end record is the last 22 bytes (no comment, nothing after it, so no concatenated archive),
the central directory ends where the end record starts and holds exactly the entries the end
record counts, the members tile the bytes from offset 0 to the directory with no gap (no data
before the first local header or between members), and every local header agrees with its
directory entry on name, flags, method, CRC and sizes (or, with a data descriptor, the descriptor
does). Zip tools differ in which of the two headers they trust; when both say the same thing,
every tool extracts the bytes the verifier hashed.
"""

from __future__ import annotations

import io
import re
import stat
import struct
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from conformance.certify.interface import Finding, Reason

MiB = 1 << 20
LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # zipfile's sizeFileHeader layout, 30 bytes
LOCAL_MAGIC = b"PK\x03\x04"
CENTRAL_HEADER = struct.Struct("<4s4B4HL2L5H2L")  # 46 bytes
CENTRAL_MAGIC = b"PK\x01\x02"
END_RECORD = struct.Struct("<4s4H2LH")  # 22 bytes
END_MAGIC = b"PK\x05\x06"
DESCRIPTOR_MAGIC = b"PK\x07\x08"
CHUNK = 256 * 1024
WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Limits:
    max_archive_bytes: int = 256 * MiB
    max_members: int = 1000
    max_member_bytes: int = 64 * MiB
    max_total_bytes: int = 256 * MiB
    max_ratio: float = (
        200.0  # uncompressed / compressed, checked once a member passes ratio_floor_bytes
    )
    ratio_floor_bytes: int = 1 * MiB
    # what the verifier parses and recomputes (SPEC §9.3): bounded so verification is bounded
    max_results_bytes: int = 32 * MiB  # results.json (about 12,000 checks' worth)
    max_json_bytes: int = 1 * MiB  # every other JSON member
    max_json_values: int = 1_000_000  # values in one JSON member (about 7,000 checks' worth)
    max_checks: int = 5_000  # check records in results.json (the ops profile: ~2,000)
    max_benchmarks: int = 1_000  # benchmark records in results.json


@dataclass(frozen=True)
class Opened:
    """The members that could be read safely (name -> bytes) and every rule the archive broke.

    ``fatal``: the archive could not be opened at all, so ``members`` is empty.
    """

    members: dict[str, bytes]
    findings: tuple[Finding, ...]
    fatal: bool = False
    entries: tuple[str, ...] = ()  # every directory entry's name, folders and refused ones too


class _TooBig(Exception):
    pass


def name_problem(raw: str) -> tuple[Reason, str] | None:
    """Why a member name (as stored, before zipfile cleans it) is unsafe, or None."""
    if not raw:
        return Reason.BAD_NAME, "empty name"
    if CONTROL.search(raw):
        return Reason.BAD_NAME, "control character (or NUL) in the name"
    if raw.startswith(("/", "\\")) or WINDOWS_DRIVE.match(raw):
        return Reason.ABSOLUTE_PATH, "absolute path"
    parts = raw.replace("\\", "/").split("/")
    if ".." in parts:
        return Reason.PATH_TRAVERSAL, "'..' in the path"
    if any(p in ("", ".") for p in parts[:-1]) or parts[-1] == ".":
        return Reason.BAD_NAME, "empty or '.' path component"
    return None


def type_problem(info: zipfile.ZipInfo) -> tuple[Reason, str] | None:
    mode = info.external_attr >> 16
    if info.create_system == 3 and mode:  # unix attributes present
        kind = stat.S_IFMT(mode)
        if kind == stat.S_IFLNK:
            return Reason.SYMLINK, "symbolic link"
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            return Reason.SPECIAL_FILE, f"not a regular file (mode {oct(mode)})"
    if info.flag_bits & 0x1:
        return Reason.ENCRYPTED_MEMBER, "encrypted member"
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        return (
            Reason.UNSUPPORTED_COMPRESSION,
            f"compression method {info.compress_type} (only stored and deflate)",
        )
    return None


@dataclass(frozen=True)
class _Entry:
    """One central directory entry, as stored (no tool's interpretation)."""

    name: bytes
    flags: int
    method: int
    crc: int
    compressed: int
    size: int
    offset: int


def _central_entries(data: bytes, start: int, end: int, count: int) -> list[_Entry] | Finding:
    entries, at = [], start
    while at < end:
        if at + CENTRAL_HEADER.size > end or data[at : at + 4] != CENTRAL_MAGIC:
            return Finding(Reason.STRAY_BYTES, f"bytes at offset {at} inside the central directory")
        fields = CENTRAL_HEADER.unpack_from(data, at)
        flags, method, crc, compressed, size = (fields[i] for i in (5, 6, 9, 10, 11))
        name_len, extra_len, comment_len, offset = (fields[i] for i in (12, 13, 14, 18))
        name = data[at + CENTRAL_HEADER.size : at + CENTRAL_HEADER.size + name_len]
        entries.append(_Entry(name, flags, method, crc, compressed, size, offset))
        at += CENTRAL_HEADER.size + name_len + extra_len + comment_len
    if at != end or len(entries) != count:
        return Finding(
            Reason.STRAY_BYTES,
            f"the end record counts {count} entries in {end - start} bytes; the directory holds "
            f"{len(entries)} in {at - start}",
        )
    return entries


def _descriptor(data: bytes, at: int, entry: _Entry) -> tuple[int, Finding | None]:
    """The data descriptor after a member's data (flag bit 3): its length, and whether it agrees."""
    signed = data[at : at + 4] == DESCRIPTOR_MAGIC
    body = at + 4 if signed else at
    if body + 12 > len(data):
        return 0, Finding(Reason.DATA_DESCRIPTOR_MISMATCH, "no data descriptor after the data")
    crc, compressed, size = struct.unpack_from("<3L", data, body)
    length = body + 12 - at
    if (crc, compressed, size) != (entry.crc, entry.compressed, entry.size):
        return length, Finding(
            Reason.DATA_DESCRIPTOR_MISMATCH,
            f"data descriptor says crc {crc:08x}, {compressed} -> {size} bytes; the directory "
            f"{entry.crc:08x}, {entry.compressed} -> {entry.size}",
        )
    return length, None


def _local_end(data: bytes, entry: _Entry, name: str) -> tuple[int, list[Finding]]:
    """Where a member (local header, data, descriptor) ends, and how its local header disagrees
    with its directory entry."""
    at = entry.offset
    if at + LOCAL_HEADER.size > len(data) or data[at : at + 4] != LOCAL_MAGIC:
        return at, [
            Finding(Reason.CORRUPT_MEMBER, "no local header where the directory points", name)
        ]
    fields = LOCAL_HEADER.unpack_from(data, at)
    flags, method, crc, compressed, size = fields[3], fields[4], fields[7], fields[8], fields[9]
    name_len, extra_len = fields[10], fields[11]
    local_name = data[at + LOCAL_HEADER.size : at + LOCAL_HEADER.size + name_len]
    differ = []
    if local_name != entry.name:
        differ.append(f"name {local_name[:80]!r}")
    if flags != entry.flags:
        differ.append(f"flags {flags:#06x} (directory {entry.flags:#06x})")
    if method != entry.method:
        differ.append(f"method {method} (directory {entry.method})")
    described = entry.flags & 0x8
    if not (described and (crc, compressed, size) == (0, 0, 0)) and (crc, compressed, size) != (
        entry.crc,
        entry.compressed,
        entry.size,
    ):
        differ.append(
            f"crc {crc:08x}, {compressed} -> {size} bytes (directory {entry.crc:08x}, "
            f"{entry.compressed} -> {entry.size})"
        )
    found = (
        [Finding(Reason.LOCAL_HEADER_MISMATCH, "local header says " + "; ".join(differ), name)]
        if differ
        else []
    )
    end = at + LOCAL_HEADER.size + name_len + extra_len + entry.compressed
    if described:
        length, problem = _descriptor(data, end, entry)
        end += length
        if problem is not None:
            found.append(Finding(problem.reason, problem.message, name))
    return end, found


def layout(data: bytes) -> list[Finding]:
    """Every way the archive's bytes could be read in more than one way (empty: exactly one)."""
    end_at = len(data) - END_RECORD.size
    if end_at < 0 or data[end_at : end_at + 4] != END_MAGIC:
        last = data.rfind(END_MAGIC)
        return [
            Finding(
                Reason.STRAY_BYTES,
                f"{len(data) - last - END_RECORD.size} bytes after the end record (an archive "
                "comment, trailing data or a concatenated archive)"
                if last >= 0
                else "no end-of-directory record",
            )
        ]
    fields = END_RECORD.unpack_from(data, end_at)
    disk, cd_disk, on_disk, count, cd_size, cd_offset = fields[1:7]
    if (disk, cd_disk) != (0, 0) or on_disk != count:
        return [Finding(Reason.STRAY_BYTES, "a multi-disk (split) archive")]
    if cd_offset + cd_size != end_at:
        return [
            Finding(
                Reason.STRAY_BYTES,
                f"the directory ({cd_size} bytes at {cd_offset}) does not end where the end "
                f"record starts ({end_at}): data before the archive, a zip64 record, or a "
                "concatenated archive",
            )
        ]
    entries = _central_entries(data, cd_offset, end_at, count)
    if isinstance(entries, Finding):
        return [entries]
    found: list[Finding] = []
    position = 0
    for entry in sorted(entries, key=lambda e: e.offset):
        name = entry.name.decode("utf-8", "replace")[:200]
        if entry.offset > position:
            where = "before the first member" if position == 0 else "between members"
            found.append(
                Finding(Reason.STRAY_BYTES, f"{entry.offset - position} bytes {where}", name)
            )
        elif entry.offset < position:
            found.append(
                Finding(Reason.OVERLAPPING_MEMBERS, "its data overlaps the member before it", name)
            )
        end, problems = _local_end(data, entry, name)
        found += problems
        position = max(position, end)
    if position < cd_offset:
        found.append(
            Finding(
                Reason.STRAY_BYTES, f"{cd_offset - position} bytes before the central directory"
            )
        )
    elif position > cd_offset:
        found.append(Finding(Reason.OVERLAPPING_MEMBERS, "member data runs into the directory"))
    return found


def read_limited(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, limits: Limits, budget: int
) -> bytes:
    """Decompress, counting real bytes: raise _TooBig past any cap, whatever the header says."""
    out = bytearray()
    with archive.open(info) as stream:
        while chunk := stream.read(CHUNK):
            out += chunk
            if len(out) > limits.max_member_bytes:
                raise _TooBig(f"decompresses past the {limits.max_member_bytes} byte member cap")
            if len(out) > budget:
                raise _TooBig(
                    f"the archive decompresses past the {limits.max_total_bytes} byte total cap"
                )
            if len(out) > limits.ratio_floor_bytes and len(out) > limits.max_ratio * max(
                info.compress_size, 1
            ):
                raise _TooBig(f"compression ratio above {limits.max_ratio:g}:1")
    return bytes(out)


def read_archive_bytes(path: Path, limits: Limits) -> bytes | Finding:
    try:
        with open(path, "rb") as handle:
            data = handle.read(limits.max_archive_bytes + 1)
    except OSError as error:
        return Finding(Reason.NOT_A_ZIP, f"cannot be read: {error.strerror or error}", str(path))
    if len(data) > limits.max_archive_bytes:
        return Finding(
            Reason.ARCHIVE_TOO_LARGE, f"larger than {limits.max_archive_bytes} bytes", str(path)
        )
    return data


def open_zip(data: bytes, path: Path) -> zipfile.ZipFile | Finding:
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, struct.error) as error:
        if "overlap" in str(error).lower():  # newer Pythons check this themselves
            return Finding(Reason.OVERLAPPING_MEMBERS, str(error), str(path))
        if data[:4] == LOCAL_MAGIC:
            return Finding(
                Reason.TRUNCATED,
                f"starts as a zip archive but its directory is missing or cut ({error})",
                str(path),
            )
        return Finding(Reason.NOT_A_ZIP, f"not a zip archive ({error})", str(path))


def member_findings(infos: list[zipfile.ZipInfo]) -> tuple[list[Finding], set[int]]:
    """Name, type and duplicate problems, and the indices of members that must not be read."""
    found, refused = [], set()
    for index, info in enumerate(infos):
        problem = name_problem(info.orig_filename) or type_problem(info)
        if problem:
            found.append(Finding(problem[0], problem[1], info.orig_filename[:200]))
            refused.add(index)
    counts = Counter(info.filename.replace("\\", "/").casefold() for info in infos)
    for name, count in counts.items():
        if count > 1:
            found.append(
                Finding(
                    Reason.DUPLICATE_NAME,
                    f"{count} members have this name (ignoring case)",
                    name[:200],
                )
            )
            refused |= {
                i
                for i, info in enumerate(infos)
                if info.filename.replace("\\", "/").casefold() == name
            }
    return found, refused


def read_members(
    archive: zipfile.ZipFile, infos: list[zipfile.ZipInfo], refused: set[int], limits: Limits
) -> tuple[dict[str, bytes], list[Finding]]:
    members: dict[str, bytes] = {}
    found = []
    budget = limits.max_total_bytes
    for index, info in enumerate(infos):
        if index in refused or info.is_dir():
            continue
        if info.file_size > limits.max_member_bytes:
            found.append(
                Finding(
                    Reason.ZIP_BOMB,
                    f"declares {info.file_size} bytes, past the member cap",
                    info.filename,
                )
            )
            continue
        try:
            content = read_limited(archive, info, limits, budget)
        except _TooBig as error:
            found.append(Finding(Reason.ZIP_BOMB, str(error), info.filename))
            continue
        except (
            zipfile.BadZipFile,
            zlib.error,
            EOFError,
            OSError,
            ValueError,
            RuntimeError,
            NotImplementedError,
        ) as error:
            found.append(
                Finding(Reason.CORRUPT_MEMBER, f"{type(error).__name__}: {error}", info.filename)
            )
            continue
        budget -= len(content)
        members[info.filename] = content
    return members, found


def open_archive(path: Path, limits: Limits = Limits()) -> Opened:
    data = read_archive_bytes(Path(path), limits)
    if isinstance(data, Finding):
        return Opened({}, (data,), fatal=True)
    archive = open_zip(data, Path(path))
    if isinstance(archive, Finding):
        return Opened({}, (archive,), fatal=True)
    with archive:
        infos = archive.infolist()
        if len(infos) > limits.max_members:
            return Opened(
                {},
                (
                    Finding(
                        Reason.TOO_MANY_MEMBERS,
                        f"{len(infos)} members, at most {limits.max_members}",
                    ),
                ),
                fatal=True,
            )
        found, refused = member_findings(infos)
        found += layout(data)
        if any(f.reason in (Reason.OVERLAPPING_MEMBERS, Reason.CORRUPT_MEMBER) for f in found):
            return Opened({}, tuple(found), fatal=True)
        members, read_problems = read_members(archive, infos, refused, limits)
    return Opened(members, tuple(found + read_problems), entries=tuple(i.filename for i in infos))
