"""asl-validator (npm, pinned in tools/asl/) on statemachines/*.asl.json, as `make validate` runs
it: the definitions pass, and a deliberately broken copy of each kind fails, so the check can
fail. Skipped, with the reason, without Node.js or before `npm ci --prefix tools/asl`."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ROOT

pytestmark = [pytest.mark.unit, pytest.mark.tooling]

VALIDATOR = ROOT / "tools" / "asl" / "node_modules" / ".bin" / "asl-validator"
DEFINITIONS = sorted((ROOT / "statemachines").glob("*.asl.json"))
BATCH = ROOT / "statemachines" / "batch_transform.asl.json"


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    if shutil.which("node") is None:
        pytest.skip("node is not installed: asl-validator needs Node.js (make validate says so)")
    if not VALIDATOR.exists():
        pytest.skip("no tools/asl/node_modules: `npm ci --prefix tools/asl` (make validate does)")
    return subprocess.run(
        [str(VALIDATOR), "--json-path", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_there_is_a_definition_to_validate() -> None:
    assert BATCH in DEFINITIONS


@pytest.mark.parametrize("path", DEFINITIONS, ids=lambda p: p.name)
def test_the_state_machine_definitions_are_valid(path: Path) -> None:
    done = validate(path)
    assert done.returncode == 0, done.stdout + done.stderr


def _next_to_nowhere(d: dict[str, Any]) -> None:
    d["States"]["Resolve"]["Next"] = "NoSuchState"


def _same_state_name_in_both_maps(d: dict[str, Any]) -> None:
    for name in ("ScoreCsv", "ScoreJsonLines"):
        processor = d["States"][name]["ItemProcessor"]
        (task,) = processor["States"].values()
        processor["States"] = {"ScoreBatch": task}
        processor["StartAt"] = "ScoreBatch"


def _task_without_resource(d: dict[str, Any]) -> None:
    del d["States"]["Resolve"]["Resource"]


def _map_without_processor(d: dict[str, Any]) -> None:
    del d["States"]["ScoreCsv"]["ItemProcessor"]


def _bad_path(d: dict[str, Any]) -> None:
    d["States"]["Resolve"]["Parameters"]["key.$"] = "$$$.key"


BREAKAGES: dict[str, Callable[[dict[str, Any]], None]] = {
    "next-to-a-missing-state": _next_to_nowhere,
    "a-state-name-used-twice": _same_state_name_in_both_maps,
    "a-task-without-resource": _task_without_resource,
    "a-map-without-item-processor": _map_without_processor,
    "a-malformed-path": _bad_path,
}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_a_broken_definition_fails_validation(breakage: str, tmp_path: Path) -> None:
    # GIVEN the batch definition with one deliberate fault
    broken = copy.deepcopy(json.loads(BATCH.read_text()))
    BREAKAGES[breakage](broken)
    path = tmp_path / "broken.asl.json"
    path.write_text(json.dumps(broken))
    # WHEN it is validated as make validate does THEN it fails, saying why
    done = validate(path)
    assert done.returncode != 0
    assert "is invalid" in done.stdout + done.stderr
