"""Every data problem in one run: all columns at once, true counts (never a capped count shown as
the total), the first few examples of each column, CSV line numbers (the header is line 1) in
training errors, and 0-based row indices into the request in API errors."""

import pytest

from sklambda.config import parse_config
from sklambda.data import parse_csv, prepare
from sklambda.errors import DataValidationError
from sklambda.schema import Feature, FeatureSchema
from tests.helpers import HOUSE_CONFIG
from training.cli import main

pytestmark = pytest.mark.unit

CONFIG = parse_config(
    {
        "name": "m",
        "target": {"name": "y"},
        "features": [
            {"name": "x", "type": "number"},
            {"name": "n", "type": "integer"},
            {"name": "b", "type": "boolean"},
            {"name": "c", "type": "category", "categories": ["a", "b"]},
        ],
        "evaluation": {"min_rows": 5},
    }
)


def table(rows: int, broken: dict[int, dict[str, str]] | None = None) -> str:
    """A CSV of `rows` good rows; broken[i] replaces values of data row i."""
    lines = ["y,x,n,b,c"]
    for i in range(rows):
        row = {"y": str(i), "x": f"{i / 2}", "n": str(i), "b": "yes", "c": "a"}
        row.update((broken or {}).get(i, {}))
        lines.append(",".join(row[k] for k in ("y", "x", "n", "b", "c")))
    return "\n".join(lines) + "\n"


def problems_of(csv_text: str) -> DataValidationError:
    with pytest.raises(DataValidationError) as err:
        prepare(CONFIG, parse_csv(csv_text.encode(), "t.csv"))
    return err.value


def test_every_broken_column_is_reported_in_one_run():
    broken = {i: {"x": "wide"} for i in range(0, 2000, 2)}  # 1,000 bad numbers
    broken |= {i: {**broken.get(i, {}), "n": "2.5"} for i in range(1, 800, 4)}  # 200
    broken[7] = {"b": "perhaps", "c": "z", "y": "free"}
    error = problems_of(table(2000, broken))
    assert error.counts == {"x": 1000, "n": 200, "b": 1, "c": 1, "y": 1}
    assert error.message == (
        "t.csv: 1,203 invalid values in 5 columns: x 1,000, n 200, b 1, c 1, y 1"
    )
    by_field: dict[str, list[int]] = {}
    for p in error.details:
        by_field.setdefault(p.field or "", []).append(p.row)
    assert by_field["x"] == [0, 2, 4, 6, 8]  # the first few of each column, in row order
    assert by_field["n"] == [1, 5, 9, 13, 17]
    assert by_field["c"] == by_field["b"] == by_field["y"] == [7]


def test_a_count_is_the_true_total_not_the_number_of_examples_kept():
    error = problems_of(table(2000, {i: {"x": "?"} for i in range(1775)}))
    assert error.counts == {"x": 1775}
    assert error.message == "t.csv: 1,775 invalid values in x"
    assert len(error.details) == 5
    assert error.one_line().endswith("; ... and 1,770 more")


def test_training_problems_name_the_csv_line_where_the_header_is_line_1():
    error = problems_of(table(20, {0: {"x": "a"}, 9: {"x": "b"}}))
    assert [(p.row, p.line) for p in error.details] == [(0, 2), (9, 11)]
    assert "x (line 2): expected a number, got 'a'" in error.one_line()


def test_line_numbers_count_blank_lines_and_quoted_line_breaks():
    lines = table(8, {5: {"x": "bad"}}).splitlines()
    lines[3:3] = [""]  # a blank line before data row 2
    lines[2] = lines[2].replace(",yes,", ',"ye\ns",', 1)  # data row 1 spans two lines (bad b)
    error = problems_of("\n".join(lines) + "\n")
    assert sorted((p.field, p.row, p.line) for p in error.details) == [
        ("b", 1, 3),
        ("x", 5, 9),
    ]


def test_rows_with_the_wrong_number_of_fields_are_all_counted_with_their_lines():
    lines = table(30).splitlines()
    for i in (4, 9, 14, 19, 24, 29):
        lines[i + 1] += ",extra"
    with pytest.raises(DataValidationError) as err:
        parse_csv(("\n".join(lines) + "\n").encode(), "t.csv")
    assert err.value.message == "t.csv: 6 rows with the wrong number of fields (expected 5)"
    assert [p.line for p in err.value.details] == [6, 11, 16, 21, 26]
    assert err.value.counts == {None: 6}


def test_api_errors_keep_0_based_rows_into_the_request_and_no_lines():
    schema = FeatureSchema((Feature("x", "number"), Feature("b", "boolean")))
    records = [{"x": 1, "b": "yes"}] * 3 + [{"x": "no", "b": "maybe"}] * 60
    with pytest.raises(DataValidationError) as err:
        schema.encode_records(records)
    assert err.value.counts == {"x": 60, "b": 60}
    assert err.value.message == "120 invalid values in 2 columns: x 60, b 60"
    assert [p.as_dict() for p in err.value.details[:1]] == [
        {"field": "x", "message": "expected a number, got string", "row": 3}
    ]
    assert all(p.line is None for p in err.value.details)


def test_the_cli_prints_each_broken_column_on_its_own_line_with_csv_lines(tmp_path, capsys):
    rows = (tmp_path / "sales.csv").open("w")
    header = "price,lotsize,bedrooms,bathrms,stories,driveway,recroom,fullbase,gashw,airco,"
    rows.write(header + "garagepl,prefarea\n")
    for i in range(60):
        lotsize = "big" if i in (3, 40) else "5000"
        airco = "maybe" if i == 10 else "no"
        price = "" if i >= 55 else "50000"
        rows.write(f"{price},{lotsize},3,1,2,yes,no,yes,no,{airco},1,no\n")
    rows.close()
    out = tmp_path / "out"
    code = main(["train", "--config", str(HOUSE_CONFIG), "--data", rows.name, "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err[0] == (
        f"error: {rows.name}: 8 invalid values in 3 columns: lotsize 2, airco 1, price 5"
    )
    assert err[1:] == [
        "  lotsize: 2 invalid values: line 5: expected a number, got 'big'; "
        "line 42: expected a number, got 'big'",
        "  airco: 1 invalid value: line 12: expected a boolean (true/false, yes/no, 1/0), "
        "got 'maybe'",
        "  price: 5 invalid values: line 57: expected a positive number (log target), got ''; "
        "line 58: expected a positive number (log target), got ''; line 59: expected a "
        "positive number (log target), got ''; ... and 2 more",
    ]
    assert not out.exists()
