"""tools/local/rie.py: the REPORT line the local runner prints holds only what it measured.

The Lambda RIE's own REPORT line makes figures up: "Max Memory Used" is the memory limit and
"Init Duration" is a few hundredths of a millisecond beside a multi-second cold start.
"""

from __future__ import annotations

import os
import resource
import sys

import pytest

from tools.local.rie import Measured, peak_rss_bytes, report_line

pytestmark = [pytest.mark.unit, pytest.mark.tooling]  # tests of tools/, not the product

RIE_COLD = (
    "REPORT RequestId: c9621889-a76e-48ed-944f-0a3f3dff0340\tInit Duration: 0.02 ms\t"
    "Duration: 766.08 ms\tBilled Duration: 767 ms\tMemory Size: 1024 MB\tMax Memory Used: 1024 MB"
)
RIE_WARM = (
    "REPORT RequestId: cd7d9e69-fa28-4106-a866-fffa0e3f7fff\tDuration: 2.78 ms\t"
    "Billed Duration: 3 ms\tMemory Size: 1024 MB\tMax Memory Used: 1024 MB"
)
MADE_UP = ("Init Duration", "Billed Duration", "Max Memory Used", "Memory Size", "Duration: ")


def fields(line: str) -> dict[str, str]:
    head, *rest = line.split("\t")
    assert head.startswith("REPORT RequestId: ")
    return dict(field.split(": ", 1) for field in rest) | {"RequestId": head.split(": ", 1)[1]}


def test_cold_report_has_the_runners_figures_only() -> None:
    measured = Measured(round_trip_ms=812.345, cold_start_ms=1290.5, peak_rss_bytes=150 * 2**20)
    line = report_line(RIE_COLD, measured)
    for name in MADE_UP:
        assert name not in line
    assert fields(line) == {
        "RequestId": "c9621889-a76e-48ed-944f-0a3f3dff0340",
        "Round trip": "812.35 ms",
        "Cold start": "1290.50 ms",
        "Peak RSS": "150.0 MiB",
    }


def test_warm_report_has_no_cold_start_and_nothing_unmeasured() -> None:
    line = report_line(RIE_WARM, Measured(round_trip_ms=3.1))
    assert fields(line) == {
        "RequestId": "cd7d9e69-fa28-4106-a866-fffa0e3f7fff",
        "Round trip": "3.10 ms",
    }


def test_fields_the_rie_did_not_make_up_are_kept() -> None:
    rie = RIE_WARM + "\tStatus: timeout\tError Type: Runtime.ExitError"
    got = fields(report_line(rie, Measured(round_trip_ms=1000.0)))
    assert (got["Status"], got["Error Type"]) == ("timeout", "Runtime.ExitError")
    assert "Max Memory Used" not in got


def test_without_the_ries_line_the_request_id_is_given_or_unknown() -> None:
    assert fields(report_line(None, Measured(round_trip_ms=1.0), "abc"))["RequestId"] == "abc"
    assert fields(report_line(None, Measured(round_trip_ms=1.0)))["RequestId"] == "-"


@pytest.mark.skipif(sys.platform != "linux", reason="/proc/<pid>/status is Linux only")
def test_peak_rss_is_vmhwm_from_proc() -> None:
    got = peak_rss_bytes(os.getpid())
    assert got is not None
    # ru_maxrss is the same high-water mark, in KiB on Linux.
    expected = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert abs(got - expected) <= 0.1 * expected


def test_peak_rss_of_a_missing_process_is_unknown() -> None:
    assert peak_rss_bytes(2**22 + 12345) is None  # above Linux's pid_max limit
