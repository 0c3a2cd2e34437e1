"""Write spec/coverage.md: every op type in the pack, the artifacts that contain it, and the
value ranges its first input reaches on the ordinary and the stress data sets.

Usage: .venv/bin/python scripts/pack_coverage.py [--pack DIR] [--out FILE] [--check]
``--check`` writes nothing and exits 1 when FILE is not what this pack gives (the test
tests/test_pack.py::test_coverage_table_is_current does the same comparison).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from conformance.pack.coverage import coverage_markdown, pack_coverage  # noqa: E402
from conformance.pack.load import Pack  # noqa: E402
from conformance.spec import PACK_DIR, SPEC_DIR  # noqa: E402

COVERAGE_MD = SPEC_DIR / "coverage.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pack", type=Path, default=PACK_DIR)
    parser.add_argument("--out", type=Path, default=COVERAGE_MD)
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args(argv)
    pack = Pack(args.pack)
    table = pack_coverage(pack)
    text = coverage_markdown(table, pack)
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.is_file() else ""
        if current != text:
            print(f"{args.out} is stale: run scripts/pack_coverage.py", file=sys.stderr)
            return 1
        print(f"{args.out} is current")
        return 0
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}: {len(table)} op types")
    return 0


if __name__ == "__main__":
    sys.exit(main())
