"""Mutation testing of the modules where a silent bug loses or changes data (issue 15); not run in CI.

Usage: .venv/bin/python tools/mutation.py [MODULE ...] [--max-children N]
MODULE is one of: checkpoint, report, upload, locations (default: all four, one after another).

Each module gets a working copy under mutants/<module>/ (biteral_cli, tests, sample_data and a
mutmut config naming that module and its test files only), where mutmut 3 mutates only that module
and runs, for each mutant, the tests that reach the mutated function. The location tables are built
once into mutants/xdg-cache and shared by every mutant (conftest's BITERAL_IMPORT_TEST_CACHE).
Each run starts afresh (mutmut would keep the verdicts of a run made before new tests were added);
--resume continues an interrupted run instead. The score and surviving mutants of each module
are printed and written to mutants/<module>/score.txt (mutmut's own output goes to mutmut.log
there); `mutmut show NAME`, run inside mutants/<module>, prints a mutant's diff.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "mutants"

#: module -> the test files that exercise it in-process (tests that spawn the CLI as a subprocess
#: cannot see a mutant, and the slow end-to-end ones would only cost time).
MODULES: dict[str, list[str]] = {
    "checkpoint": ["tests/test_checkpoint.py", "tests/test_crash.py"],
    "report": ["tests/test_report.py"],
    "upload": ["tests/test_uploader.py"],
    "locations": [
        "tests/test_locations.py",
        "tests/test_locations_codes.py",
        "tests/test_countries_cldr.py",
        "tests/test_guards.py",
        "tests/test_location_cache.py",
    ],
}

#: module -> what mutmut mutates (the upload engine became a package in issue 11).
TARGETS = {"upload": "biteral_cli/upload/*"}

COPIED = ("biteral_cli", "tests", "sample_data", "pyproject.toml", "README.md")

#: What mutmut's statuses count as: a mutant is killed when a test failed (or timed out) on it.
KILLED = {"killed", "timeout", "caught by type check"}


def prepare(module: str, *, resume: bool) -> Path:
    """A fresh working copy for ``module`` with its mutmut config; with ``resume``, earlier verdicts are kept."""
    work = WORK / module
    if not resume:
        shutil.rmtree(work / "mutants", ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        source, target = ROOT / name, work / name
        if source.is_dir():
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, target)
    tests = "\n    ".join(t for t in MODULES[module] if (ROOT / t).exists())
    (work / "setup.cfg").write_text(
        "[mutmut]\n"
        "source_paths = biteral_cli\n"
        f"only_mutate = {TARGETS.get(module, f'biteral_cli/{module}.py')}\n"
        "also_copy =\n    sample_data\n    README.md\n"
        f"pytest_add_cli_args_test_selection =\n    {tests}\n"
        # Fixed order and no slow-test skipping: every mutant sees the same tests.
        "pytest_add_cli_args =\n    -p\n    no:randomly\n    -q\n    -x\n",
        encoding="utf-8",
    )
    return work


def statuses(work: Path) -> dict[str, str]:
    """mutant name -> status, as `mutmut results --all true` lists them."""
    out = subprocess.run(
        [sys.executable, "-m", "mutmut", "results", "--all", "true"],
        cwd=work,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = {}
    for line in out.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep and name:
            found[name] = status
    return found


def score(module: str, work: Path, seconds: float) -> str:
    """A report of one module's run: the score, the counts by status and every surviving mutant."""
    found = statuses(work)
    counts = Counter(found.values())
    killed = sum(n for status, n in counts.items() if status in KILLED)
    total = sum(counts.values()) - counts.get("skipped", 0) - counts.get("not checked", 0)
    lines = [
        f"{module}: {killed}/{total} mutants killed ({100 * killed / max(total, 1):.1f}%) in {seconds / 60:.1f} min",
        "  " + ", ".join(f"{status} {n}" for status, n in sorted(counts.items())),
    ]
    lines += [f"  {status}: {name}" for name, status in sorted(found.items()) if status not in KILLED]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", metavar="MODULE", help=f"one of {', '.join(MODULES)} (default: all)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run, keeping its verdicts")
    parser.add_argument("--max-children", type=int, default=2, help="mutants tested at once (default 2)")
    args = parser.parse_args()
    unknown = sorted(set(args.modules) - set(MODULES))
    if unknown:
        parser.error(f"unknown module(s) {', '.join(unknown)}; choose from {', '.join(MODULES)}")
    cache = WORK / "xdg-cache"
    cache.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BITERAL_")}
    env["BITERAL_IMPORT_TEST_CACHE"] = str(cache)
    for module in args.modules or list(MODULES):
        work = prepare(module, resume=args.resume)
        started = time.monotonic()
        with open(work / "mutmut.log", "w", encoding="utf-8") as log:  # its progress line, kept out of sight
            command = [sys.executable, "-m", "mutmut", "run", "--max-children", str(args.max_children)]
            subprocess.run(command, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
        report = score(module, work, time.monotonic() - started)
        (work / "score.txt").write_text(report + "\n", encoding="utf-8")
        print(report, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
