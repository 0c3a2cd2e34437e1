"""`conformance verify`, offline: open the bundle safely, then check every rule and name each one
broken.

Stages: the archive (safe_zip) -> the manifest and its schema -> the signature -> every member's
sha256 -> the JSON members and their schemas -> versions (spec version, pinned pack digest) ->
consistency between members -> every check recomputed, every profile outcome recomputed and
compared with the claim -> optionally a re-execution sample (rerun). A stage that lacks its input
(an unreadable manifest) is skipped with a note; every other stage still runs, so one pass names
every broken rule. Nothing in the bundle is executed, unpickled or written to disk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.certify import keys, schemas, strict_json
from conformance.certify.bundle import (
    ENVIRONMENT,
    MANIFEST,
    OPS,
    REPORT,
    REQUIRED_MEMBERS,
    RESULTS,
    SIGNATURE,
    SYSTEM,
    bundle_report,
    environment_document,
    sha256,
)
from conformance.certify.context import SpecContext
from conformance.certify.interface import (
    AccuracyOutcome,
    CheckOutcome,
    Finding,
    ProfileOutcome,
    Reason,
    SignatureStatus,
    Verification,
)
from conformance.certify.judge import Judged, judge_profiles
from conformance.certify.ops import table_difference
from conformance.certify.safe_zip import Limits, open_archive
from conformance.targets.interface import TargetError, parse_target_name
from conformance.untrusted import TooLargeError, UntrustedInputError, loads_strict_json, printable


@dataclass(frozen=True)
class VerifyOptions:
    public_key: Path | None = None  # the vendor's published key: the bundle must be signed by it
    rerun: int = 0  # re-execute this many randomly chosen checks (0: none)
    seed: int | None = None
    allow_plugins: tuple[str, ...] = ()  # plug-in targets --rerun may import (trusted bundles only)
    limits: Limits = field(default_factory=Limits)


@dataclass
class _Found:
    """What the stages found so far (private to one verification)."""

    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, reason: Reason, message: str, subject: str = "") -> None:
        self.findings.append(Finding(reason, message, subject))


def member_json(members: dict[str, bytes], name: str, found: _Found, limits: Limits) -> Any:
    if name not in members:
        return None  # MISSING_MEMBER comes from the hash stage
    cap = limits.max_results_bytes if name == RESULTS else limits.max_json_bytes
    try:
        return loads_strict_json(members[name], max_bytes=cap, max_values=limits.max_json_values)
    except TooLargeError as error:
        found.add(Reason.TOO_LARGE, f"{error} (the verifier's limits, SPEC §9.3)", name)
    except UntrustedInputError as error:
        found.add(Reason.MALFORMED_JSON, str(error), name)
    return None


def within_limits(results: Any, limits: Limits, found: _Found) -> bool:
    """Whether results.json is small enough to validate and recompute (TOO_LARGE if not)."""
    if not isinstance(results, dict):
        return True
    ops = results.get("ops")
    sections = (
        ("checks", results.get("checks"), limits.max_checks),
        ("benchmarks", results.get("benchmarks"), limits.max_benchmarks),
        ("ops cases", ops.get("cases") if isinstance(ops, dict) else None, limits.max_checks),
    )
    for key, records, cap in sections:
        if isinstance(records, list) and len(records) > cap:
            found.add(
                Reason.TOO_LARGE,
                f"{len(records)} {key} records, more than the verifier's limit of {cap} "
                "(SPEC §9.3): not validated or recomputed",
                RESULTS,
            )
            return False
    return True


def schema_ok(name: str, instance: Any, schema: str, found: _Found, pointer: str = "") -> bool:
    problems = schemas.errors(schema, instance, pointer)
    for problem in problems:
        found.add(Reason.SCHEMA_INVALID, problem, name)
    return not problems


def check_signature(
    members: dict[str, bytes], public_key: Path | None, found: _Found
) -> SignatureStatus:
    trusted = keys.load_public(public_key) if public_key else None
    if SIGNATURE not in members:
        if trusted is not None:
            found.add(
                Reason.UNSIGNED, "a public key was given but the bundle is not signed", SIGNATURE
            )
        return SignatureStatus(False, False)
    try:
        document = strict_json.loads(members[SIGNATURE], 1 << 20)
        if not isinstance(document, dict) or document.get("signed_member") != MANIFEST:
            raise keys.SignatureInvalid(f"does not sign {MANIFEST}")
        key = keys.check(document, members.get(MANIFEST, b""), trusted)
    except (strict_json.MalformedJson, keys.SignatureInvalid) as error:
        found.add(Reason.BAD_SIGNATURE, str(error), SIGNATURE)
        return SignatureStatus(True, False)
    return SignatureStatus(True, True, key, trusted is not None)


def check_hashes(
    members: dict[str, bytes],
    manifest: dict[str, Any],
    found: _Found,
    entries: tuple[str, ...] = (),
) -> None:
    files = manifest.get("files")
    listed: dict[str, Any] = files if isinstance(files, dict) else {}
    for name, digest in listed.items():
        if name not in members:
            found.add(Reason.MISSING_MEMBER, "listed in the manifest but absent (or refused)", name)
        elif sha256(members[name]) != digest:
            found.add(
                Reason.HASH_MISMATCH,
                f"sha256 {sha256(members[name])[:16]}... is not the manifest's "
                f"{str(digest)[:16]}...",
                name,
            )
    for name in REQUIRED_MEMBERS:
        if name not in listed and name not in members:
            found.add(Reason.MISSING_MEMBER, "a bundle must have it", name)
    for name in dict.fromkeys([*entries, *members]):  # folders and refused members too
        if name not in listed and name not in (MANIFEST, SIGNATURE):
            found.add(Reason.UNEXPECTED_MEMBER, "not listed in the manifest", name[:200])


def check_target_name(target: Any, found: _Found) -> None:
    """The bundle's target must be a well-formed target name (parsed only: nothing imported)."""
    try:
        parse_target_name(str(target))
    except TargetError as error:
        found.add(Reason.BAD_TARGET, printable(error, 300), MANIFEST)


