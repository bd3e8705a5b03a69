"""Regenerate the bundled sample exports: customers.csv/.jsonl/.xlsx and expected.jsonl.

Run: python sample_data/make_samples.py   (needs openpyxl, from the test extra)

Each valid customer is drawn in canonical form (ISO alpha-2 country, ISO 3166-2 state) and then
written the way real exports write it (names in several languages, alpha-3, numeric codes, odd
case and spacing). ``expected.jsonl`` holds, per code, what the API must have stored afterwards
(as GET returns it: country alpha-3, state ISO 3166-2), or the reason the row must be rejected.
"""

from __future__ import annotations

import contextlib
import csv
import json
import random
from pathlib import Path

HERE = Path(__file__).parent
ROWS = 300

# canonical alpha-2 -> (alpha-3, ways exports write it)
COUNTRIES = {
    "ES": ("ESP", ["Spain", "ES", "ESP", "España", "espana", "724", " Spain "]),
    "FR": ("FRA", ["France", "FR", "FRA", "france"]),
    "DE": ("DEU", ["Germany", "DE", "Deutschland", "DEU"]),
    "US": ("USA", ["United States", "US", "USA", "United States of America"]),
    "MX": ("MEX", ["Mexico", "MX", "México"]),
    "PT": ("PRT", ["Portugal", "PT", "PRT"]),
    "IT": ("ITA", ["Italy", "IT", "Italia"]),
    "GB": ("GBR", ["United Kingdom", "GB", "GBR"]),
}
# canonical state code -> (ways it is written, cities)
STATES = {
    "ES": [
        ("ES-B", ["Barcelona", "ES-B", "B"], ["Barcelona", "Sabadell", "Terrassa"]),
        ("ES-M", ["Madrid", "ES-M", "M"], ["Madrid", "Alcalá de Henares"]),
        ("ES-V", ["Valencia", "ES-V", "V"], ["Valencia", "Gandia"]),
        ("ES-SE", ["Sevilla", "ES-SE", "SE"], ["Sevilla", "Dos Hermanas"]),
    ],
    "FR": [("FR-75C", ["FR-75C"], ["Paris"])],
    "DE": [
        ("DE-BE", ["Berlin", "DE-BE", "BE"], ["Berlin"]),
        ("DE-BY", ["Bayern", "DE-BY", "BY"], ["München", "Nürnberg"]),
    ],
    "US": [
        ("US-CA", ["California", "CA", "US-CA"], ["Los Angeles", "San Francisco"]),
        ("US-NY", ["New York", "NY", "US-NY"], ["New York City", "Buffalo"]),
        ("US-TX", ["Texas", "TX"], ["Austin", "Houston"]),
    ],
    "MX": [("MX-JAL", ["Jalisco", "MX-JAL", "JAL"], ["Guadalajara"])],
    "PT": [("PT-11", ["Lisboa", "PT-11"], ["Lisboa"])],
    "IT": [("IT-MI", ["Milano", "IT-MI", "MI"], ["Milano"])],
    "GB": [("GB-LND", ["GB-LND"], ["London"])],
}
# Cities the importer sends under another name: the GeoNames name of the place (issue 13 §3).
# GB-LND is ISO's "London, City of", so London with that state is the City of London.
SENT_CITY = {"München": "Munich", "Nürnberg": "Nuremberg", "Lisboa": "Lisbon", "Milano": "Milan",
             "London": "City of London"}  # fmt: skip
GENDERS = {0: ["0", ""], 1: ["1"], 2: ["2"], 3: ["3"]}
PLANS = ["free", "pro", "business"]

BAD_ROWS = [
    # (cells to override, why the row must be rejected)
    ({"code": ""}, "code"),
    ({"state": "Narnia"}, "state"),
    ({"country": "Atlantis"}, "country"),
    ({"metadata": "{not json"}, "metadata"),
    ({"code": "X" * 300}, "code"),
]
# rows that are sent with a warning: the field is left out of the payload
WARN_ROWS = [({"yearBorn": "1850"}, "yearBorn")]


def build() -> tuple[list[dict[str, str]], list[dict]]:
    """Return the rows as an export writes them and, per row, what the API must end up storing."""
    rng = random.Random(20261125)
    rows: list[dict[str, str]] = []
    expected: list[dict] = []
    # fixed, spread-out positions so that every batch of 100 holds at most a few bad rows
    bad_at = dict(zip((17, 58, 121, 190, 244), BAD_ROWS, strict=True))
    warn_at = dict(zip((33, 205), WARN_ROWS * 2, strict=True))
    for i in range(ROWS):
        alpha2 = rng.choice(list(COUNTRIES))
        alpha3, spellings = COUNTRIES[alpha2]
        state_code, state_spellings, cities = rng.choice(STATES[alpha2])
        gender = rng.choice(list(GENDERS))
        year = rng.randint(1940, 2006)
        active = rng.random() > 0.1
        meta = {"plan": rng.choice(PLANS), "orders": rng.randint(0, 40)}
        row = {
            "code": f"C{i + 1:05d}",
            "isActive": "true" if active else "false",
            "country": rng.choice(spellings),
            "state": rng.choice(state_spellings),
            "city": rng.choice(cities),
            "yearBorn": str(year),
            "gender": rng.choice(GENDERS[gender]),
            "metadata": json.dumps(meta, ensure_ascii=False),
        }
        want: dict = {
            "code": row["code"],
            "isActive": active,
            "country": alpha3,
            "state": state_code,
            "city": SENT_CITY.get(row["city"], row["city"]),
            "yearBorn": year,
            "metadata": meta,
        }
        if row["gender"]:
            want["gender"] = gender
        outcome = {"code": row["code"], "row": i + 2, "payload": want}
        if i in warn_at:
            override, field = warn_at[i]
            row.update(override)
            want.pop(field)
        if i in bad_at:
            override, field = bad_at[i]
            row.update(override)
            outcome = {"code": row["code"], "row": i + 2, "rejected": field}
        rows.append(row)
        expected.append(outcome)
    return rows, expected


def main() -> None:
    """Write the four sample files next to this script."""
    rows, expected = build()
    headers = list(rows[0])
    with open(HERE / "customers.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, headers)
        writer.writeheader()
        writer.writerows(rows)
    with open(HERE / "customers.jsonl", "w", encoding="utf-8") as fh:
        for row in rows:
            record: dict = dict(row)
            # a broken metadata text stays text: the JSONL sample is rejected on the same rows
            with contextlib.suppress(json.JSONDecodeError):
                record["metadata"] = json.loads(row["metadata"])
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    with open(HERE / "expected.jsonl", "w", encoding="utf-8") as fh:
        for outcome in expected:
            fh.write(json.dumps(outcome, ensure_ascii=False) + "\n")
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "Customers"
    ws.append(headers)
    for row in rows:
        ws.append([row[h] for h in headers])
    wb.save(HERE / "customers.xlsx")


if __name__ == "__main__":
    main()
