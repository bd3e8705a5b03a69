"""Column mapping: real exports, synonyms, the prefix rule, metadata, overrides and mapping files."""

from __future__ import annotations

import csv
import tomllib
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from biteral_cli.errors import ConfigError, InputError, UsageError
from biteral_cli.mapping import (
    ColumnChoice,
    Mapping,
    MappingOptions,
    build_mapping,
    load_mapping_file,
    mapping_table,
    write_mapping_file,
)

EXPORTS = Path(__file__).resolve().parent.parent / "sample_data" / "exports"
FIELDS_SHOWN = ("code", "isActive", "country", "state", "city", "yearBorn", "gender")


def read_export(name: str) -> tuple[list[str], list[dict[str, str]]]:
    """Headers and rows of a sample export, read with the stdlib (the reader is separate)."""
    erp = name.startswith("erp_")
    with open(EXPORTS / name, encoding="cp1252" if erp else "utf-8", newline="") as fh:
        reader = csv.DictReader(fh, delimiter=";" if erp else ",")
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def auto(headers: list[str], **options: Any) -> Mapping:
    return build_mapping(headers, MappingOptions(**options))


def chosen(mapping: Mapping) -> dict[str, str | None]:
    return {f: mapping.field_column(f) for f in FIELDS_SHOWN}


def target(mapping: Mapping, column: str) -> ColumnChoice:
    return next(c for c in mapping.columns if c.column == column)


# ------------------------------------------------------------------------------------------------
# Real exports
# ------------------------------------------------------------------------------------------------

EXPECTED = {
    "shopify_customers.csv": {
        "code": "Customer ID",
        "isActive": None,
        "country": "Default Address Country Code",
        "state": "Default Address Province Code",
        "city": "Default Address City",
        "yearBorn": None,
        "gender": None,
    },
    "shopify_customers_legacy.csv": {
        "code": "Email",
        "isActive": None,
        "country": "Country Code",
        "state": "Province Code",
        "city": "City",
        "yearBorn": None,
        "gender": None,
    },
    "hubspot_contacts.csv": {
        "code": "Record ID",
        "isActive": None,
        "country": "Country/Region",
        "state": "State/Region",
        "city": "City",
        "yearBorn": "Date of birth",
        "gender": "Gender",
    },
    "salesforce_contacts.csv": {
        "code": "Id",
        "isActive": None,
        "country": "MailingCountry",
        "state": "MailingState",
        "city": "MailingCity",
        "yearBorn": "Birthdate",
        "gender": None,
    },
    "woocommerce_customers.csv": {
        "code": "customer_id",
        "isActive": None,
        "country": "billing_country",
        "state": "billing_state",
        "city": "billing_city",
        "yearBorn": None,
        "gender": None,
    },
    "stripe_customers.csv": {
        "code": "id",
        "isActive": None,
        "country": "Address Country",
        "state": "Address State",
        "city": "Address City",
        "yearBorn": None,
        "gender": None,
    },
    "erp_clientes.csv": {
        "code": "Código cliente",
        "isActive": "Activo",
        "country": "País",
        "state": "Provincia",
        "city": "Población",
        "yearBorn": "Fecha de nacimiento",
        "gender": "Sexo",
    },
}


