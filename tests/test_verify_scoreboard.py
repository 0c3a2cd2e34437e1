"""The scoreboard's own rules (issue 9 §1 trust defaults) and its layout (issue 9 §4).

Bundles are genuine (ort:cpu, core restricted to mlp) and rewritten the way a submitter could:
the same bundle twice, the same results under another name, unsigned, or signed by a key the
trusted-keys file does not list for the submitter the bundle attests.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from certify_fixtures import HOSTILE, MANIFEST, MLP_CORE, RESULTS, edit_json, resign, rewrite
from click.testing import CliRunner
from test_report import OpenedReport, browser  # noqa: F401 - the browser fixture

from conformance.certify import keys
from conformance.certify.certify import certify
from conformance.certify.command import scoreboard_command
from conformance.certify.context import load_context
from conformance.certify.interface import CertifyRequest, Reason
from conformance.certify.scoreboard import build_scoreboard, entry_of, load_trusted_keys
from conformance.certify.scoreboard_html import render_scoreboard
from conformance.certify.verify import verify_bundle

LONG = "a-very-long-runtime-description-that-a-vendor-wrote-without-any-spaces-at-all-" * 2


@pytest.fixture(scope="module")
def context():
    return load_context(profiles=MLP_CORE)


@pytest.fixture(scope="module")
def made(tmp_path_factory, context):
    """Two vendors' genuine signed bundles, and their keys."""
    folder = tmp_path_factory.mktemp("board")
    out = {}
    for vendor in ("alpha", "beta"):
        system = folder / f"{vendor}.json"
        system.write_text(
            json.dumps({"submitter": vendor, "system_name": "box", "status": "available"})
        )
        pair = keys.generate(folder / f"{vendor}.pem")
        request = CertifyRequest(
            "ort:cpu", ("core",), system, folder / f"{vendor}.zip", pair.private_path
        )
        out[vendor] = (certify(request, context).bundle, pair)
    return out


def trusted_file(tmp_path: Path, mapping: dict) -> Path:
    path = tmp_path / "trusted.json"
    path.write_text(json.dumps(mapping))
    return path


def board_of(paths, context, trusted=None):
    entries = [entry_of(p, verify_bundle(p, context)) for p in paths]
    return build_scoreboard(entries, context, trusted)


def test_trusted_keys_compare_only_bundles_signed_by_their_submitters_key(made, context, tmp_path):
    (alpha, alpha_key), (beta, _) = made["alpha"], made["beta"]
    trusted = load_trusted_keys(
        trusted_file(tmp_path, {"alpha": [f"sha256:{alpha_key.fingerprint}"]})
    )
    # beta's bundle re-signed by alpha's key still attests submitter beta
    impostor = resign(beta, tmp_path / "impostor.zip", alpha_key.private_path)
    unsigned = rewrite(alpha, tmp_path / "unsigned.zip", {"signature.json": None})
    board = board_of([alpha, beta, impostor, unsigned], context, trusted)
    assert [e.path for e in board.compared] == [str(alpha)]
    refused = {Path(e.path).name: e.reasons for e in board.excluded}
    assert refused == {
        "beta.zip": (Reason.UNTRUSTED_SIGNER,),
        "impostor.zip": (Reason.UNTRUSTED_SIGNER,),
        "unsigned.zip": (Reason.UNTRUSTED_SIGNER,),
    }


def test_without_trusted_keys_every_compared_bundle_is_marked_untrusted(made, context):
    board = board_of([made["alpha"][0], made["beta"][0]], context)
    assert len(board.compared) == 2 and not board.trusted_keys
    html = render_scoreboard(board)
    assert html.count("signer not trusted</strong>") == 2


def test_a_bundle_counted_twice_is_refused(made, context, tmp_path):
    alpha = made["alpha"][0]
    copy = tmp_path / "copy.zip"
    copy.write_bytes(alpha.read_bytes())
    renamed = rewrite(  # the same results, re-packed under another system name and re-signed
        alpha,
        tmp_path / "renamed-unsigned.zip",
        {
            "system.json": edit_json(
                alpha, "system.json", lambda d: d["attested"].update(system_name="x")
            )
        },
    )
    renamed = resign(renamed, tmp_path / "renamed.zip", made["alpha"][1].private_path)
    assert verify_bundle(renamed, context).verified
    board = board_of([alpha, copy, renamed], context)
    assert [e.path for e in board.compared] == [str(alpha)]
    assert [e.reasons for e in board.excluded] == [(Reason.DUPLICATE_BUNDLE,)] * 2


