"""The commands: certify, verify, scoreboard, keygen. Errors become messages and exit codes here
only.

Exit codes: certify 0 every profile certified, 1 not certified (the bundle is written either way);
verify 0 every bundle VERIFIED (every rule holds and it is signed by the trusted --public-key),
1 some bundle REJECTED, 3 UNVERIFIED-SIGNER (every rule holds, but the signer is not checked
against a trusted key: unsigned, or no --public-key); scoreboard 0 written; all 2 on bad input.
verify prints its verdict from ``Verification.verdict``, the same value its exit code comes from.

Every string that comes from a bundle or a results file (target names, check ids, findings,
notes) is printed through ``conformance.untrusted.printable``, so no control character or escape
sequence in it reaches the terminal: it cannot hide the verdict line or forge one.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import NoReturn

import click

from conformance.certify.context import SpecContext, load_context
from conformance.certify.interface import (
    EXIT_CODES,
    REJECTED,
    UNVERIFIED_SIGNER,
    VERIFIED,
    CertifyError,
    CertifyRequest,
    CertifyUsageError,
    Verification,
)
from conformance.run.session import REPORTS_DIR
from conformance.spec import PACK_DIR
from conformance.untrusted import printable

FINDINGS_PER_REASON = 8
DEFAULT_SCOREBOARD = REPORTS_DIR / "scoreboard.html"


def usage_error(error: Exception) -> NoReturn:
    click.echo(f"error: {error}", err=True)
    sys.exit(2)


def echo_lines(text: str) -> None:
    """Print progress line by line, each through ``printable`` (a runtime's or an adapter's
    message can carry escape sequences)."""
    for line in str(text).split("\n"):
        click.echo(printable(line))


def context_or_exit(pack_dir: Path) -> SpecContext:
    try:
        return load_context(pack_dir)
    except CertifyUsageError as error:
        usage_error(error)


@click.command("certify")
@click.option(
    "--target",
    required=True,
    help="The target to certify, e.g. ort:cpu or a vendor's entry-point target.",
)
@click.option(
    "--profile",
    "profiles",
    multiple=True,
    default=("core",),
    show_default=True,
    help="Profile of spec/profiles.json (repeatable): core, perf, ops, fp16, bf16, int8.",
)
@click.option(
    "--system",
    "system_path",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="The vendor's system description (JSON; spec/schemas/system.schema.json#/$defs/attested).",
)
@click.option(
    "--key",
    "key_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Ed25519 private key (PEM) to sign the bundle with (conformance keygen).",
)
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="The bundle to write (.zip).",
)
@click.option(
    "--work-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Keep the run folder here (default: a temporary folder).",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=float,
    default=None,
    help="Per-request timeout in seconds (default: spec).",
)
@click.option(
    "--pack", "pack_dir", type=click.Path(path_type=Path), default=PACK_DIR, show_default=True
)
@click.option(
    "--op",
    "op_types",
    multiple=True,
    help="Profile ops: only the cases of this op type (repeatable), e.g. Softmax.",
)
@click.option(
    "--case",
    "op_cases",
    multiple=True,
    help="Profile ops: only cases whose name matches this glob (repeatable).",
)
@click.option(
    "--set",
    "op_sets",
    multiple=True,
    help="Profile ops: only this case set: node, simple, pytorch-converted, pytorch-operator.",
)
def certify_command(
    target: str,
    profiles: tuple[str, ...],
    system_path: Path,
    key_path: Path | None,
    out_path: Path,
    work_dir: Path | None,
    timeout_s: float | None,
    pack_dir: Path,
    op_types: tuple[str, ...],
    op_cases: tuple[str, ...],
    op_sets: tuple[str, ...],
) -> None:
    """Run what the profiles require on TARGET and write a certification bundle."""
    from conformance.certify.certify import certify, outcome_lines

    context = context_or_exit(pack_dir)
    request = CertifyRequest(
        target,
        profiles,
        system_path,
        out_path,
        key_path,
        work_dir,
        timeout_s,
        op_types,
        op_cases,
        op_sets,
    )
    try:
        outcome = certify(request, context, progress=echo_lines)
    except CertifyUsageError as error:
        usage_error(error)
    except CertifyError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    click.echo("")
    for line in outcome_lines(outcome.outcomes):
        click.echo(printable(line))
    click.echo(
        f"bundle: {printable(outcome.bundle)} ({'signed' if outcome.signed else 'unsigned'})"
    )
    click.echo(
        f"{'CERTIFIED' if outcome.certified else 'NOT CERTIFIED'}: {printable(target)} for "
        f"{', '.join(printable(o.profile) for o in outcome.outcomes)}"
    )
    sys.exit(0 if outcome.certified else 1)


def recomputed(verification: Verification) -> str:
    cases = verification.op_table["cases"] if verification.op_table is not None else 0
    also = f" and {cases} operator cases" if cases else ""
    return f"{len(verification.checks)} checks{also} recomputed"


def verdict_line(verification: Verification) -> str:
    """The last line verify prints for a bundle; nothing from the bundle is in it unescaped."""
    if verification.verdict == VERIFIED:
        return f"VERIFIED: every rule holds ({recomputed(verification)}), signed by the trusted key"
    if verification.verdict == UNVERIFIED_SIGNER:
        who = "unsigned" if not verification.signature.present else "signer not trusted"
        return (
            f"UNVERIFIED-SIGNER: integrity ok, {who}: every rule holds "
            f"({recomputed(verification)}), but nothing says who made the "
            "bundle (pass the vendor's published key with --public-key)"
        )
    return (
        f"REJECTED: {len(verification.reasons)} rule(s) broken: "
        f"{', '.join(str(r) for r in verification.reasons)}"
    )


def render_verification(verification: Verification) -> list[str]:
    """Every line is ``printable``: one line per entry, no control character from the bundle."""
    manifest = verification.manifest
    lines = [f"bundle: {verification.bundle}"]
    if manifest:
        lines.append(
            f"target {printable(manifest.get('target'), 200)} · spec "
            f"{printable(manifest.get('spec_version'), 40)} · pack "
            f"{printable(manifest.get('pack_digest'), 16)}... · suite "
            f"{printable(manifest.get('suite_version'), 40)}"
        )
    lines.append(f"signature: {verification.signature.describe()}")
    caveat = "" if verification.verified else " [the bundle is rejected: this certifies nothing]"
    for outcome in verification.outcomes:
        lines.append(
            f"profile {outcome.profile}: {outcome.status.upper()} (recomputed: {outcome.passed}/"
            f"{outcome.required} required passed){caveat}"
        )
        lines += [f"  - {reason}" for reason in outcome.reasons]
    table = verification.op_table
    if table is not None:
        cov = table["coverage"]
        lines.append(
            f"op table (recomputed from {table['cases']} case records): {cov['all_passing']} op "
            f"types every case passes, {cov['tested']} tested, {cov['total']} in the table"
        )
    for a in verification.accuracy:
        figures = (
            f"accuracy {a.accuracy:.4f}, {a.relative:.4f} of fp32, tier {a.tier}, top-1 "
            f"agreement {a.top1_agreement:.4f}"
            if a.accuracy is not None and a.relative is not None and a.top1_agreement is not None
            else f"no figures (verdict {a.verdict})"
        )
        lines.append(f"accuracy {a.model}/{a.exporter} ({a.precision}): {figures} (recomputed)")
    lines += [f"note: {note}" for note in verification.notes]
    by_reason = defaultdict(list)
    for finding in verification.findings:
        by_reason[finding.reason].append(finding)
    for reason, found in by_reason.items():
        lines.append(f"  {reason} ({len(found)})")
        lines += [
            f"    {f.subject + ': ' if f.subject else ''}{f.message}"
            for f in found[:FINDINGS_PER_REASON]
        ]
        if len(found) > FINDINGS_PER_REASON:
            lines.append(f"    and {len(found) - FINDINGS_PER_REASON} more")
    return [printable(line, 2000) for line in lines] + [verdict_line(verification)]


def as_json(verification: Verification) -> dict:
    return {
        "bundle": verification.bundle,
        "verdict": verification.verdict,
        "verified": verification.verdict == VERIFIED,
        "integrity_ok": verification.verified,
        "signer_trusted": verification.signer_trusted,
        "exit_code": verification.exit_code,
        "reasons": list(verification.reasons),
        "findings": [
            {"reason": str(f.reason), "subject": f.subject, "message": f.message}
            for f in verification.findings
        ],
        "notes": list(verification.notes),
        "target": verification.manifest.get("target"),
        "profiles": {o.profile: o.as_dict() for o in verification.outcomes},
        "signature": verification.signature.describe(),
        "op_coverage": (verification.op_table or {}).get("coverage"),
        "accuracy": [
            {
                "id": a.record_id,
                "precision": a.precision,
                "accuracy": a.accuracy,
                "relative": a.relative,
                "tier": a.tier,
                "top1_agreement": a.top1_agreement,
                "passed": a.passed,
            }
            for a in verification.accuracy
        ],
    }


VERIFY_EPILOG = (
    "Verdicts and exit codes: VERIFIED (0): every rule holds and the bundle is signed by the "
    "--public-key given. REJECTED (1): some rule is broken (each one is named). "
    "UNVERIFIED-SIGNER (3): every rule holds, but the signer is not checked against a trusted "
    "key (the bundle is unsigned, or no --public-key was given): integrity only, not authorship. "
    "2: bad input. With several bundles the exit code is the worst: 1, then 3, then 0."
)


@click.command("verify", epilog=VERIFY_EPILOG)
@click.argument("bundles", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--public-key",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="The vendor's published Ed25519 public key: the bundle must be signed by it.",
)
@click.option(
    "--rerun",
    is_flag=True,
    help="Also re-execute a random sample of the checks here (same target).",
)
@click.option(
    "--sample",
    "sample",
    type=click.IntRange(1),
    default=8,
    show_default=True,
    help="How many checks --rerun re-executes.",
)
@click.option(
    "--seed", type=int, default=None, help="Seed of the --rerun sample (default: random, printed)."
)
@click.option(
    "--allow-plugin",
    "allow_plugins",
    multiple=True,
    metavar="NAME",
    help="Let --rerun import this plug-in target (its base name, e.g. acme or "
    "backend:pkg.mod:Class; repeatable). Only for a bundle signed by the --public-key.",
)
@click.option(
    "--json", "json_out", is_flag=True, help="Print one JSON object per bundle instead of text."
)
@click.option(
    "--pack", "pack_dir", type=click.Path(path_type=Path), default=PACK_DIR, show_default=True
)
def verify_command(
    bundles: tuple[Path, ...],
    public_key: Path | None,
    rerun: bool,
    sample: int,
    seed: int | None,
    allow_plugins: tuple[str, ...],
    json_out: bool,
    pack_dir: Path,
) -> None:
    """Verify certification bundles offline; name every rule each one breaks."""
    from conformance.certify.verify import VerifyOptions, verify_bundle

    missing = [str(b) for b in bundles if not b.is_file()]
    if missing:
        usage_error(CertifyUsageError(f"no such bundle: {', '.join(missing)}"))
    context = context_or_exit(pack_dir)
    options = VerifyOptions(
        public_key=public_key,
        rerun=sample if rerun else 0,
        seed=seed,
        allow_plugins=allow_plugins,
    )
    results = []
    for path in bundles:
        try:
            verification = verify_bundle(path, context, options)
        except CertifyUsageError as error:
            usage_error(error)
        results.append(verification)
        if json_out:
            click.echo(json.dumps(as_json(verification)))
        else:
            click.echo("\n".join(render_verification(verification)))
    worst = next(
        (v for verdict in (REJECTED, UNVERIFIED_SIGNER) for v in results if v.verdict == verdict),
        results[0],
    )
    sys.exit(EXIT_CODES[worst.verdict])


@click.command("scoreboard")
@click.argument("bundles", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "-o",
    "--out",
    "out_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=DEFAULT_SCOREBOARD,
    show_default=True,
    help="The HTML file to write.",
)
@click.option(
    "--trusted-keys",
    "trusted_keys",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help='JSON {"submitter": ["sha256:<fingerprint>", ...]}: compare only bundles signed by a '
    "key listed for the submitter they attest. Without it every bundle is marked "
    "'signer not trusted'.",
)
@click.option(
    "--pack", "pack_dir", type=click.Path(path_type=Path), default=PACK_DIR, show_default=True
)
def scoreboard_command(
    bundles: tuple[Path, ...], out_path: Path, trusted_keys: Path | None, pack_dir: Path
) -> None:
    """Verify every bundle and compare the verified ones side by side in one HTML page."""
    from conformance.certify.scoreboard import build_scoreboard, entry_of, load_trusted_keys
    from conformance.certify.scoreboard_html import render_scoreboard
    from conformance.certify.verify import verify_bundle
    from conformance.report.command import write_atomically

    missing = [str(b) for b in bundles if not b.is_file()]
    if missing:
        usage_error(CertifyUsageError(f"no such bundle: {', '.join(missing)}"))
    try:
        trusted = load_trusted_keys(trusted_keys) if trusted_keys else None
    except CertifyUsageError as error:
        usage_error(error)
    context = context_or_exit(pack_dir)
    entries = [entry_of(path, verify_bundle(path, context)) for path in bundles]
    board = build_scoreboard(entries, context, trusted)
    for entry in (*board.compared, *board.excluded):
        state = (
            f"compared ({entry.signer})"
            if entry.compared
            else f"NOT COMPARED ({', '.join(str(r) for r in entry.reasons)})"
        )
        click.echo(f"{printable(entry.path)}: {printable(entry.target, 200)}: {state}")
    try:
        write_atomically(out_path, render_scoreboard(board))
    except OSError as error:
        usage_error(error)
    if trusted is None:
        click.echo(
            "warning: no --trusted-keys: signers are not checked; every bundle is marked "
            "'signer not trusted'",
            err=True,
        )
    click.echo(
        f"scoreboard: {out_path} ({len(board.compared)} compared, "
        f"{len(board.excluded)} not compared)"
    )


@click.command("keygen")
@click.option(
    "--out",
    "private_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("vendor_key.pem"),
    show_default=True,
    help="The private key to write; the public key goes beside it as .pub.",
)
@click.option("--force", is_flag=True, help="Overwrite an existing key pair.")
def keygen_command(private_path: Path, force: bool) -> None:
    """Make an Ed25519 key pair for signing bundles (keep the .pem private, publish the .pub)."""
    from conformance.certify.keys import generate

    try:
        pair = generate(private_path, overwrite=force)
    except CertifyUsageError as error:
        usage_error(error)
    click.echo(f"private key: {pair.private_path} (keep it secret)")
    click.echo(f"public key:  {pair.public_path} (publish it; verifiers pass it as --public-key)")
    click.echo(f"fingerprint: sha256:{pair.fingerprint}")
