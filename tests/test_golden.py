"""The payloads a dry run builds are byte for byte the pinned golden files (issue 11's guard)."""

from __future__ import annotations

import difflib
import gzip
from pathlib import Path

import pytest
from golden_cases import CASES, Case, payloads

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("in_tmp")]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_dry_run_payloads_match_the_golden_file(case: Case, tmp_path: Path) -> None:
    expected = gzip.decompress(case.golden.read_bytes())
    actual = payloads(case, tmp_path)
    if actual != expected:
        diff = difflib.unified_diff(
            expected.decode("utf-8").splitlines(),
            actual.decode("utf-8").splitlines(),
            "golden",
            "now",
            lineterm="",
            n=0,
        )
        pytest.fail(f"{case.name}: payloads differ from {case.golden.name}:\n" + "\n".join(list(diff)[:40]))
