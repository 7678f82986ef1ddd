"""The batch part of `make sam-local-test` (tools/sam_local/check.py) without SAM or podman: the
resolve event and the input seeded for it fit together, the item batch is re-pinned to the
resolved version, the invoke command names the function and the events, and the judge of a
batch's reply fails what it should."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from sklambda import batch
from sklambda.config import load_config
from sklambda.errors import DataValidationError
from tests.helpers import HOUSE_CONFIG, ROOT, load_event
from tools.sam_local import check

pytestmark = [pytest.mark.unit, pytest.mark.tooling]  # tests of tools/, not the product


class FakeS3:
    """put_object / get_object (with a byte Range) on a dict: enough for the seed and the
    header check that resolve makes."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}

    def put_object(self, *, Bucket: str, Key: str, Body: bytes, **_: Any) -> None:  # noqa: N803
        self.objects[(Bucket, Key)] = Body

    def get_object(self, *, Bucket: str, Key: str, Range: str = "") -> dict[str, Any]:  # noqa: N803
        body = self.objects[(Bucket, Key)]
        if Range:
            first, last = Range.removeprefix("bytes=").split("-")
            body = body[int(first) : int(last) + 1]
        return {"Body": io.BytesIO(body)}


def feature_names() -> list[str]:
    return [f.name for f in load_config(HOUSE_CONFIG).features]


def test_the_seeded_input_is_where_the_resolve_event_points_and_passes_its_header_check() -> None:
    # GIVEN the resolve event SAM is given and the moto S3 seeded as check.py seeds it
    event = load_event(check.BATCH_RESOLVE)
    s3: Any = FakeS3()
    key = check.seed_batch_input(s3, "local-models", event)
    # THEN the object is the one the event names, under batch/in/, and resolve's header check
    # (the one a real invoke makes) accepts it for the model check.py publishes
    assert key == event["key"] and key.startswith(batch.INPUT_PREFIX)
    assert batch.input_format(key) == "csv"
    batch.check_header(s3, "local-models", key, feature_names())  # raises if a column is absent


def test_the_header_check_would_refuse_an_input_without_a_feature() -> None:
    # the check above can fail: the same seed, with one feature's column renamed
    s3: Any = FakeS3()
    key = check.seed_batch_input(s3, "b", load_event(check.BATCH_RESOLVE))
    body = s3.objects[("b", key)]
    s3.objects[("b", key)] = body.replace(b"lotsize", b"lot_size", 1)
    with pytest.raises(DataValidationError, match="no column lotsize"):
        batch.check_header(s3, "b", key, feature_names())


def test_the_item_batch_is_pinned_to_the_version_resolve_returned() -> None:
    event = check.batch_items_event("20261129T000000Z-00000000", "job-sam")
    original = load_event(check.BATCH_ITEMS)
    assert event["BatchInput"] == {**original["BatchInput"], "version": "20261129T000000Z-00000000",
                                   "job_id": "job-sam"}  # fmt: skip
    assert event["Items"] == original["Items"]
    out, rejected = check.BATCH_ITEMS_EXPECTED
    assert out + rejected == len(event["Items"])


def test_the_invoke_command_names_the_batch_function_its_event_and_the_env_file() -> None:
    event = ROOT / "events" / f"{check.BATCH_RESOLVE}.json"
    cmd = check.invoke_command("BatchPredictFunction", event)
    assert cmd[1:4] == ["local", "invoke", "BatchPredictFunction"]
    assert cmd[cmd.index("-e") + 1] == str(event) and event.is_file()
    env_file = Path(cmd[cmd.index("--env-vars") + 1])
    assert "BatchPredictFunction" in json.loads(env_file.read_text())
    assert cmd[cmd.index("--container-host") + 1] == "127.0.0.1"


def test_the_resolve_reply_must_name_the_job_the_input_and_the_live_version() -> None:
    event = load_event(check.BATCH_RESOLVE)
    good = {"job_id": event["job_id"], "key": event["key"], "format": "csv", "version": "v1"}
    assert check.check_batch_resolve({**good, "bucket": "b"}, event, "v1") is None
    assert check.check_batch_resolve({**good, "version": "v0"}, event, "v1") is not None
    error = {"errorType": "NoSuchKey", "errorMessage": "The specified key does not exist."}
    assert "NoSuchKey" in str(check.check_batch_resolve(error, event, "v1"))


def _part_reply(s3: FakeS3, out: int, rejected: int, rows: int = 3) -> dict[str, Any]:
    s3.put_object(Bucket="b", Key="o", Body=b"line,prediction\n" + b"2,1.0\n" * out)
    s3.put_object(Bucket="b", Key="r", Body=b"line,reason\n" + b"4,bad\n" * rejected)
    return {"rows": rows, "out": out, "rejected": rejected, "out_key": "o", "rejected_key": "r"}


@pytest.mark.parametrize(
    ("out", "rejected", "rows", "written_out", "ok"),
    [
        (2, 1, 3, 2, True),
        (3, 0, 3, 3, False),  # the malformed row scored
        (1, 1, 2, 1, False),  # a row missing
        (2, 1, 3, 1, False),  # the reply counts a row its part does not hold
    ],
)
def test_a_batch_reply_passes_only_when_every_row_is_scored_or_rejected_and_written(
    out: int, rejected: int, rows: int, written_out: int, ok: bool
) -> None:
    s3 = FakeS3()
    reply = _part_reply(s3, written_out, rejected, rows)
    reply["out"] = out
    event = check.batch_items_event("v1", "job")
    assert (check.check_batch_part(reply, event, s3, "b") is None) is ok
