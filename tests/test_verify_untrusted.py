"""conformance.untrusted: printing and parsing what the suite did not write (contract C)."""

from __future__ import annotations

import json

import pytest

from conformance.untrusted import UntrustedInputError, loads_strict_json, printable

LIMIT = 1 << 20


@pytest.mark.parametrize(
    "text",
    [
        "1e999",
        "-1e999",
        "[1e400]",
        '{"margin": 1E+999}',
        "NaN",
        "[Infinity]",
        "[-Infinity]",
        '{"a": 1, "a": 2}',
        "[" + "9" * 40 + "]",
        "[" * 65 + "]" * 65,
        "[1] [2]",
    ],
)
def test_strict_json_refuses_what_two_readers_could_read_differently(text):
    with pytest.raises(UntrustedInputError):
        loads_strict_json(text, max_bytes=LIMIT)
    with pytest.raises(ValueError):  # the contract: a ValueError subclass
        loads_strict_json(text.encode(), max_bytes=LIMIT)


def test_strict_json_refuses_oversize_and_non_utf8_input():
    with pytest.raises(UntrustedInputError, match="larger than the 10 byte limit"):
        loads_strict_json(b"[" + b"1," * 10 + b"1]", max_bytes=10)
    with pytest.raises(UntrustedInputError, match="not UTF-8"):
        loads_strict_json(b'"\xff"', max_bytes=LIMIT)


def test_strict_json_reads_ordinary_documents_unchanged():
    document = {"a": [1, -2.5, 1e308, None, True, "x\u00e9"], "b": {"c": [[[]]]}, "n": 2**62}
    assert loads_strict_json(json.dumps(document), max_bytes=LIMIT) == document
    assert loads_strict_json("[" * 64 + "]" * 64, max_bytes=LIMIT) is not None


def test_the_bundle_reader_refuses_an_overflowing_number():
    from conformance.certify import strict_json

    with pytest.raises(strict_json.MalformedJson, match="infinity"):
        strict_json.loads(b'{"margin": 1e999}')


@pytest.mark.parametrize(
    "char",
    ["\x1b", "\r", "\n", "\x00", "\x07", "\x7f", "\x85", "\x9b", "\u202e", "\u2066", "\u2028"],
)
def test_printable_escapes_every_control_character(char):
    shown = printable(f"id{char}[2KVERIFIED")
    assert char not in shown and shown.startswith("id\\") and shown.endswith("[2KVERIFIED")
    assert all(c.isprintable() for c in shown)


def test_printable_keeps_ordinary_text_and_cuts_with_an_ellipsis():
    assert (
        printable("mlp-torch-dynamo-batch1-ort:cpu é 日本")
        == "mlp-torch-dynamo-batch1-ort:cpu é 日本"
    )
    assert printable(42) == "42"
    assert printable("abcdefghij", 5) == "abcd…"
    assert printable("\x1b" * 10, 7) == "\\x1b…"  # an escape is never split
    assert printable("short", 5) == "short"


def test_certify_refuses_a_system_file_with_an_overflowing_number_before_running(tmp_path):
    """Issue 9 §1: `1e999` was read as infinity and certify failed only at the end."""
    from click.testing import CliRunner

    from conformance.certify.command import certify_command

    system = tmp_path / "system.json"
    system.write_text('{"submitter": "v", "system_name": "s", "host_memory_gb": 1e999}')
    out = tmp_path / "bundle.zip"
    work = tmp_path / "run"
    args = ["--target", "ort:cpu", "--system", str(system), "--out", str(out)]
    result = CliRunner().invoke(certify_command, [*args, "--work-dir", str(work)])
    assert result.exit_code == 2 and result.output.startswith("error:"), result.output
    assert "infinity" in result.output and str(system) in result.output
    assert not out.exists() and not work.exists()  # nothing ran
