"""Moved to conformance.run (session.py, plan.py); kept until every caller imports those."""

from conformance.run.plan import plan_checks
from conformance.run.session import check_timeout_s, describe_targets

__all__ = ["check_timeout_s", "describe_targets", "plan_checks"]
