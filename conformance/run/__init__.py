"""Where a run happens: one session (session.py), one plan (plan.py), one check (check.py).

Every entry point (`conformance run`, `calibrate`, `certify`, `bench`, `pytest --conformance`)
opens a ``RunSession``; see docs/architecture.md.
"""

from conformance.run.check import run_check
from conformance.run.plan import CheckPlan, plan_checks
from conformance.run.session import (
    REPORTS_DIR,
    RunInputError,
    RunOutcome,
    RunRequest,
    RunSession,
    check_timeout_s,
    choose_targets,
    describe_targets,
)

__all__ = [
    "REPORTS_DIR",
    "CheckPlan",
    "RunInputError",
    "RunOutcome",
    "RunRequest",
    "RunSession",
    "check_timeout_s",
    "choose_targets",
    "describe_targets",
    "plan_checks",
    "run_check",
]