def test_every_sample_export_is_covered() -> None:
    assert sorted(p.name for p in EXPORTS.glob("*.csv")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_export_maps_to_the_right_columns(name: str) -> None:
    headers, rows = read_export(name)
    assert 10 <= len(rows) <= 30
    mapping = auto(headers)
    assert chosen(mapping) == EXPECTED[name]
    assert [c.column for c in mapping.columns] == headers
    extracted = mapping.extract(rows[0])
    assert extracted.fields["code"] == rows[0][EXPECTED[name]["code"]]


def test_shopify_totals_go_to_metadata_but_names_emails_phones_stay_home() -> None:
    headers, rows = read_export("shopify_customers.csv")
    mapping = auto(headers)
    extracted = mapping.extract(rows[0])
    assert extracted.fields == {"code": "'7283105923251", "city": "Toronto", "state": "ON", "country": "CA"}
    assert extracted.metadata_extra == {
        "Accepts Email Marketing": "yes",
        "Accepts SMS Marketing": "no",
        "Total Spent": "412.80",
        "Total Orders": "5",
        "Tax Exempt": "no",
        "Tags": "vip, newsletter",
    }
    assert dict(mapping.personal_left_out) == {
        "First Name": "name",
        "Last Name": "name",
        "Email": "email",
        "Default Address Address1": "street address",
        "Default Address Address2": "street address",
        "Default Address Zip": "postcode",
        "Default Address Phone": "phone",
        "Phone": "phone",
        "Note": "free-text note",
    }
    note = next(n for n in mapping.notes if n.startswith("personal data kept home"))
    assert "'Email' (email)" in note and "--personal-data include" in note


def test_personal_data_is_sent_when_asked_for() -> None:
    headers, rows = read_export("shopify_customers.csv")
    included = auto(headers, personal_data="include").extract(rows[0]).metadata_extra
    assert included["First Name"] == "Emma"
    assert included["Email"] == "emma.wilson@example.com"
    assert "Default Address Address2" in included
    assert "Default Address Company" not in included  # empty cell left out
    named = auto(headers, metadata_columns=("Email", "Tags")).extract(rows[0]).metadata_extra
    assert named == {"Email": "emma.wilson@example.com", "Tags": "vip, newsletter"}


@pytest.mark.parametrize(
    ("header", "kind"),
    [
        ("Nombre", "name"),
        ("Apellidos", "name"),
        ("Prénom", "name"),
        ("Nachname", "name"),
        ("Cognome", "name"),
        ("billing_first_name", "name"),
        ("Shipping Name", "name"),
        ("Correo electrónico", "email"),
        ("E-Mail", "email"),
        ("Courriel", "email"),
        ("Teléfono", "phone"),
        ("Handy", "phone"),
        ("Cellulare", "phone"),
        ("Mobile Phone", "phone"),
        ("Dirección", "street address"),
        ("MailingStreet", "street address"),
        ("Address Line1", "street address"),
        ("Straße", "street address"),
        ("Indirizzo", "street address"),
        ("Código postal", "postcode"),
        ("PLZ", "postcode"),
        ("MailingPostalCode", "postcode"),
        ("CAP", "postcode"),
        ("Notas", "free-text note"),
        ("Observaciones", "free-text note"),
        ("Bemerkung", "free-text note"),
        ("IP Address", "IP address"),
        ("last_ip", "IP address"),
        ("NIF", "national id"),
    ],
)
def test_personal_data_headers_are_recognised_in_six_languages(header: str, kind: str) -> None:
    mapping = auto(["Customer ID", header, "Plan"])
    assert dict(mapping.personal_left_out) == {header: kind}
    assert mapping.extract({"Customer ID": "C1", header: "x", "Plan": "pro"}).metadata_extra == {"Plan": "pro"}


@pytest.mark.parametrize(
    "header", ["Accepts Email Marketing", "Default Address City", "Company", "Total Spent", "Tags", "Birth year"]
)
def test_columns_about_a_customer_but_not_personal_data_still_go_to_metadata(header: str) -> None:
    mapping = auto(["Customer ID", "Birth year", header] if header != "Birth year" else ["Customer ID", header])
    assert mapping.personal_left_out == ()


@pytest.mark.parametrize("header", ["Fecha de nacimiento", "Date of birth", "Geburtsdatum", "DOB"])
def test_a_full_birth_date_that_does_not_feed_yearborn_stays_home(header: str) -> None:
    mapping = auto(["Customer ID", "Birth year", header])
    assert mapping.field_column("yearBorn") == "Birth year"
    assert dict(mapping.personal_left_out) == {header: "birth date"}


def test_personal_keys_of_json_rows_outside_the_header_stay_home_too() -> None:
    mapping = auto(["code"])
    extracted = mapping.extract({"code": "C1", "email": "a@b.c", "phone": "1", "plan": "pro"})
    assert extracted.metadata_extra == {"plan": "pro"}


def test_a_mapping_file_can_ask_for_personal_data(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text('[metadata]\npersonal_data = "include"\n', encoding="utf-8")
    mapping = auto(["Customer ID", "Email"], mapping_file=path)
    assert mapping.extract({"Customer ID": "C1", "Email": "a@b.c"}).metadata_extra == {"Email": "a@b.c"}
    written = tmp_path / "w.toml"
    write_mapping_file(auto(["Customer ID", "Email"]), written)
    assert tomllib.loads(written.read_text(encoding="utf-8"))["metadata"]["personal_data"] == "exclude"
    assert auto(["Customer ID", "Email"], mapping_file=written).personal_left_out == (("Email", "email"),)


def test_spanish_erp_extracts_raw_values_for_the_normalizer() -> None:
    headers, rows = read_export("erp_clientes.csv")
    extracted = auto(headers).extract(rows[0])
    assert extracted.fields == {
        "code": "C000123",
        "isActive": "S",
        "country": "España",
        "state": "Madrid",
        "city": "Madrid",
        "yearBorn": "14/03/1985",
        "gender": "M",
    }
    assert "Código postal" not in extracted.metadata_extra  # personal data: kept home
    assert extracted.metadata_extra["Saldo"] == "1.234,56"


def test_stripe_metadata_columns_become_plain_keys() -> None:
    headers, rows = read_export("stripe_customers.csv")
    mapping = auto(headers)
    assert target(mapping, "plan (metadata)").target == "metadata.plan"
    extracted = mapping.extract(rows[0])
    assert extracted.metadata_extra["plan"] == "pro"
    assert extracted.metadata_extra["signup_source"] == "google_ads"
    assert "Shipping Address City" not in extracted.metadata_extra  # empty for this customer


# ------------------------------------------------------------------------------------------------
# Header matching
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "field", "lang"),
    [
        # English
        ("Customer Number", "code", "en"),
        ("active", "isActive", "en"),
        ("enabled", "isActive", "en"),
        ("Province", "state", "en"),
        ("Town", "city", "en"),
        ("birth_year", "yearBorn", "en"),
        ("DOB", "yearBorn", "en"),
        ("sex", "gender", "en"),
        # Spanish
        ("Nº cliente", "code", "es"),
        ("Correo electrónico", "code", "es"),
        ("Localidad", "city", "es"),
        ("Municipio", "city", "es"),
        ("Año de nacimiento", "yearBorn", "es"),
        ("Género", "gender", "es"),
        ("Fecha nacimiento", "yearBorn", "es"),
        # Portuguese
        ("Cidade", "city", "pt"),
        ("Data de nascimento", "yearBorn", "pt"),
        ("UF", "state", "pt"),
        ("Ativo", "isActive", "pt"),
        # French
        ("Pays", "country", "fr"),
        ("Ville", "city", "fr"),
        ("Genre", "gender", "fr"),
        ("Date de naissance", "yearBorn", "fr"),
        ("Actif", "isActive", "fr"),
        ("Identifiant", "code", "fr"),
        # German
        ("Land", "country", "de"),
        ("Bundesland", "state", "de"),
        ("Stadt", "city", "de"),
        ("Ort", "city", "de"),
        ("Geschlecht", "gender", "de"),
        ("Geburtsdatum", "yearBorn", "de"),
        ("Kundennummer", "code", "de"),
        ("Aktiv", "isActive", "de"),
        # Italian
        ("Paese", "country", "it"),
        ("Regione", "state", "it"),
        ("Città", "city", "it"),
        ("Sesso", "gender", "it"),
        ("Data di nascita", "yearBorn", "it"),
        ("Codice cliente", "code", "it"),
        ("Attivo", "isActive", "it"),
    ],
)
def test_synonyms_in_six_languages(header: str, field: str, lang: str) -> None:
    headers = [header] if field == "code" else ["id", header]
    choice = target(auto(headers), header)
    assert choice.target == field
    assert lang in choice.how


