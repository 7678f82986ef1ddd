"""A generated Ames-style housing table (seeded): numbers, integers, booleans written yes/no,
sparse categories, many empty cells, and the columns a config must leave out (identifiers, a
constant, free text, a leakage column, an almost empty one, one with too many levels). Each
column carries what `python -m training init` should decide about it, and `hand_config` is the
config a person would write knowing how the prices were made.

Used by tests/unit/test_infer.py, tests/unit/test_cli_init.py and benchmarks/bench_init.py (so it
sits beside tests/helpers.py rather than under tests/unit/).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

QUALITY = ("Po", "Fa", "TA", "Gd", "Ex")
_REMARKS = (
    "charming bright spacious updated quiet street close to park schools shopping new roof "
    "kitchen bath hardwood floors large yard fenced deck garage basement finished family room "
    "move in ready owner motivated must see great value cozy corner lot mature trees walk "
    "downtown renovated windows furnace appliances stay priced to sell open house sunday"
)


@dataclass(frozen=True)
class Expected:
    """What init should decide: `kind` as it reads the values, and `decision`: "feature",
    "target", or the reason a column is left out."""

    kind: str
    decision: str
    required: bool = True


@dataclass(frozen=True)
class GeneratedTable:
    columns: dict[str, list[str]]
    expected: dict[str, Expected]
    target: str = "price"

    @property
    def rows(self) -> int:
        return len(self.columns[self.target])

    def csv_bytes(self) -> bytes:
        out = io.StringIO(newline="")
        writer = csv.writer(out, lineterminator="\n")
        names = list(self.columns)
        writer.writerow(names)
        writer.writerows(zip(*(self.columns[n] for n in names), strict=True))
        return out.getvalue().encode("utf-8")

    def write_csv(self, path: Path) -> Path:
        path.write_bytes(self.csv_bytes())
        return path


def _levels(rng: np.random.Generator, names: list[str], n: int, skew: float) -> np.ndarray:
    """Levels drawn with Zipf-like frequencies: a few common, a tail of rare ones."""
    weights = 1.0 / np.arange(1, len(names) + 1) ** skew
    return rng.choice(np.array(names), size=n, p=weights / weights.sum())


def _text(values: Any, empty: np.ndarray | None = None, fmt: str = "{}") -> list[str]:
    out = [fmt.format(v) for v in np.asarray(values).tolist()]
    if empty is not None:
        out = ["" if e else v for v, e in zip(out, empty.tolist(), strict=True)]
    return out


def wide_housing_table(rows: int = 3_000, seed: int = 12, extra_columns: int = 0) -> GeneratedTable:  # noqa: PLR0915 (one long recipe reads best in one place)
    """About 80 columns of house sales; log(price) is a hedonic sum with a few non-linear terms
    and an interaction, plus noise. `extra_columns` adds weak numeric columns (to widen it)."""
    rng = np.random.default_rng(seed)
    n = rows
    cols: dict[str, list[str]] = {}
    expect: dict[str, Expected] = {}

    def add(name: str, values: list[str], kind: str, decision: str = "feature") -> None:
        cols[name] = values
        required = all(v != "" for v in values) if decision == "feature" else True
        expect[name] = Expected(kind, decision, required)

    # --- the house -----------------------------------------------------------------------
    quality = np.clip(np.round(rng.normal(6.0, 1.4, n)), 1, 10).astype(int)
    living = np.round(np.exp(rng.normal(np.log(1500) + 0.07 * (quality - 6), 0.28))).astype(int)
    lot = np.round(np.exp(rng.normal(np.log(9000), 0.45, n)), 1)
    condition = np.clip(np.round(rng.normal(5.5, 1.1, n)), 1, 9).astype(int)
    built = np.clip(np.round(2010 - rng.gamma(2.0, 18.0, n)), 1872, 2010).astype(int)
    remodeled = np.where(rng.random(n) < 0.45, rng.integers(built, 2011), built)
    bedrooms = np.clip(np.round(living / 520 + rng.normal(0, 0.6, n)), 0, 8).astype(int)
    full_baths = np.clip(np.round(living / 900 + rng.normal(0, 0.4, n)), 0, 4).astype(int)
    half_baths = rng.choice([0, 1, 2], n, p=[0.62, 0.36, 0.02])
    fireplaces = rng.choice([0, 1, 2, 3], n, p=[0.48, 0.42, 0.09, 0.01])
    has_garage = rng.random(n) > 0.055
    garage_cars = np.where(
        has_garage, np.clip(np.round(1 + quality / 4 + rng.normal(0, 0.5, n)), 1, 5), 0
    ).astype(int)
    garage_area = np.where(has_garage, np.round(garage_cars * 260 + rng.normal(0, 40, n), 1), 0.0)
    has_basement = rng.random(n) > 0.03
    basement = np.where(has_basement, np.round(living * rng.uniform(0.5, 1.0, n), 1), 0.0)
    neighborhoods = [f"N{i:02d}" for i in range(25)]
    hood = _levels(rng, neighborhoods, n, 1.1)
    hood_effect = dict(zip(neighborhoods, rng.normal(0, 0.13, 25).tolist(), strict=True))
    kitchen = np.array(QUALITY)[
        np.clip(np.round((quality - 1) / 2.3 + rng.normal(0, 0.6, n)), 0, 4).astype(int)
    ]
    sale_condition = _levels(
        rng, ["Normal", "Partial", "Abnorml", "Family", "Alloca", "AdjLand"], n, 2.2
    )
    central_air = rng.random(n) > 0.07
    corner = rng.random(n) < 0.18
    renovated = remodeled > built
    renovated_seen = rng.random(n) < 0.10  # empty cells in a boolean column

    log_price = (
        12.0
        + 0.50 * np.log(living / 1500)
        + 0.09 * np.log(lot / 9000)
        + 0.075 * (quality - 6)
        + 0.012 * (quality - 6) ** 2
        + 0.03 * (quality - 6) * np.log(living / 1500) * 4
        + 0.035 * (condition - 5)
        + 0.0028 * (built - 1970)
        + np.where(built >= 2000, 0.05, 0.0)
        + 0.0012 * (remodeled - built)
        + 0.04 * garage_cars
        + 0.09 * basement / 1000
        + 0.05 * np.minimum(fireplaces, 2)
        + 0.08 * central_air
        + 0.02 * corner
        + np.array([hood_effect[h] for h in hood.tolist()])
        + np.select(
            [kitchen == "Ex", kitchen == "Gd", kitchen == "Fa", kitchen == "Po"],
            [0.10, 0.04, -0.05, -0.1],
            0.0,
        )
        + np.select([sale_condition == "Abnorml", sale_condition == "Partial"], [-0.12, 0.04], 0.0)
        + rng.normal(0, 0.10, n)
    )
    price = np.round(np.exp(log_price), -2).astype(int)

    # --- columns to leave out --------------------------------------------------------------
    add("id", _text(np.arange(1, n + 1)), "integer", "identifier")
    parcels = rng.permutation(np.arange(100_000, 100_000 + n))
    add(
        "parcel",
        [f"0{p // 1000:03d}-{p % 1000:03d}-{p % 7}00" for p in parcels.tolist()],
        "category",
        "identifier",
    )
    add("price", _text(price), "integer", "target")
    add("assessed_value", _text(np.round(price * 0.85).astype(int)), "integer", "leakage")
    add("utilities", ["AllPub"] * n, "category", "constant")
    add("survey_year", ["2010"] * n, "integer", "constant")
    remarks = [
        " ".join(rng.choice(_REMARKS.split(), int(k)).tolist()) for k in rng.integers(6, 16, n)
    ]
    add("remarks", [r.capitalize() + "." for r in remarks], "category", "free text")
    add("agent", _text(rng.integers(0, 400, n), fmt="agent-{:03d}"), "category", "too many levels")
    pool = rng.random(n) < 0.004
    add("pool_quality", ["Ex" if p else "" for p in pool.tolist()], "category", "almost empty")

    # --- features ------------------------------------------------------------------------------
    add("lot_area", _text(lot), "number")
    add("living_area", _text(living), "integer")
    frontage = np.round(np.sqrt(lot) * rng.uniform(0.6, 0.9, n), 1)
    add("lot_frontage", _text(frontage, rng.random(n) < 0.17), "number")
    add("overall_quality", _text(quality), "integer")
    add("overall_condition", _text(condition), "integer")
    add("year_built", _text(built), "integer")
    add("year_remodeled", _text(remodeled), "integer")
    add("bedrooms", _text(bedrooms), "integer")
    rooms = bedrooms + 2 + rng.choice([0, 1, 2], n, p=[0.3, 0.5, 0.2])
    add("total_rooms", _text(rooms), "integer")
    add("kitchens", _text(rng.choice([1, 2, 0], n, p=[0.95, 0.045, 0.005])), "integer")
    low_quality = np.where(rng.random(n) < 0.985, 0, rng.integers(50, 600, n))
    add("low_quality_area", _text(low_quality), "integer")
    add("full_baths", _text(full_baths), "integer")
    add("half_baths", _text(half_baths), "integer")
    add("fireplaces", _text(fireplaces), "integer")
    add("garage_cars", _text(garage_cars), "integer")
    add("garage_area", _text(garage_area), "number")
    add(
        "garage_year",
        _text(np.maximum(built, built + rng.integers(-2, 6, n)), ~has_garage),
        "integer",
    )
    add("basement_area", _text(basement), "number")
    add("masonry_area", _text(np.round(rng.exponential(60, n), 1), rng.random(n) < 0.008), "number")
    for name, p_zero, scale in (
        ("wood_deck", 0.52, 120),
        ("open_porch", 0.45, 50),
        ("enclosed_porch", 0.84, 110),
        ("screen_porch", 0.91, 140),
        ("three_season_porch", 0.985, 160),
    ):
        area = np.where(rng.random(n) < p_zero, 0, np.round(rng.gamma(2.0, scale / 2, n)))
        add(name, _text(area.astype(int)), "integer")
    add(
        "misc_value",
        _text(np.where(rng.random(n) < 0.965, 0, rng.choice([400, 500, 700, 1200, 2500], n))),
        "integer",
    )
    add("month_sold", _text(rng.integers(1, 13, n)), "integer")
    add("year_sold", _text(rng.integers(2006, 2011, n)), "integer")
    add("school_distance_km", _text(np.round(rng.gamma(2.0, 1.2, n), 2)), "number")
    add("tax_rate", _text(np.round(rng.normal(1.42, 0.08, n), 3)), "number")

    add("neighborhood", hood.tolist(), "category")
    add(
        "zoning",
        _levels(rng, ["RL", "RM", "FV", "RH", "CommercialOverlay"], n, 2.0).tolist(),
        "category",
    )
    add(
        "building_type",
        _levels(rng, ["1Fam", "TwnhsE", "Duplex", "Twnhs", "2fmCon"], n, 2.5).tolist(),
        "category",
    )
    add(
        "house_style",
        _levels(
            rng,
            ["1Story", "2Story", "1.5Fin", "SLvl", "SFoyer", "2.5Unf", "1.5Unf", "2.5Fin"],
            n,
            1.6,
        ).tolist(),
        "category",
    )
    exteriors = [
        "VinylSd",
        "MetalSd",
        "HdBoard",
        "Wd Sdng",
        "Plywood",
        "CemntBd",
        "BrkFace",
        "WdShing",
        "AsbShng",
        "Stucco",
        "BrkComm",
        "AsphShn",
        "Stone",
        "CBlock",
        "ImStucc",
    ]
    add("exterior_1", _levels(rng, exteriors, n, 1.5).tolist(), "category")
    add("exterior_2", _levels(rng, exteriors, n, 1.5).tolist(), "category")
    add(
        "roof_style",
        _levels(rng, ["Gable", "Hip", "Gambrel", "Flat", "Mansard", "Shed"], n, 2.6).tolist(),
        "category",
    )
    add(
        "roof_material",
        _levels(
            rng,
            ["CompShg", "Tar&Grv", "WdShake", "WdShngl", "Metal", "Membran", "Roll", "ClyTile"],
            n,
            4.0,
        ).tolist(),
        "category",
    )
    add(
        "foundation",
        _levels(rng, ["PConc", "CBlock", "BrkTil", "Slab", "Stone", "Wood"], n, 1.8).tolist(),
        "category",
    )
    add(
        "heating",
        _levels(rng, ["GasA", "GasW", "Grav", "Wall", "OthW"], n, 4.5).tolist(),
        "category",
    )
    add(
        "heating_quality", _levels(rng, ["Ex", "TA", "Gd", "Fa", "Po"], n, 1.3).tolist(), "category"
    )
    add("kitchen_quality", kitchen.tolist(), "category")
    add("exterior_quality", _levels(rng, ["TA", "Gd", "Ex", "Fa"], n, 1.6).tolist(), "category")
    add(
        "exterior_condition",
        _levels(rng, ["TA", "Gd", "Fa", "Ex", "Po"], n, 2.8).tolist(),
        "category",
    )
    no_basement = ~has_basement
    for name, levels in (
        ("basement_quality", ["TA", "Gd", "Ex", "Fa", "Po"]),
        ("basement_condition", ["TA", "Gd", "Fa", "Po", "Ex"]),
        ("basement_exposure", ["No", "Av", "Gd", "Mn"]),
    ):
        add(name, _text(_levels(rng, levels, n, 1.8), no_basement), "category")
    add(
        "basement_finish",
        _text(_levels(rng, ["GLQ", "Unf", "ALQ", "Rec", "BLQ", "LwQ"], n, 0.9), no_basement),
        "category",
    )
    add(
        "fireplace_quality",
        _text(_levels(rng, ["Gd", "TA", "Fa", "Ex", "Po"], n, 1.2), fireplaces == 0),
        "category",
    )
    for name, levels in (
        ("garage_type", ["Attchd", "Detchd", "BuiltIn", "Basment", "2Types", "CarPort"]),
        ("garage_finish", ["Unf", "RFn", "Fin"]),
        ("garage_quality", ["TA", "Fa", "Gd", "Po", "Ex"]),
    ):
        add(name, _text(_levels(rng, levels, n, 2.0), ~has_garage), "category")
    add("alley", _text(_levels(rng, ["Grvl", "Pave"], n, 0.5), rng.random(n) < 0.93), "category")
    add(
        "fence",
        _text(_levels(rng, ["MnPrv", "GdPrv", "GdWo", "MnWw"], n, 1.2), rng.random(n) < 0.80),
        "category",
    )
    add(
        "misc_feature",
        _text(_levels(rng, ["Shed", "Gar2", "Othr", "TenC"], n, 3.0), rng.random(n) < 0.964),
        "category",
    )
    add(
        "masonry_type",
        _text(_levels(rng, ["BrkFace", "Stone", "BrkCmn"], n, 1.5), rng.random(n) < 0.6),
        "category",
    )
    add(
        "sale_type",
        _levels(
            rng, ["WD", "New", "COD", "ConLD", "CWD", "ConLI", "ConLw", "Con", "Oth"], n, 3.0
        ).tolist(),
        "category",
    )
    add("sale_condition", sale_condition.tolist(), "category")
    add("lot_shape", _levels(rng, ["Reg", "IR1", "IR2", "IR3"], n, 2.0).tolist(), "category")
    add("land_contour", _levels(rng, ["Lvl", "HLS", "Bnk", "Low"], n, 3.0).tolist(), "category")
    add(
        "lot_config",
        _levels(rng, ["Inside", "Corner", "CulDSac", "FR2", "FR3"], n, 1.8).tolist(),
        "category",
    )
    add("land_slope", _levels(rng, ["Gtl", "Mod", "Sev"], n, 3.5).tolist(), "category")
    conditions = ["Norm", "Feedr", "Artery", "RRAn", "PosN", "RRAe", "PosA", "RRNn", "RRNe"]
    add("condition_1", _levels(rng, conditions, n, 2.5).tolist(), "category")
    add("condition_2", _levels(rng, conditions, n, 5.0).tolist(), "category")
    add(
        "functional",
        _levels(rng, ["Typ", "Min2", "Min1", "Mod", "Maj1", "Maj2", "Sev"], n, 3.2).tolist(),
        "category",
    )
    add(
        "electrical",
        _levels(rng, ["SBrkr", "FuseA", "FuseF", "FuseP", "Mix"], n, 3.0).tolist(),
        "category",
    )
    add("street", _levels(rng, ["Pave", "Grvl"], n, 6.0).tolist(), "category")
    add("central_air", ["yes" if a else "no" for a in central_air.tolist()], "boolean")
    add("paved_drive", ["yes" if p else "no" for p in (rng.random(n) < 0.9).tolist()], "boolean")
    add("renovated", _text(np.where(renovated, "yes", "no"), renovated_seen), "boolean")
    add("has_basement", ["true" if b else "false" for b in has_basement.tolist()], "boolean")
    # A flag written "Y" or left empty: the empty cells say "no", so it is a category.
    add("corner_lot", ["Y" if c else "" for c in corner.tolist()], "category")
    for k in range(extra_columns):
        add(f"extra_{k:02d}", _text(np.round(rng.normal(0, 1, n), 3)), "number")
    return GeneratedTable(cols, expect)


# The features the prices were made from, with the types and transforms a person would give them.
TRUE_FEATURES: tuple[tuple[str, str, str], ...] = (
    ("living_area", "integer", "log"),
    ("lot_area", "number", "log"),
    ("overall_quality", "integer", "none"),
    ("overall_condition", "integer", "none"),
    ("year_built", "integer", "none"),
    ("year_remodeled", "integer", "none"),
    ("garage_cars", "integer", "none"),
    ("basement_area", "number", "none"),
    ("fireplaces", "integer", "none"),
    ("central_air", "boolean", "none"),
    ("corner_lot", "category", "none"),
    ("neighborhood", "category", "none"),
    ("kitchen_quality", "category", "none"),
    ("sale_condition", "category", "none"),
)


def hand_config(source: Path, kind: str = "ridge", params: str = "{ alpha = 1.0 }") -> str:
    """The config a person would write knowing how the prices were made (TOML text)."""
    lines = [
        'name = "hand-written"',
        f'[data]\nsource = "{source.as_posix()}"',
        '[target]\nname = "price"\ntransform = "log"',
        f'[estimator]\nkind = "{kind}"\nparams = {params}',
    ]
    for name, kind_, transform in TRUE_FEATURES:
        required = "false" if name == "corner_lot" else "true"
        lines.append(
            f'[[features]]\nname = "{name}"\ntype = "{kind_}"\ntransform = "{transform}"\n'
            f"required = {required}"
        )
    return "\n\n".join(lines) + "\n"