def test_scoreboard_cli_takes_trusted_keys_and_refuses_bad_files(made, tmp_path):
    alpha, alpha_key = made["alpha"]
    good = trusted_file(tmp_path, {"alpha": [alpha_key.fingerprint]})
    result = CliRunner().invoke(
        scoreboard_command,
        [str(alpha), "--trusted-keys", str(good), "-o", str(tmp_path / "b.html"), "--pack"]
        + [str(load_context().pack.directory)],
    )
    assert result.exit_code == 0, result.output
    for bad in ({"alpha": ["not-a-fingerprint"]}, ["alpha"], {"alpha": []}):
        result = CliRunner().invoke(
            scoreboard_command,
            [str(alpha), "--trusted-keys", str(trusted_file(tmp_path, bad))],
        )
        assert result.exit_code == 2 and result.output.startswith("error:"), result.output


def test_scoreboard_prints_bundle_strings_escaped(made, tmp_path):
    alpha = made["alpha"][0]
    forged = "ort:cpu\x1b[2K\rbeta.zip: ort:cpu: compared\n"
    bundle = rewrite(
        alpha,
        tmp_path / "forged.zip",
        {MANIFEST: edit_json(alpha, MANIFEST, lambda d: d.update(target=forged))},
    )
    result = CliRunner().invoke(scoreboard_command, [str(bundle), "-o", str(tmp_path / "b.html")])
    assert result.exit_code == 0, result.output
    assert not any(c in result.output.replace("\n", "") for c in "\x1b\r")
    assert "NOT COMPARED" in result.output and "\\x1b[2K\\rbeta.zip" in result.output


# ---- layout in the real browser ----

CLIPPED = """() => {
  const wrap = document.querySelector('#targets .matrix-wrap');
  const frame = wrap.getBoundingClientRect();
  const heads = [...wrap.querySelectorAll('thead th')].map(th => th.textContent.trim());
  const column = heads.indexOf('verification');
  const cells = [...wrap.querySelectorAll('tbody tr')].map(tr => tr.children[column]);
  return {
    scrolls: wrap.scrollWidth > wrap.clientWidth + 1,
    page_scrolls: document.documentElement.scrollWidth > window.innerWidth + 1,
    clipped: cells.filter(c => c.getBoundingClientRect().right > frame.right + 1).length,
    cells: cells.length,
  };
}"""


@pytest.mark.parametrize("width", [400, 1400, 1600])
def test_scoreboard_verification_column_is_not_clipped(
    browser,  # noqa: F811 - the pytest fixture
    made,
    context,
    tmp_path,
    width,
):
    alpha, (beta, beta_key) = made["alpha"][0], made["beta"]
    hostile = rewrite(
        beta,
        tmp_path / "hostile-unsigned.zip",
        {
            "system.json": edit_json(
                beta,
                "system.json",
                lambda d: d["attested"].update(system_name=HOSTILE + LONG, submitter=LONG),
            ),
            RESULTS: edit_json(
                beta, RESULTS, lambda d: d["run"].update(started_at="2020-01-01T00:00:00+00:00")
            ),
        },
    )
    hostile = resign(hostile, tmp_path / "hostile.zip", beta_key.private_path)
    path = tmp_path / "scoreboard.html"
    path.write_text(render_scoreboard(board_of([alpha, beta, hostile], context)))
    view = OpenedReport(browser, path, width=width)
    view.page.screenshot(path=str(tmp_path / f"scoreboard-{width}.png"), full_page=True)
    layout = view.page.evaluate(CLIPPED)
    if width < 640:  # a phone: the table scrolls inside its frame, the page never sideways
        assert not layout["page_scrolls"] and layout["cells"] == 3, layout
    else:
        assert layout == {"scrolls": False, "page_scrolls": False, "clipped": 0, "cells": 3}, layout
    view.assert_quiet()