@pytest.mark.parametrize("header", ["PAÍS", "  pais ", "Pais", "país", "P.a.í.s", "pa-is", "País:"])
def test_matching_ignores_case_accents_spaces_and_punctuation(header: str) -> None:
    assert auto(["id", header]).field_column("country") == header


@pytest.mark.parametrize(
    ("header", "field"),
    [
        ("MailingCountry", "country"),
        ("mailing_country", "country"),
        ("Default Address City", "city"),
        ("billing_city", "city"),
        ("Address Country", "country"),
        ("Country/Region", "country"),
        ("CustomerID", "code"),
        ("isActive", "isActive"),
        ("yearBorn", "yearBorn"),
        ("E-Mail-Adresse", "code"),
        ("Ciudad de facturación", "city"),
        ("City (Billing)", "city"),
    ],
)
def test_prefixes_suffixes_and_camel_case(header: str, field: str) -> None:
    headers = [header] if field == "code" else ["id", header]
    assert target(auto(headers), header).target == field


def test_exact_field_names_say_exact() -> None:
    mapping = auto(["code", "country", "gender"])
    assert [c.how for c in mapping.columns] == ["exact", "exact", "exact"]


@pytest.mark.parametrize(
    "header",
    [
        "Código postal",
        "Postal Code",
        "Phone Country Code",
        "AccountId",
        "Card ID",
        "OwnerId",
        "Accepts Email Marketing",
        "Fecha alta",
        "Marketing contact status",
        "Business Vat ID",
    ],
)
def test_look_alike_columns_are_not_mapped(header: str) -> None:
    # Postcodes are not mapped to a field, and as personal data they stay out of metadata too.
    expected = "ignored" if header in ("Código postal", "Postal Code") else f"metadata.{header}"
    assert target(auto(["id", header]), header).target == expected


