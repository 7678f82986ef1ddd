"""CLI: trains with progress and a metrics table; bad input is one line, no traceback."""

import pytest

from tests.helpers import HOUSE_CONFIG
from training.cli import main

pytestmark = pytest.mark.unit


def test_train_writes_artifact_and_prints_metrics(tmp_path, capsys):
    assert main(["train", "--config", str(HOUSE_CONFIG), "--out", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert "cv fold 5/5" in out
    assert "r2" in out and "holdout" in out
    assert (tmp_path / "m" / "model.joblib").is_file()
    assert (tmp_path / "m" / "manifest.json").is_file()


@pytest.mark.parametrize(
    ("csv_text", "needle"),
    [
        ("price,lotsize\n1,2\n", "error: "),
        ("not,a,housing\nfile\n", "expected 3 fields"),
    ],
)
def test_broken_csv_is_one_line_error_and_writes_nothing(tmp_path, capsys, csv_text, needle):
    data = tmp_path / "broken.csv"
    data.write_text(csv_text)
    out = tmp_path / "out"
    code = main(["train", "--config", str(HOUSE_CONFIG), "--data", str(data), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1
    assert needle in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
    assert not out.exists()
    assert not any(p.name.startswith(".staging") for p in tmp_path.iterdir())


def test_registry_command_without_bucket_explains(monkeypatch, capsys):
    monkeypatch.delenv("MODEL_BUCKET", raising=False)
    assert main(["list"]) == 1
    assert "pass --bucket or set MODEL_BUCKET" in capsys.readouterr().err


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("train", "publish", "promote", "rollback", "list", "show"):
        assert command in out