def check_report(members: dict[str, bytes], results_ok: bool, found: _Found) -> None:
    """report.html must be the report of results.json: rendered again here and compared."""
    if REPORT not in members or RESULTS not in members:
        return  # MISSING_MEMBER comes from the hash stage
    if not results_ok:
        found.notes.append("report.html not compared: results.json is unreadable or malformed")
        return
    try:
        expected = bundle_report(members[RESULTS])
    except Exception as error:  # rendering untrusted results: any failure is a verdict
        message = f"results.json cannot be rendered ({printable(repr(error), 300)})"
        found.add(Reason.REPORT_MISMATCH, message, REPORT)
        return
    if members[REPORT] != expected:
        found.add(
            Reason.REPORT_MISMATCH,
            "is not the report of results.json (rendered again here, it differs)",
            REPORT,
        )


def check_versions(
    name: str, spec_version: Any, pack_digest: Any, context: SpecContext, found: _Found
) -> None:
    if spec_version != context.spec_version:
        found.add(
            Reason.SPEC_VERSION_MISMATCH,
            f"claims spec {spec_version!r}; this verifier implements spec "
            f"{context.spec_version!r} (verify with the suite release of that spec)",
            name,
        )
    pinned = context.pinned_packs.get(str(spec_version))
    if pack_digest != pinned:
        found.add(
            Reason.PACK_DIGEST_NOT_PINNED,
            f"pack digest {str(pack_digest)[:16]}... is not the pin of spec "
            f"{spec_version!r} ({str(pinned)[:16]}...)"
            if pinned
            else f"spec {spec_version!r} pins no pack",
            name,
        )