def test_billing_beats_shipping_whatever_the_order_and_the_note_says_why() -> None:
    mapping = auto(["id", "shipping_city", "billing_city", "shipping_country"])
    assert mapping.field_column("city") == "billing_city"
    assert target(mapping, "billing_city").how == "exact, prefix 'billing'"
    assert mapping.field_column("country") == "shipping_country"  # the only one there is
    assert target(mapping, "shipping_city").how.startswith("lost to 'billing_city'")
    assert target(mapping, "shipping_city").target == "metadata.shipping_city"
    assert any("city" in n and "billing_city" in n and "shipping_city" in n for n in mapping.notes)


def test_unprefixed_beats_billing_and_other_loses_to_mailing() -> None:
    assert auto(["id", "Billing City", "City"]).field_column("city") == "City"
    assert auto(["Id", "OtherCity", "MailingCity"]).field_column("city") == "MailingCity"
    assert auto(["Id", "Shipping City", "Default Address City"]).field_column("city") == "Default Address City"


def test_code_columns_beat_name_columns_for_country_and_state() -> None:
    mapping = auto(["id", "Country", "Country Code", "Province", "Province Code"])
    assert mapping.field_column("country") == "Country Code"
    assert mapping.field_column("state") == "Province Code"
    assert "code columns win" in target(mapping, "Country").how
    assert any("'Country Code' over 'Country'" in n for n in mapping.notes)


def test_a_year_column_beats_a_birth_date_and_a_state_beats_a_county() -> None:
    mapping = auto(["id", "Birthdate", "Birth Year", "County", "State"])
    assert mapping.field_column("yearBorn") == "Birth Year"
    assert mapping.field_column("state") == "State"


def test_the_leftmost_of_equal_columns_wins() -> None:
    mapping = auto(["id", "Ciudad", "Población"])
    assert mapping.field_column("city") == "Ciudad"
    assert "leftmost" in target(mapping, "Población").how


# ------------------------------------------------------------------------------------------------
# The code
# ------------------------------------------------------------------------------------------------


def test_code_from_email_only_when_there_is_no_id_with_a_note() -> None:
    with_id = auto(["Email", "Customer ID"])
    assert with_id.field_column("code") == "Customer ID"
    assert target(with_id, "Email").how == "personal data (email): kept out of metadata"
    assert not any("no id column" in n for n in with_id.notes)
    assert not with_id.code_from_email
    without = auto(["Name", "Email"])
    assert without.field_column("code") == "Email"
    assert target(without, "Email").how == "email (no id column)"
    assert any("no id column" in n and "'Email'" in n for n in without.notes)
    assert without.code_from_email


