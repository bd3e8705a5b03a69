"""The inputs whose ``--dry-run --output`` payloads are pinned as golden files (tests/golden/).

A change to the pipeline must reproduce these byte for byte; a change that alters a value on
purpose regenerates them with ``python tests/golden_cases.py`` and says why in its commit.
"""

from __future__ import annotations

import gzip
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"
sys.path.insert(0, str(ROOT / "benchmarks"))

import make_data  # noqa: E402  (benchmarks/ is not a package)

GENERATED_ROWS = 5_000


@dataclass(frozen=True)
class Case:
    """One pinned input: its name, where it comes from and the extra options of its run."""

    name: str
    path: Path | None  # None: benchmarks/make_data.py writes it (format in ``generated``)
    generated: str | None = None
    options: tuple[str, ...] = ()

    def input_path(self, workdir: Path) -> Path:
        """The file to import: the bundled one, or the benchmark export written into ``workdir``."""
        if self.path is not None:
            return self.path
        assert self.generated is not None
        return make_data.ensure(GENERATED_ROWS, self.generated, workdir)

    @property
    def golden(self) -> Path:
        """The golden payload file (gzip: the generated exports are large)."""
        return GOLDEN / f"{self.name}.payloads.jsonl.gz"


CASES = (
    *(
        Case(f"sample_{p.suffix[1:]}", p)
        for p in sorted((ROOT / "sample_data").glob("customers.*"))
        if p.suffix != ".py"
    ),
    *(Case(f"export_{p.stem}", p) for p in sorted((ROOT / "sample_data" / "exports").glob("*.csv"))),
    *(Case(f"generated_{fmt}", None, fmt) for fmt in make_data.FORMATS),
)


def payloads(case: Case, workdir: Path) -> bytes:
    """The payload lines a dry run of ``case`` writes with ``--output``."""
    from typer.testing import CliRunner

    from biteral_cli.cli import app

    out = workdir / f"{case.name}.out.jsonl"
    args = [
        str(case.input_path(workdir)),
        "--dry-run",
        "--quiet",
        "--output",
        str(out),
        "--failures",
        str(workdir / f"{case.name}.failures.csv"),
        *case.options,
    ]
    result = CliRunner().invoke(app, args, env={"NO_COLOR": "1"})
    if result.exit_code not in (0, 1):
        raise AssertionError(f"{case.name}: exit {result.exit_code}: {result.output}")
    return out.read_bytes()


def main() -> None:
    """Regenerate every golden file."""
    GOLDEN.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for case in CASES:
            data = payloads(case, Path(tmp))
            case.golden.write_bytes(gzip.compress(data, mtime=0))
            lines = data.count(b"\n")
            print(f"{case.golden.relative_to(ROOT)}: {lines} payloads")


if __name__ == "__main__":
    main()
