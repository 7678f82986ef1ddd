"""Config parsing: the bundled config loads; mistakes are reported by key."""

from pathlib import Path

import pytest

from sklambda import options
from sklambda.config import RESERVED_FEATURE_NAMES, load_config, parse_config
from sklambda.errors import ConfigError

pytestmark = pytest.mark.unit

MINIMAL = {"name": "m", "target": {"name": "y"}, "features": [{"name": "x"}]}


def test_bundled_config_has_all_eleven_features_and_log_target(house_config):
    assert len(house_config.features) == 11
    assert house_config.target.transform == "log"
    assert [f.name for f in house_config.features if f.transform == "log"] == ["lotsize"]
    assert Path(house_config.data.source).is_file()


def test_minimal_config_gets_defaults():
    config = parse_config(MINIMAL)
    assert config.estimator.kind == "linear_regression"
    assert config.evaluation.cv_folds == 5
    assert config.features[0].type == "number"


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"estimator": {"kind": "svm"}}, "estimator.kind"),
        ({"evaluation": {"cv_folds": 1}}, "evaluation.cv_folds"),
        ({"name": "Bad Name"}, "name"),
        ({"features": []}, "features"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_invalid_config_names_the_key(change, key):
    with pytest.raises(ConfigError) as err:
        parse_config({**MINIMAL, **change})
    assert key in err.value.one_line()


def test_duplicate_feature_is_refused():
    with pytest.raises(ConfigError, match="listed twice"):
        parse_config({**MINIMAL, "features": [{"name": "x"}, {"name": "x"}]})


def test_log_transform_of_a_category_is_refused():
    with pytest.raises(ConfigError, match="log transform"):
        parse_config(
            {**MINIMAL, "features": [{"name": "x", "type": "category", "transform": "log"}]}
        )


@pytest.mark.parametrize("name", sorted(RESERVED_FEATURE_NAMES))
def test_a_feature_named_like_a_request_key_is_refused(name):
    # {"explain": true, ...} or {"instances": [...]} in a body would be read as the option or the
    # request format, never as the feature: such a model could not be asked for one record.
    with pytest.raises(ConfigError, match="request key"):
        parse_config({**MINIMAL, "features": [{"name": name}]})


def test_every_request_option_is_a_reserved_feature_name():
    assert set(options.OPTIONS) <= RESERVED_FEATURE_NAMES


def test_target_listed_as_feature_is_refused():
    with pytest.raises(ConfigError, match="also listed"):
        parse_config({**MINIMAL, "features": [{"name": "y"}]})


def test_missing_file_and_bad_toml_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_relative_data_source_resolves_against_config_folder(tmp_path):
    (tmp_path / "cfg").mkdir()
    path = tmp_path / "cfg" / "m.toml"
    path.write_text(
        'name = "m"\n[data]\nsource = "../d.csv"\n[target]\nname = "y"\n[[features]]\nname = "x"\n'
    )
    assert load_config(path).data.source == str(tmp_path / "d.csv")