def test_plain_email_beats_billing_email_for_the_code() -> None:
    assert auto(["billing_email", "email"]).field_column("code") == "email"


def test_no_column_can_be_the_code() -> None:
    with pytest.raises(InputError, match="no column can be the customer code") as err:
        auto(["Name", "City", "Phone"])
    assert "'Phone'" in str(err.value) and "--map code=" in str(err.value)


# ------------------------------------------------------------------------------------------------
# isActive readings
# ------------------------------------------------------------------------------------------------


def test_baja_is_an_inverted_active_column() -> None:
    mapping = auto(["Código", "Baja"])
    assert mapping.field_column("isActive") == "Baja"
    assert any("inverted" in n for n in mapping.notes)
    values = {
        v: mapping.extract({"Código": "1", "Baja": v}).fields["isActive"]
        for v in ("S", "N", "Sí", "no", "1", "0", "2021-03-01", "")
    }
    assert values == {
        "S": False,
        "N": True,
        "Sí": False,
        "no": True,
        "1": False,
        "0": True,
        "2021-03-01": False,
        "": "",
    }
    assert mapping.extract({"Código": "1", "Baja": True}).fields["isActive"] is False


def test_activo_beats_baja_and_status_is_a_last_resort() -> None:
    assert auto(["id", "Baja", "Activo"]).field_column("isActive") == "Activo"
    mapping = auto(["id", "Status"])
    assert mapping.field_column("isActive") == "Status"
    assert any("Status" in n and "active/inactive" in n for n in mapping.notes)
    assert auto(["id", "Status", "Inactive"]).field_column("isActive") == "Inactive"


# ------------------------------------------------------------------------------------------------
# Metadata
# ------------------------------------------------------------------------------------------------


def test_metadata_column_forms() -> None:
    headers = [
        "id",
        "metadata.tier",
        "metadata_segment",
        "metadata[source]",
        "plan (metadata)",
        "metadata",
        "Favourite colour",
    ]
    mapping = auto(headers)
    assert [c.target for c in mapping.columns[1:]] == [
        "metadata.tier",
        "metadata.segment",
        "metadata.source",
        "metadata.plan",
        "metadata",
        "metadata.Favourite colour",
    ]
    extracted = mapping.extract(
        {
            "id": "1",
            "metadata.tier": "gold",
            "metadata_segment": "",
            "metadata[source]": "web",
            "plan (metadata)": "pro",
            "metadata": '{"a": 1}',
            "Favourite colour": "green",
        }
    )
    assert extracted.metadata_json == '{"a": 1}'
    assert extracted.metadata_extra == {"tier": "gold", "source": "web", "plan": "pro", "Favourite colour": "green"}
    assert "metadata" not in extracted.fields


def test_an_empty_json_metadata_cell_is_none() -> None:
    mapping = auto(["id", "metadata"])
    assert mapping.extract({"id": "1", "metadata": "  "}).metadata_json is None
    assert mapping.extract({"id": "1", "metadata": {"k": 1}}).metadata_json == {"k": 1}


def test_empty_and_null_cells_are_left_out_of_metadata_but_zero_is_kept() -> None:
    mapping = auto(["id", "a", "b", "c", "d"])
    extracted = mapping.extract({"id": "1", "a": "", "b": None, "c": 0, "d": " "})
    assert extracted.metadata_extra == {"c": 0}


def test_new_json_keys_go_to_metadata_unless_restricted() -> None:
    row = {"id": "1", "plan": "pro", "late": "yes", "blank": "", "none": None}
    assert auto(["id", "plan"]).extract(row).metadata_extra == {"plan": "pro", "late": "yes"}
    assert auto(["id", "plan"], extra_metadata=False).extract(row).metadata_extra == {}
    only = auto(["id", "plan"], metadata_columns=("plan",))
    assert only.extract(row).metadata_extra == {"plan": "pro"}


