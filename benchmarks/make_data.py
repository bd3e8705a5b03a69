"""Write deterministic synthetic customer exports (CSV, JSONL, XLSX) shaped like real ones.

Run: python benchmarks/make_data.py --rows 1000000 --format csv   (writes benchmarks/data/...)

Every row has an id column, a country written in mixed ways (names in several languages,
alpha-2, alpha-3, numeric, odd case and spacing, a few unknown), a state as name or code, a city,
a birth date in one of several formats, a gender word, an active flag and three extra columns that
become metadata. About 2% of the rows are bad (no id, unknown country or state, unreadable date).
The same ``seed`` and ``rows`` always give byte-identical files.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
from collections.abc import Iterator
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"
DEFAULT_SEED = 20261125
HEADERS = (
    "Customer ID",
    "Country",
    "State",
    "City",
    "Birth Date",
    "Gender",
    "Active",
    "Plan",
    "Signup Source",
    "Lifetime Value",
)
FORMATS = ("csv", "jsonl", "xlsx")

# country -> (ways exports write it, [(ways the state is written, cities)])
PLACES: dict[str, tuple[list[str], list[tuple[list[str], list[str]]]]] = {
    "ES": (
        ["Spain", "ES", "ESP", "España", "espana", "724", " spain ", "SPAIN", "Espagne", "Spanien"],
        [
            (["Barcelona", "ES-B", "B"], ["Barcelona", "Sabadell", "Terrassa"]),
            (["Madrid", "ES-M", "M"], ["Madrid", "Alcalá de Henares", "Getafe"]),
            (["Valencia", "ES-V", "V"], ["Valencia", "Gandia"]),
            (["Sevilla", "ES-SE", "SE"], ["Sevilla", "Dos Hermanas"]),
        ],
    ),
    "FR": (
        ["France", "FR", "FRA", "france", "250", "Francia", "Frankreich"],
        [(["FR-75C"], ["Paris"]), (["FR-69M"], ["Lyon"])],
    ),
    "DE": (
        ["Germany", "DE", "Deutschland", "DEU", "germany ", "Alemania", "276"],
        [
            (["Berlin", "DE-BE", "BE"], ["Berlin"]),
            (["Bayern", "DE-BY", "BY"], ["München", "Nürnberg"]),
            (["Hamburg", "DE-HH"], ["Hamburg"]),
        ],
    ),
    "US": (
        ["United States", "US", "USA", "United States of America", "us", "840", "Estados Unidos"],
        [
            (["California", "CA", "US-CA"], ["Los Angeles", "San Francisco", "San Diego"]),
            (["New York", "NY", "US-NY"], ["New York City", "Buffalo"]),
            (["Texas", "TX", "US-TX"], ["Austin", "Houston", "Dallas"]),
            (["Massachusetts", "MA"], ["Boston", "Cambridge"]),
        ],
    ),
    "MX": (["Mexico", "MX", "México", "MEX", "484"], [(["Jalisco", "MX-JAL", "JAL"], ["Guadalajara"])]),
    "PT": (["Portugal", "PT", "PRT", "portugal"], [(["Lisboa", "PT-11"], ["Lisboa"])]),
    "IT": (["Italy", "IT", "Italia", "ITA", "380", "Italie"], [(["Milano", "IT-MI", "MI"], ["Milano"])]),
    "GB": (["United Kingdom", "GB", "GBR", "UK", "826"], [(["GB-LND"], ["London"])]),
    "CA": (["Canada", "CA", "CAN", "canada"], [(["Ontario", "ON", "CA-ON"], ["Toronto", "Ottawa"])]),
    "BR": (["Brazil", "BR", "Brasil", "BRA"], [(["São Paulo", "BR-SP", "SP"], ["São Paulo", "Campinas"])]),
}
GENDER_WORDS = ["Male", "Female", "male", "female", "F", "Other", "", "Hombre", "Mujer", "Prefer not to say"]
ACTIVE_WORDS = ["true", "false", "yes", "no", "1", "0", "TRUE", "Y", "N", ""]
PLANS = ["free", "pro", "business", "enterprise"]
SOURCES = ["google_ads", "newsletter", "referral", "organic", "partner", ""]
BAD_KINDS = ("no_id", "unknown_country", "unknown_state", "bad_date")
BAD_RATE = 0.02


def _birth_date(rng: random.Random) -> str:
    """A birth date in one of the formats exports use."""
    year, month, day = rng.randint(1940, 2006), rng.randint(1, 12), rng.randint(1, 28)
    style = rng.randrange(6)
    if style == 0:
        return f"{year:04d}-{month:02d}-{day:02d}"
    if style == 1:
        return f"{day:02d}/{month:02d}/{year:04d}"
    if style == 2:
        return f"{day}.{month}.{year}"
    if style == 3:
        return str(year)
    if style == 4:
        return f"{year:04d}-{month:02d}-{day:02d}T00:00:00Z"
    return f"{year:04d}{month:02d}{day:02d}"


def generate(rows: int, seed: int = DEFAULT_SEED, bad_rate: float = BAD_RATE) -> Iterator[list[str]]:
    """Yield ``rows`` rows of text cells in HEADERS order; the same seed gives the same rows."""
    rng = random.Random(seed)
    countries = list(PLACES)
    for i in range(rows):
        country_spellings, states = PLACES[rng.choice(countries)]
        state_spellings, cities = rng.choice(states)
        row = [
            f"C{i + 1:07d}",
            rng.choice(country_spellings),
            rng.choice(state_spellings),
            rng.choice(cities),
            _birth_date(rng),
            rng.choice(GENDER_WORDS),
            rng.choice(ACTIVE_WORDS),
            rng.choice(PLANS),
            rng.choice(SOURCES),
            f"{rng.randint(0, 500000) / 100:.2f}",
        ]
        if rng.random() < bad_rate:
            kind = rng.choice(BAD_KINDS)
            if kind == "no_id":
                row[0] = ""
            elif kind == "unknown_country":
                row[1] = rng.choice(["Atlantis", "Narnia", "Q999999", "XX"])
            elif kind == "unknown_state":
                row[2] = rng.choice(["Gondor", "Mordor", "ZZ-99"])
            else:
                row[4] = rng.choice(["31/31/31", "not a date", "3000-01-01"])
        yield row


def write_csv(path: Path, rows: int, seed: int = DEFAULT_SEED, bad_rate: float = BAD_RATE) -> None:
    """Write a UTF-8 CSV with a header line."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADERS)
        writer.writerows(generate(rows, seed, bad_rate))


