"""Open an untrusted zip archive safely: read its members into memory, within limits.

Nothing is extracted to disk and nothing in the archive is executed. Every member name is checked
(absolute paths, ``..``, control characters, duplicates, links and special files) and a member
that breaks a rule is never read. Sizes are counted while decompressing, never taken from the
headers; a member stops being read as soon as it passes the per-member cap, the total cap or the
compression-ratio cap (a zip bomb). Members whose local data overlap (the overlapping-entry bomb)
are refused.
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


@dataclass(frozen=True)
class Opened:
    """The members that could be read safely (name -> bytes) and every rule the archive broke.

    ``fatal``: the archive could not be opened at all, so ``members`` is empty.
    """

    members: dict[str, bytes]
    findings: tuple[Finding, ...]
    fatal: bool = False


class _TooBig(Exception):
    pass


def name_problem(raw: str) -> tuple[Reason, str] | None:
    """Why a member name is unsafe, or None. ``raw`` is the name as stored, before zipfile's cleanup."""
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


def overlaps(data: bytes, infos: list[zipfile.ZipInfo], central_start: int) -> list[Finding]:
    """Each member's local header and data must end before the next member (or the central directory)."""
    found = []
    ordered = sorted(infos, key=lambda i: i.header_offset)
    bounds = [i.header_offset for i in ordered[1:]] + [central_start]
    for info, limit in zip(ordered, bounds):
        header = data[info.header_offset : info.header_offset + LOCAL_HEADER.size]
        if len(header) < LOCAL_HEADER.size or header[:4] != LOCAL_MAGIC:
            found.append(
                Finding(
                    Reason.CORRUPT_MEMBER,
                    "no local header where the directory points",
                    info.filename,
                )
            )
            continue
        fields = LOCAL_HEADER.unpack(header)
        end = info.header_offset + LOCAL_HEADER.size + fields[10] + fields[11] + info.compress_size
        if end > limit:
            found.append(
                Finding(
                    Reason.OVERLAPPING_MEMBERS,
                    "its data overlaps the next member or the directory",
                    info.filename,
                )
            )
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
        found += overlaps(data, infos, getattr(archive, "start_dir", len(data)))
        if any(f.reason in (Reason.OVERLAPPING_MEMBERS, Reason.CORRUPT_MEMBER) for f in found):
            return Opened({}, tuple(found), fatal=True)
        members, read_problems = read_members(archive, infos, refused, limits)
    return Opened(members, tuple(found + read_problems))