def test_explicit_metadata_key_wins_a_clash_with_an_unmapped_header() -> None:
    mapping = auto(["id", "metadata.plan", "plan"])
    assert any("'plan'" in n for n in mapping.notes)
    assert mapping.extract({"id": "1", "metadata.plan": "gold", "plan": "free"}).metadata_extra == {"plan": "gold"}


def test_no_extra_metadata_drops_unmapped_columns_but_keeps_explicit_ones() -> None:
    mapping = auto(["id", "Name", "metadata.tier"], extra_metadata=False)
    assert target(mapping, "Name").target == "ignored"
    assert target(mapping, "Name").how == "dropped (--no-extra-metadata)"
    extracted = mapping.extract({"id": "1", "Name": "Ann", "metadata.tier": "gold"})
    assert extracted.metadata_extra == {"tier": "gold"}


def test_metadata_columns_keeps_only_those_and_can_take_a_column_from_a_field() -> None:
    mapping = auto(["id", "Name", "Plan", "City", "Town"], metadata_columns=("Plan", "city"))
    assert [c.target for c in mapping.columns] == ["code", "ignored", "metadata.Plan", "metadata.City", "city"]
    assert target(mapping, "Name").how == "dropped (not in --metadata-columns)"


def test_metadata_flags_conflict() -> None:
    with pytest.raises(UsageError, match=r"--no-extra-metadata.*--metadata-columns"):
        MappingOptions(extra_metadata=False, metadata_columns=("Plan",))


def test_metadata_columns_must_exist() -> None:
    with pytest.raises(UsageError, match=r"--metadata-columns: no column 'Plna'.*did you mean 'Plan'"):
        auto(["id", "Plan"], metadata_columns=("Plna",))


# ------------------------------------------------------------------------------------------------
# --map
# ------------------------------------------------------------------------------------------------


def test_map_overrides_the_automatic_choice() -> None:
    mapping = auto(["id", "Country", "Pais de envio"], overrides={"country": "Pais de envio"})
    assert mapping.field_column("country") == "Pais de envio"
    assert target(mapping, "Pais de envio").how == "--map"
    assert target(mapping, "Country").how.startswith("lost to 'Pais de envio' (--map)")
    assert target(mapping, "Country").target == "metadata.Country"


def test_map_accepts_loose_field_and_column_spellings() -> None:
    mapping = auto(["id", "País", "Nacido"], overrides={"year_born": "nacido", "country": "pais"})
    assert mapping.field_column("yearBorn") == "Nacido"
    assert mapping.field_column("country") == "País"


def test_map_can_leave_a_field_empty() -> None:
    mapping = auto(["id", "Gender"], overrides={"gender": ""})
    assert mapping.field_column("gender") is None
    assert target(mapping, "Gender").target == "metadata.Gender"


def test_map_to_a_missing_column_names_the_flag_and_lists_the_columns() -> None:
    with pytest.raises(UsageError) as err:
        auto(["Código", "País"], overrides={"country": "Pays"})
    message = str(err.value)
    assert message.startswith("--map country=Pays: no column 'Pays'")
    assert "columns are: 'Código', 'País'" in message


def test_map_unknown_field() -> None:
    with pytest.raises(UsageError, match=r"--map contry=Pais: unknown field 'contry'.*country"):
        MappingOptions(overrides={"contry": "Pais"})


def test_map_one_column_to_two_fields_is_refused() -> None:
    with pytest.raises(UsageError, match="both"):
        auto(["id", "Where"], overrides={"country": "Where", "city": "Where"})


def test_map_metadata_names_the_json_column() -> None:
    mapping = auto(["id", "extra"], overrides={"metadata": "extra"})
    assert mapping.extract({"id": "1", "extra": '{"x": 1}'}).metadata_json == '{"x": 1}'


def test_map_code_to_nothing_is_refused() -> None:
    with pytest.raises(UsageError, match="code cannot be left empty"):
        auto(["id"], overrides={"code": ""})