def write_jsonl(path: Path, rows: int, seed: int = DEFAULT_SEED, bad_rate: float = BAD_RATE) -> None:
    """Write one JSON object per line, keys in HEADERS order, every value a string."""
    with open(path, "w", encoding="utf-8") as fh:
        for row in generate(rows, seed, bad_rate):
            fh.write(json.dumps(dict(zip(HEADERS, row, strict=True)), ensure_ascii=False))
            fh.write("\n")


def write_xlsx(path: Path, rows: int, seed: int = DEFAULT_SEED, bad_rate: float = BAD_RATE) -> None:
    """Write one sheet with a header row, every cell text (needs openpyxl, from the test extra)."""
    try:
        from openpyxl import Workbook
    except ImportError as exc:
        raise SystemExit("make_data.py: writing XLSX needs openpyxl (pip install -e '.[test]')") from exc
    book = Workbook(write_only=True)
    sheet = book.create_sheet("Customers")
    sheet.append(list(HEADERS))
    for row in generate(rows, seed, bad_rate):
        sheet.append(row)
    book.save(path)


WRITERS = {"csv": write_csv, "jsonl": write_jsonl, "xlsx": write_xlsx}


def data_path(
    rows: int, fmt: str, directory: Path = DATA_DIR, seed: int = DEFAULT_SEED, bad_rate: float = BAD_RATE
) -> Path:
    """Where the file for ``rows`` rows in ``fmt`` lives (the name says rows, seed and bad rate)."""
    suffix = "" if bad_rate == BAD_RATE else f"_bad{bad_rate:g}"
    return directory / f"customers_{rows}_{seed}{suffix}.{fmt}"


def ensure(
    rows: int, fmt: str, directory: Path = DATA_DIR, seed: int = DEFAULT_SEED, bad_rate: float = BAD_RATE
) -> Path:
    """Return the path of that export, writing it first unless it already exists."""
    if fmt not in WRITERS:
        raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    if not 0 <= bad_rate <= 1:
        raise ValueError(f"bad_rate must be between 0 and 1, not {bad_rate}")
    path = data_path(rows, fmt, directory, seed, bad_rate)
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        WRITERS[fmt](partial, rows, seed, bad_rate)
        partial.replace(path)  # a half-written file never looks finished
    return path


def main(argv: list[str] | None = None) -> int:
    """Command line: write the requested exports and print their paths."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows per file (default 100000)")
    parser.add_argument("--format", choices=(*FORMATS, "all"), default="all")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--bad-rate", type=float, default=BAD_RATE, help="fraction of bad rows (default 0.02)")
    parser.add_argument("--out", type=Path, default=DATA_DIR, help="directory (default benchmarks/data)")
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error("--rows must be at least 1")
    if not 0 <= args.bad_rate <= 1:
        parser.error("--bad-rate must be between 0 and 1")
    for fmt in FORMATS if args.format == "all" else (args.format,):
        print(ensure(args.rows, fmt, args.out, args.seed, args.bad_rate))
    return 0


if __name__ == "__main__":
    sys.exit(main())
