"""Data: the bundled CSV is what its provenance says; broken CSVs fail before any fit."""

import hashlib

import pytest

from sklambda.config import parse_config
from sklambda.data import parse_csv, prepare, read_csv, table_from_frame
from sklambda.errors import DataValidationError
from tests.helpers import ROOT

pytestmark = pytest.mark.unit

BUNDLED = ROOT / "training" / "data" / "windsor_housing.csv"
COLUMNS = [
    "price",
    "lotsize",
    "bedrooms",
    "bathrms",
    "stories",
    "driveway",
    "recroom",
    "fullbase",
    "gashw",
    "airco",
    "garagepl",
    "prefarea",
]


def test_bundled_csv_is_the_documented_copy():
    digest = hashlib.sha256(BUNDLED.read_bytes()).hexdigest()
    assert digest == "cf0175a1e0d1af5f57d0c4d4e8890640d8f4465e60d4a660e06df26ba7b47fa8"


def test_bundled_csv_has_546_rows_the_documented_columns_and_no_nulls():
    table = read_csv(BUNDLED)
    assert table.rows == 546
    assert [c for c in table.columns if c] == COLUMNS
    assert all(v.strip() for c in COLUMNS for v in table.columns[c])


def test_bundled_csv_values_have_the_documented_types(house_dataset):
    yes_no = {"yes", "no"}
    for name in ("driveway", "recroom", "fullbase", "gashw", "airco", "prefarea"):
        assert set(house_dataset.table.columns[name]) == yes_no
    assert house_dataset.y.min() > 0
    assert (house_dataset.X[:, house_dataset.schema.names.index("lotsize")] > 0).all()


CONFIG = parse_config(
    {
        "name": "m",
        "target": {"name": "y"},
        "evaluation": {"min_rows": 5},
        "features": [{"name": "x", "type": "integer"}, {"name": "c", "type": "category"}],
    }
)
GOOD_ROWS = "".join(f"{i},{i * 2},{'ab'[i % 2]}\n" for i in range(1, 9))


def _prepare(csv_text: str):
    return prepare(CONFIG, parse_csv(csv_text.encode(), "test.csv"))


def test_good_csv_prepares():
    data = _prepare("y,x,c\n" + GOOD_ROWS)
    assert data.X.shape == (8, 2)
    assert data.schema.features[1].categories == ("a", "b")


@pytest.mark.parametrize(
    ("csv_text", "needle"),
    [
        ("y,c\n" + "1,a\n" * 8, "x: missing column"),
        ("x,c\n" + "1,a\n" * 8, "y: missing target column"),
        ("y,x,c\n" + GOOD_ROWS + "5,five,a\n", "x (line 10): expected a number, got 'five'"),
        ("y,x,c\n" + GOOD_ROWS + "5,,a\n", "x (line 10): value is required but missing"),
        ("y,x,c\n" + GOOD_ROWS + "NaN,3,a\n", "y (line 10)"),
        ("y,x,c\n" + GOOD_ROWS + "5,3\n", "expected 3 fields, found 2"),
        ("y,x,c\n1,2,a\n", "1 rows, at least 5 needed"),
        ("", "no header"),
    ],
)
def test_broken_csv_names_column_and_row(csv_text, needle):
    with pytest.raises(DataValidationError) as err:
        _prepare(csv_text)
    assert needle in err.value.one_line()


def test_unknown_category_against_configured_categories_is_refused():
    config = CONFIG.model_copy(deep=True)
    config = parse_config(
        {
            **config.model_dump(),
            "features": [
                {"name": "x", "type": "integer"},
                {"name": "c", "type": "category", "categories": ["a"]},
            ],
        }
    )
    with pytest.raises(DataValidationError, match="unknown category 'b'"):
        prepare(config, parse_csv(("y,x,c\n" + GOOD_ROWS).encode(), "t.csv"))


def test_non_utf8_csv_is_refused():
    with pytest.raises(DataValidationError, match="not UTF-8"):
        parse_csv(b"y,x\n\xff\xfe,1\n", "latin.csv")


class _Frame:
    """Quacks like a pandas DataFrame for `to_dict('list')` (pandas is not a dependency)."""

    def __init__(self, data):
        self.data = data

    def to_dict(self, orient):
        assert orient == "list"
        return self.data


def test_dataframe_input_is_accepted():
    frame = _Frame({"y": [float(i) for i in range(8)], "x": list(range(8)), "c": ["a", "b"] * 4})
    data = prepare(CONFIG, table_from_frame(frame))
    assert data.X[:, 0].tolist() == [float(i) for i in range(8)]