# ------------------------------------------------------------------------------------------------
# Mapping files, value maps and defaults
# ------------------------------------------------------------------------------------------------

ERP_MAPPING = """
[columns]
code = "Código cliente"
country = "País"

[values.gender]
"H" = 1
"M" = 2

[values.isActive]
"S" = true
"N" = false

[defaults]
country = "ES"
isActive = true

[metadata]
columns = ["Saldo", "Forma de pago"]
"""


def test_mapping_file_columns_value_maps_defaults_and_metadata(tmp_path: Path) -> None:
    path = tmp_path / "erp.toml"
    path.write_text(ERP_MAPPING, encoding="utf-8")
    headers, rows = read_export("erp_clientes.csv")
    mapping = build_mapping(headers, MappingOptions(mapping_file=path))
    assert target(mapping, "País").how == "mapping file"
    extracted = mapping.extract(rows[0])
    assert extracted.fields["gender"] == 2
    assert extracted.fields["isActive"] is True
    assert extracted.metadata_extra == {"Forma de pago": "Recibo domiciliado", "Saldo": "1.234,56"}
    assert mapping.extract({**rows[0], "País": ""}).fields["country"] == "ES"
    assert mapping.extract({**rows[0], "Sexo": "X"}).fields["gender"] == "X"  # unmapped value


def test_command_line_beats_the_mapping_file(tmp_path: Path) -> None:
    path = tmp_path / "erp.toml"
    path.write_text(ERP_MAPPING, encoding="utf-8")
    headers, _ = read_export("erp_clientes.csv")
    mapping = build_mapping(
        headers,
        MappingOptions(mapping_file=path, overrides={"country": "Provincia"}, extra_metadata=False),
    )
    assert mapping.field_column("country") == "Provincia"
    assert target(mapping, "Saldo").target == "ignored"
    assert mapping.metadata_columns is None and mapping.extra_metadata is False


def test_value_maps_match_json_scalars_by_their_text() -> None:
    mapping = Mapping(
        columns=(
            ColumnChoice("id", "code", "exact"),
            ColumnChoice("g", "gender", "exact"),
            ColumnChoice("a", "isActive", "exact"),
        ),
        value_maps={"gender": {"1": 1, " ": 0}, "isActive": {"true": "yes", "": False}},
        defaults={"city": "Madrid"},
        notes=(),
    )
    assert mapping.extract({"id": "x", "g": 1, "a": True}).fields == {
        "code": "x",
        "gender": 1,
        "isActive": "yes",
        "city": "Madrid",
    }
    # A value map entry for the empty text wins over "no value"; a default fills a missing cell.
    assert mapping.extract({"id": "x", "a": ""}).fields == {"code": "x", "isActive": False, "city": "Madrid"}