def check_consistency(
    manifest: dict[str, Any], results: dict[str, Any], system: Any, environment: Any, found: _Found
) -> None:
    run = results["run"]
    for key in ("suite_version", "spec_version", "pack_version", "pack_digest"):
        if manifest.get(key) != run.get(key):
            found.add(
                Reason.MANIFEST_MISMATCH,
                f"manifest {key} {manifest.get(key)!r} != results {run.get(key)!r}",
            )
    target = manifest.get("target")
    if list(results["targets"]) != [target]:
        found.add(
            Reason.TARGET_MISMATCH,
            f"the bundle is for {target!r}; results.json describes {list(results['targets'])}",
        )
    if run.get("status") != "complete":
        found.add(Reason.RUN_INCOMPLETE, f"run status {run.get('status')!r}", RESULTS)
    if "live" in run:
        found.add(
            Reason.LIVE_RUN, "a live-mode run (re-exported artifacts) cannot certify", RESULTS
        )
    captured = {"target": results["targets"].get(target, {}), "environment": results["environment"]}
    if isinstance(system, dict) and system.get("captured") != captured:
        found.add(Reason.MANIFEST_MISMATCH, "captured fields differ from results.json", SYSTEM)
    if environment is not None and environment != environment_document(results, str(target)):
        found.add(
            Reason.MANIFEST_MISMATCH,
            "is not what results.json says about the run, machine and target",
            ENVIRONMENT,
        )


def check_claims(
    manifest: dict[str, Any], outcomes: tuple[ProfileOutcome, ...], found: _Found
) -> None:
    claimed = manifest.get("profiles") or {}
    for outcome in outcomes:
        claim = claimed.get(outcome.profile) or {}
        if (claim.get("status"), claim.get("required"), claim.get("passed")) != (
            outcome.status,
            outcome.required,
            outcome.passed,
        ):
            found.add(
                Reason.CLAIM_MISMATCH,
                f"claims {claim.get('status')!r} ({claim.get('passed')}/"
                f"{claim.get('required')}); recomputed {outcome.status!r} "
                f"({outcome.passed}/{outcome.required})",
                outcome.profile,
            )


def check_op_table(
    members: dict[str, bytes],
    table: dict[str, Any] | None,
    claims_ops: bool,
    found: _Found,
    limits: Limits,
) -> None:
    """ops.json must be the op table the case records give (rebuilt by the ops profile's
    judge); a bundle without the ops profile has no op table."""
    if table is None:
        if OPS in members and not claims_ops:
            found.add(
                Reason.OP_TABLE_MISMATCH, "an op table, but the bundle claims no ops profile", OPS
            )
        return
    claimed = member_json(members, OPS, found, limits)
    if claimed is None:
        if OPS not in members:
            found.add(Reason.MISSING_MEMBER, "the ops profile's op table is missing", OPS)
        return
    if not schema_ok(OPS, claimed, schemas.OP_TABLE, found):
        return
    if claimed != table:
        found.add(
            Reason.OP_TABLE_MISMATCH,
            "is not the op table the case records give: " + table_difference(claimed, table),
            OPS,
        )


def claimed_precision(context: SpecContext, names: Any) -> str:
    """The precision the claimed profiles judge the checks at (judge_profiles' rule)."""
    for name in names:
        profile = context.profiles.get(str(name))
        if profile is not None and profile.checks is not None:
            return profile.checks.precision
    return "fp32"


def shaped(results: Any) -> bool:
    """Enough structure to recompute from, even where the schema is broken elsewhere (so one pass
    names the schema errors and the recomputed ones)."""
    return (
        isinstance(results, dict)
        and isinstance(results.get("run"), dict)
        and isinstance(results.get("targets"), dict)
        and isinstance(results.get("environment"), dict)
        and isinstance(results.get("checks"), list)
        and all(isinstance(c, dict) for c in results["checks"])
    )


