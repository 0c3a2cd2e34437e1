"""Moved to conformance.run.check and conformance.run.plan (kept for callers not yet moved)."""

from conformance.run.check import run_check
from conformance.run.plan import CheckPlan, exporter_at_fault

__all__ = ["CheckPlan", "exporter_at_fault", "run_check"]