def test_defaults_fill_missing_empty_and_absent_columns() -> None:
    mapping = Mapping(
        columns=(ColumnChoice("id", "code", "exact"), ColumnChoice("c", "country", "exact")),
        value_maps={},
        defaults={"country": "ES", "isActive": False},
        notes=(),
    )
    assert mapping.extract({"id": "1", "c": ""}).fields == {"code": "1", "country": "ES", "isActive": False}
    assert mapping.extract({"id": "1"}).fields["country"] == "ES"
    assert mapping.extract({"id": "1", "c": "FR"}).fields["country"] == "FR"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[columns\ncode = 1", "not valid TOML"),
        ("[colums]\ncode = 'id'", "unknown section colums"),
        ("[columns]\ncolor = 'id'", "unknown field 'color' in [columns]"),
        ("[columns]\ncode = 3", "columns.code must be a column header"),
        ("[defaults]\ncode = 'x'", "code cannot have a default"),
        ("[values.gender]\nH = [1]", "values.gender.H must be"),
        ("[metadata]\ncolumns = ['a']\nextra = false", "cannot be combined"),
        ("[metadata]\nkeep = true", "unknown key keep in [metadata]"),
    ],
)
def test_bad_mapping_files_give_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_mapping_file(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_mapping_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        auto(["id"], mapping_file=tmp_path / "nope.toml")


def test_mapping_file_naming_a_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text('[columns]\ncountry = "Land"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"columns\.country = 'Land': no column 'Land'"):
        auto(["id", "Pais"], mapping_file=path)


def _same(a: Mapping, b: Mapping) -> None:
    assert [(c.column, c.target) for c in a.columns] == [(c.column, c.target) for c in b.columns]
    assert a.value_maps == b.value_maps
    assert a.defaults == b.defaults
    assert (a.extra_metadata, a.metadata_columns) == (b.extra_metadata, b.metadata_columns)


def test_written_mapping_reads_back_to_the_same_mapping(tmp_path: Path) -> None:
    source = tmp_path / "in.toml"
    source.write_text(
        ERP_MAPPING + '\n[values.city]\n"Donostia-San Sebastián" = "San Sebastián"\n'
        '"quote\\"back\\\\slash" = 1.5\n"tab\\there" = 1990-01-02\n',
        encoding="utf-8",
    )
    headers, rows = read_export("erp_clientes.csv")
    first = build_mapping(headers, MappingOptions(mapping_file=source, overrides={"gender": ""}))
    out = tmp_path / "out.toml"
    write_mapping_file(first, out)
    again = build_mapping(headers, MappingOptions(mapping_file=out))
    _same(first, again)
    assert again.field_column("gender") is None  # "left empty" survives the round trip
    assert [again.extract(r) for r in rows] == [first.extract(r) for r in rows]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_export_mapping_round_trips(tmp_path: Path, name: str) -> None:
    headers, _ = read_export(name)
    for options in (MappingOptions(), MappingOptions(extra_metadata=False)):
        first = build_mapping(headers, options)
        write_mapping_file(first, tmp_path / "m.toml")
        _same(first, build_mapping(headers, MappingOptions(mapping_file=tmp_path / "m.toml")))


def test_awkward_headers_survive_the_round_trip(tmp_path: Path) -> None:
    headers = ['Cliente "ID"', "back\\slash", "multi\nline", "tab\there", "emoji 🎉", "del\x7f", "[section]", "= sign"]
    first = build_mapping(headers, MappingOptions(metadata_columns=("emoji 🎉", "= sign")))
    path = tmp_path / "m.toml"
    write_mapping_file(first, path)
    tomllib.loads(path.read_text(encoding="utf-8"))  # valid TOML
    again = build_mapping(headers, MappingOptions(mapping_file=path))
    _same(first, again)
    assert again.field_column("code") == 'Cliente "ID"'


def test_write_to_an_impossible_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot write mapping file"):
        write_mapping_file(auto(["id"]), tmp_path / "missing-dir" / "m.toml")


# ------------------------------------------------------------------------------------------------
# The table shown by `biteral-import map`
# ------------------------------------------------------------------------------------------------


def render(mapping: Mapping, rows: list[dict[str, Any]], **kwargs: Any) -> str:
    console = Console(record=True, width=250, color_system=None)
    console.print(mapping_table(mapping, rows, **kwargs))
    return console.export_text()


def test_mapping_table_shows_columns_fields_how_and_samples() -> None:
    headers, rows = read_export("woocommerce_customers.csv")
    text = render(auto(headers), rows, max_samples=2)
    for expected in (
        "Column",
        "Field",
        "How matched",
        "Sample values",
        "billing_city",
        "shipping_city",
        "lost to 'billing_city'",
        "Madrid | Barcelona",
        "metadata.total_spent",
        "personal data (name): kept out of metadata",
        "(none)",
        "gender",
    ):
        assert expected in text
    assert "Madrid | Barcelona | Porto" not in text  # max_samples


def test_mapping_table_prints_headers_literally_and_shows_defaults() -> None:
    mapping = Mapping(
        columns=(ColumnChoice("[bold]id[/bold]", "code", "--map"),),
        value_maps={},
        defaults={"country": "ES"},
        notes=(),
    )
    text = render(mapping, [{"[bold]id[/bold]": "A1"}])
    assert "[bold]id[/bold]" in text
    assert "default 'ES'" in text