def deep_stages(
    manifest: dict[str, Any],
    results: dict[str, Any],
    system: Any,
    environment: Any,
    context: SpecContext,
    options: VerifyOptions,
    found: _Found,
    signature: SignatureStatus,
    members: dict[str, bytes],
) -> Judged | None:
    """Consistency between members, every check and profile recomputed, the claims, the rerun."""
    try:
        check_consistency(manifest, results, system, environment, found)
    except (KeyError, TypeError, AttributeError) as error:
        found.add(
            Reason.SCHEMA_INVALID, f"cannot be compared with the manifest ({error!r})", RESULTS
        )
    if results["run"].get("pack_digest") != context.pack_digest:
        found.notes.append(
            "checks not recomputed: the bundle was not measured on this verifier's pack"
        )
        return None
    target = str(manifest["target"])
    try:
        judged = judge_profiles(results, context, target, tuple(manifest["profiles"]))
    except Exception as error:  # recomputing untrusted records: any failure is a verdict
        message = f"a record cannot be recomputed ({printable(repr(error), 300)})"
        found.add(Reason.SCHEMA_INVALID, message, RESULTS)
        return None
    found.findings += judged.findings
    found.notes += judged.notes
    check_claims(manifest, judged.outcomes, found)
    claims_ops = any(
        getattr(context.profiles.get(str(name)), "ops", None) for name in manifest["profiles"]
    )
    check_op_table(members, judged.op_table, claims_ops, found, options.limits)
    if options.rerun:
        from conformance.certify.rerun import rerun_sample

        rerun_found, notes = rerun_sample(
            results,
            context,
            target,
            judged.check_map,
            options.rerun,
            options.seed,
            trusted=signature.valid and signature.trusted and not found.findings,
            allowed_plugins=options.allow_plugins,
            precision=claimed_precision(context, manifest["profiles"]),
        )
        found.findings += rerun_found
        found.notes += notes
    return judged


def verify_bundle(
    path: Path, context: SpecContext, options: VerifyOptions = VerifyOptions()
) -> Verification:
    found = _Found()
    opened = open_archive(Path(path), options.limits)
    found.findings += opened.findings
    if opened.fatal:
        return Verification(str(path), tuple(found.findings))
    members = opened.members
    manifest = member_json(members, MANIFEST, found, options.limits)
    if manifest is None and MANIFEST not in members:
        found.add(Reason.MISSING_MEMBER, "no manifest: nothing can be verified", MANIFEST)
    manifest_ok = isinstance(manifest, dict) and schema_ok(
        MANIFEST, manifest, schemas.MANIFEST, found
    )
    manifest = manifest if isinstance(manifest, dict) else {}
    signature = check_signature(members, options.public_key, found)
    check_hashes(members, manifest, found, opened.entries)
    results = member_json(members, RESULTS, found, options.limits)
    if not within_limits(results, options.limits, found):
        results = None
    system = member_json(members, SYSTEM, found, options.limits)
    environment = member_json(members, ENVIRONMENT, found, options.limits)
    if system is not None:
        schema_ok(SYSTEM, system, schemas.SYSTEM, found)
    results_ok = results is not None and schema_ok(RESULTS, results, schemas.RESULTS, found)
    check_report(members, results_ok, found)
    if manifest_ok:
        check_versions(MANIFEST, manifest["spec_version"], manifest["pack_digest"], context, found)
        check_target_name(manifest.get("target"), found)
    if shaped(results):
        check_versions(
            RESULTS,
            results["run"].get("spec_version"),
            results["run"].get("pack_digest"),
            context,
            found,
        )
    outcomes: tuple[ProfileOutcome, ...] = ()
    checks: tuple[CheckOutcome, ...] = ()
    op_table = None
    accuracy: tuple[AccuracyOutcome, ...] = ()
    if manifest_ok and shaped(results):
        judged = deep_stages(
            manifest, results, system, environment, context, options, found, signature, members
        )
        if judged is not None:
            outcomes, checks, op_table = judged.outcomes, judged.checks, judged.op_table
            accuracy = judged.accuracy
    else:
        found.notes.append(
            "checks not recomputed: the manifest or results.json is unreadable or malformed"
        )
    return Verification(
        bundle=str(path),
        findings=tuple(found.findings),
        notes=tuple(found.notes),
        manifest=manifest,
        outcomes=outcomes,
        checks=checks,
        benchmarks=tuple(results.get("benchmarks", [])) if results_ok else (),
        system=system.get("attested", {})
        if isinstance(system, dict) and isinstance(system.get("attested"), dict)
        else {},
        target_info=target_description(results, manifest) if shaped(results) else {},
        signature=signature,
        op_table=op_table,
        accuracy=accuracy,
    )


def target_description(results: dict[str, Any], manifest: dict[str, Any]) -> dict[str, Any]:
    info = results["targets"].get(str(manifest.get("target")), {})
    return dict(info) if isinstance(info, dict) else {}
