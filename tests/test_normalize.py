"""Row normalization: the payload sent for each row, and the warnings and errors people see."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from biteral_cli.errors import UsageError
from biteral_cli.normalize import NormalizeOptions, Normalizer
from biteral_cli.records import FIELDS, Extracted, Prepared, SourceRow

YEAR = 2026


def prepare(
    fields: dict[str, Any],
    *,
    metadata_json: Any = None,
    metadata_extra: dict[str, Any] | None = None,
    normalizer: Normalizer | None = None,
    error: str | None = None,
    **options: Any,
) -> Prepared:
    """Normalize one row with a fixed current year."""
    normalizer = normalizer or Normalizer(NormalizeOptions(**{"this_year": YEAR, **options}))
    row = SourceRow(source="in.csv", row=2, cells={}, error=error)
    extracted = Extracted(
        fields={"code": "C1", **fields},
        metadata_json=metadata_json,
        metadata_extra=metadata_extra or {},
    )
    return normalizer.prepare(row, extracted)


def sent(field: str, value: Any, **kwargs: Any) -> Any:
    """What the payload holds for ``field`` (KeyError when it is left out)."""
    result = prepare({field: value}, **kwargs)
    assert result.payload is not None, result.errors
    return result.payload[field]


def messages(result: Prepared) -> list[str]:
    return [issue.message for issue in result.warnings]


# -- code -------------------------------------------------------------------------------------


def test_code_is_trimmed_and_loses_the_spreadsheet_apostrophe() -> None:
    result = prepare({"code": "  '00123 "})
    assert result.code == "00123"
    assert result.payload == {"code": "00123"}


def test_code_from_json_number_becomes_text() -> None:
    assert prepare({"code": 42}).payload == {"code": "42"}


@pytest.mark.parametrize("code", ["", "   ", "'", None])
def test_missing_or_empty_code_rejects_the_row(code: Any) -> None:
    result = prepare({"code": code, "country": "ES"})
    assert result.payload is None
    assert [e.field for e in result.errors] == ["code"]


def test_row_without_a_code_column_is_rejected() -> None:
    row = SourceRow(source="in.csv", row=2, cells={})
    result = Normalizer(NormalizeOptions()).prepare(row, Extracted(fields={"city": "Madrid"}))
    assert result.payload is None
    assert result.errors[0].field == "code"


def test_code_longer_than_255_is_rejected_with_its_length() -> None:
    result = prepare({"code": "X" * 256})
    assert result.payload is None
    assert "256 characters" in result.errors[0].message
    assert prepare({"code": "X" * 255}).payload == {"code": "X" * 255}


def test_code_limit_is_configurable() -> None:
    assert prepare({"code": "ABCDEF"}, max_code_length=5).payload is None


def test_row_broken_at_read_time_is_rejected_at_the_read_stage() -> None:
    result = prepare({"code": "C9"}, error="bad JSON on line 3")
    assert result.payload is None
    assert result.stage == "read"
    assert result.code == "C9"
    assert result.errors[0].message == "bad JSON on line 3"


# -- payload shape ----------------------------------------------------------------------------


def test_payload_fields_follow_the_api_order() -> None:
    result = prepare(
        {
            "gender": "F",
            "yearBorn": "1990",
            "city": "Madrid",
            "state": "M",
            "country": "Spain",
            "isActive": "yes",
        },
        metadata_json='{"a": 1}',
    )
    assert result.payload is not None
    assert list(result.payload) == [f for f in FIELDS]
    assert result.payload == {
        "code": "C1",
        "isActive": True,
        "country": "ES",
        "state": "ES-M",
        "city": "Madrid",
        "yearBorn": 1990,
        "gender": 2,
        "metadata": {"a": 1},
    }
    assert result.warnings == []


def test_json_inputs_may_give_native_types() -> None:
    result = prepare(
        {"isActive": True, "gender": 2, "yearBorn": 1990, "country": 724},
        metadata_json={"vip": True, "n": 3},
    )
    assert result.payload == {
        "code": "C1",
        "isActive": True,
        "country": "ES",
        "yearBorn": 1990,
        "gender": 2,
        "metadata": {"vip": True, "n": 3},
    }


# -- empty cells ------------------------------------------------------------------------------


def test_empty_cells_are_left_out_so_updates_keep_existing_data() -> None:
    fields = {"isActive": "", "country": " ", "state": "", "city": "\t", "yearBorn": None, "gender": ""}
    result = prepare(fields, metadata_json="")
    assert result.payload == {"code": "C1"}
    assert result.warnings == []


def test_empty_as_null_sends_null_to_clear_fields_but_never_for_code() -> None:
    fields = {"isActive": "", "country": " ", "state": "", "city": "", "yearBorn": None, "gender": ""}
    result = prepare(fields, metadata_json=" ", empty_as_null=True)
    assert result.payload == {
        "code": "C1",
        "isActive": None,
        "country": None,
        "state": None,
        "city": None,
        "yearBorn": None,
        "gender": None,
        "metadata": None,
    }
    assert prepare({"code": ""}, empty_as_null=True).payload is None


# -- isActive ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["true", "TRUE", "yes", "Y", "sí", "Si", "S", "1", "activo", "Activa", "oui", "ja", "aktiv", "enabled", "1.0"],
)
def test_is_active_true_words(text: str) -> None:
    assert sent("isActive", text) is True


@pytest.mark.parametrize(
    "text",
    ["false", "no", "N", "0", "inactivo", "Inactiva", "non", "nein", "não", "inactive", "disabled", "0.0"],
)
def test_is_active_false_words(text: str) -> None:
    assert sent("isActive", text) is False


def test_is_active_nonsense_is_a_warning_and_not_sent() -> None:
    result = prepare({"isActive": "maybe"})
    assert result.payload == {"code": "C1"}
    assert messages(result) == ["isActive 'maybe' is not a yes/no value; not sent (use true/false, yes/no, sí/no, 1/0)"]


def test_is_active_json_number() -> None:
    assert sent("isActive", 0) is False
    assert prepare({"isActive": 7}).payload == {"code": "C1"}


# -- gender -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("0", 0),
        ("1", 1),
        ("2", 2),
        ("3", 3),
        ("male", 1),
        ("Female", 2),
        ("F", 2),
        ("f", 2),
        ("hombre", 1),
        ("mujer", 2),
        ("H", 1),
        ("masculino", 1),
        ("Femenino", 2),
        ("homme", 1),
        ("femme", 2),
        ("männlich", 1),
        ("weiblich", 2),
        ("W", 2),
        ("maschio", 1),
        ("donna", 2),
        ("homem", 1),
        ("mulher", 2),
        ("other", 3),
        ("otro", 3),
        ("diverse", 3),
        ("divers", 3),
        ("non-binary", 3),
        ("unknown", 0),
        ("desconocido", 0),
        ("N/A", 0),
    ],
)
def test_gender_words_and_numbers(text: str, code: int) -> None:
    assert sent("gender", text) == code


def test_gender_json_integer() -> None:
    assert sent("gender", 3) == 3


@pytest.mark.parametrize("value", ["4", "-1", "alien", True])
def test_gender_out_of_table_is_a_warning_and_not_sent(value: Any) -> None:
    result = prepare({"gender": value})
    assert result.payload == {"code": "C1"}
    assert result.warnings[0].field == "gender"


@pytest.mark.parametrize(
    ("header", "sample", "meaning"),
    [
        ("Sexo", ["M", "M"], 2),  # Spanish header: M = mujer
        ("Gender", ["M"], 1),
        ("Geschlecht", ["M"], 1),
        ("sexe", ["M"], 1),
        ("x", ["M", "H", "M"], 2),  # H present: hombre/mujer
        ("x", ["M", "F"], 1),  # F present: male/female (or masculino/femenino)
        ("Sexo", ["M", "F"], 1),  # the values beat the header
        ("Gender", ["H", "M"], 2),
    ],
)
def test_bare_m_is_decided_per_column(header: str, sample: list[str], meaning: int) -> None:
    normalizer = Normalizer(NormalizeOptions(this_year=YEAR), gender_header=header, gender_sample=sample)
    assert normalizer.m_gender == meaning
    result = prepare({"gender": "m"}, normalizer=normalizer)
    assert result.payload == {"code": "C1", "gender": meaning}
    assert result.warnings == []


def test_bare_m_that_cannot_be_decided_is_not_sent_and_warns_each_row() -> None:
    normalizer = Normalizer(NormalizeOptions(this_year=YEAR), gender_header="g", gender_sample=["M", ""])
    assert normalizer.m_gender is None
    for _ in range(2):
        result = prepare({"gender": "M"}, normalizer=normalizer)
        assert result.payload == {"code": "C1"}
        assert "ambiguous" in messages(result)[0]
    # Other values in the same column are unaffected.
    assert prepare({"gender": "F"}, normalizer=normalizer).payload == {"code": "C1", "gender": 2}


# -- yearBorn ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "1990",
        " 1990 ",
        "1990.0",
        "17/05/1990",
        "17-05-1990",
        "17.05.1990",
        "1990-05-17",
        "1990/05/17",
        "05/17/1990",
        "May 17, 1990",
        "17 May 1990",
        "17 de mayo de 1990",
        "17. Mai 1990",
        "17-May-90",
        "32980",
        "1990-05-17T00:00:00",
        "1990-05-17 00:00:00",
        "19900517",
        "05/1990",
    ],
)
def test_year_born_from_years_and_dates(text: str) -> None:
    assert sent("yearBorn", text) == 1990


def test_year_born_from_native_values() -> None:
    assert sent("yearBorn", 1990) == 1990
    assert sent("yearBorn", dt.date(1990, 5, 17)) == 1990
    assert sent("yearBorn", dt.datetime(1990, 5, 17, 10, 0)) == 1990


@pytest.mark.parametrize("text", ["0", "-5", "99999", "1850", "2031", "01/01/1899"])
def test_implausible_year_is_a_warning_and_not_sent(text: str) -> None:
    result = prepare({"yearBorn": text})
    assert result.payload == {"code": "C1"}
    assert result.warnings[0].field == "yearBorn"
    assert "1900-2026" in result.warnings[0].message


@pytest.mark.parametrize("text", ["31/02/1990", "02/31/1990", "1990-13-01", "soon", "17 Foo 1990"])
def test_invalid_date_is_a_warning_and_not_sent(text: str) -> None:
    result = prepare({"yearBorn": text})
    assert result.payload == {"code": "C1"}
    assert messages(result) == [f"yearBorn {text!r} is not a valid year or date; not sent"]


def test_the_current_year_is_the_upper_bound() -> None:
    assert sent("yearBorn", "2026") == 2026
    assert prepare({"yearBorn": "2026"}, this_year=2025).payload == {"code": "C1"}


# -- locations --------------------------------------------------------------------------------


def test_country_and_state_are_sent_as_iso_codes() -> None:
    result = prepare({"country": "España", "state": "Gerona", "city": "  Girona  "})
    assert result.payload == {"code": "C1", "country": "ES", "state": "ES-GI", "city": "Girona"}


def test_state_is_resolved_within_the_row_country() -> None:
    assert sent("state", "CA", normalizer=None) == "CA"  # no country column: left as written
    assert prepare({"country": "US", "state": "CA"}).payload["state"] == "US-CA"  # type: ignore[index]
    assert prepare({"country": "ES", "state": "CA"}).payload["state"] == "ES-CA"  # type: ignore[index]


def test_unknown_country_is_sent_as_written_with_a_suggestion() -> None:
    result = prepare({"country": " Spian "})
    assert result.payload == {"code": "C1", "country": "Spian"}
    assert messages(result) == ["country 'Spian' is not a known country; sent as written (did you mean ES (Spain)?)"]


def test_ambiguous_country_is_sent_as_written_with_a_warning() -> None:
    result = prepare({"country": "Congo"})
    assert result.payload == {"code": "C1", "country": "Congo"}
    assert "ambiguous" in messages(result)[0]
    assert "CG (Congo)" in messages(result)[0]


def test_unknown_wikidata_country_is_sent_as_written() -> None:
    result = prepare({"country": "Q4242424242"})
    assert result.payload == {"code": "C1", "country": "Q4242424242"}
    assert "WikiData" in messages(result)[0]


def test_state_of_another_country_is_sent_as_written_with_a_warning() -> None:
    result = prepare({"country": "ES", "state": "Georgia"})
    assert result.payload == {"code": "C1", "country": "ES", "state": "Georgia"}
    assert messages(result) == [
        "state 'Georgia' does not belong to country ES (Spain): it is US-GA (Georgia); sent as written"
    ]
    assert prepare({"country": "US", "state": "Georgia"}).payload["state"] == "US-GA"  # type: ignore[index]


def test_unknown_state_suggests_a_state_of_the_country() -> None:
    result = prepare({"country": "ES", "state": "Barcelnoa"})
    assert result.payload is not None and result.payload["state"] == "Barcelnoa"
    assert messages(result)[0].endswith("(did you mean ES-B (Barcelona)?)")


def test_city_is_trimmed_and_collapsed_and_wikidata_kept() -> None:
    assert sent("city", "  San   Sebastián\t") == "San Sebastián"
    assert sent("city", "Q11355") == "Q11355"


def test_city_from_a_json_object_is_a_warning() -> None:
    result = prepare({"city": {"name": "Madrid"}})
    assert result.payload == {"code": "C1"}
    assert result.warnings[0].field == "city"


# -- strict -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"country": "Spian"},
        {"country": "Congo"},
        {"country": "ES", "state": "Georgia"},
        {"yearBorn": "31/02/1990"},
        {"gender": "alien"},
        {"isActive": "maybe"},
    ],
)
def test_strict_turns_warnings_into_rejected_rows(fields: dict[str, Any]) -> None:
    relaxed = prepare(fields)
    assert relaxed.payload is not None and relaxed.warnings
    strict = prepare(fields, strict=True)
    assert strict.payload is None
    assert strict.warnings == []
    assert [e.field for e in strict.errors] == [w.field for w in relaxed.warnings]
    assert "sent as written" not in strict.errors[0].message
    assert "not sent" not in strict.errors[0].message


def test_strict_accepts_clean_rows() -> None:
    result = prepare({"country": "Spain", "state": "B", "gender": "2"}, strict=True)
    assert result.payload == {"code": "C1", "country": "ES", "state": "ES-B", "gender": 2}


# -- metadata ---------------------------------------------------------------------------------


def test_metadata_json_column_merges_with_extra_columns_which_win() -> None:
    result = prepare({}, metadata_json='{"plan": "pro", "orders": 3}', metadata_extra={"plan": "vip", "x": "1"})
    assert result.payload is not None
    assert result.payload["metadata"] == {"plan": "vip", "orders": 3, "x": "1"}


def test_metadata_from_extra_columns_stays_text() -> None:
    result = prepare({}, metadata_extra={"orders": "0012", "vip": "true"})
    assert result.payload is not None
    assert result.payload["metadata"] == {"orders": "0012", "vip": "true"}


def test_metadata_dates_from_spreadsheets_become_iso_text() -> None:
    result = prepare({}, metadata_extra={"since": dt.datetime(2020, 1, 2, 3, 4, 5)})
    assert result.payload is not None
    assert result.payload["metadata"] == {"since": "2020-01-02T03:04:05"}


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("{not json", "not valid JSON"),
        ('{"a": NaN}', "not valid JSON"),
        ("[1, 2]", "must be a JSON object, not a list"),
        ('"text"', "must be a JSON object, not text"),
        (["a"], "must be a JSON object, not a list"),
    ],
)
def test_bad_metadata_rejects_the_row_with_a_clear_message(raw: Any, words: str) -> None:
    result = prepare({}, metadata_json=raw)
    assert result.payload is None
    assert result.errors[0].field == "metadata"
    assert words in result.errors[0].message


def test_metadata_size_limit_counts_compact_json_characters() -> None:
    # {"k":"..."} is 8 characters plus the value.
    fits = {"k": "é" * (60000 - 8)}
    result = prepare({}, metadata_json=json.dumps(fits, indent=4))
    assert result.payload is not None and result.payload["metadata"] == fits
    too_big = prepare({}, metadata_extra={"k": "é" * (60000 - 7)})
    assert too_big.payload is None
    assert "60001 characters" in too_big.errors[0].message


def test_metadata_size_limit_catches_numbers_that_grow_when_reencoded() -> None:
    raw = "{" + ",".join(f'"{i:03d}":1e15' for i in range(400)) + "}"
    result = prepare({}, metadata_json=raw, max_metadata_chars=len(raw) * 2)
    assert result.payload is None
    assert result.errors[0].field == "metadata"


# -- options ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [{"max_code_length": 0}, {"max_metadata_chars": 1}, {"this_year": 1800}],
)
def test_impossible_options_are_usage_errors(options: dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        NormalizeOptions(**options)


# -- never raises -----------------------------------------------------------------------------

_weird_text = st.text(max_size=30) | st.sampled_from(
    ["\u202eمرحبا", "👩‍👩‍👧", "\x00\x07", "\ud800", "31/02/1990", "M", "1e15", "Q", "'", "99999999"]
)
_any_value = (
    _weird_text
    | st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
    | st.lists(st.integers(), max_size=2)
)


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={name: _any_value for name in FIELDS if name != "metadata"},
    ),
    _any_value,
    st.dictionaries(st.text(max_size=5), _any_value, max_size=3),
    st.booleans(),
    st.booleans(),
)
def test_any_row_is_normalized_without_raising(
    fields: dict[str, Any], metadata: Any, extra: dict[str, Any], strict: bool, as_null: bool
) -> None:
    normalizer = Normalizer(
        NormalizeOptions(strict=strict, empty_as_null=as_null, this_year=YEAR),
        gender_header="Sexo",
        gender_sample=list(fields.values()),
    )
    row = SourceRow(source="in.csv", row=2, cells={})
    result = normalizer.prepare(row, Extracted(fields, metadata, extra))
    assert (result.payload is None) == bool(result.errors)
    if result.payload is not None:
        json.dumps(result.payload, allow_nan=False)
        assert list(result.payload) == [f for f in FIELDS if f in result.payload]
