"""The model report in a real headless browser (Debian's chromium, tests/browser.py): the page
`train` writes renders, a screenshot is taken (test-artifacts/model-report.png), and every image
loaded (an <img> with a natural width, an inline SVG with a non-empty box)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sklambda.artifact import train_artifact
from sklambda.config import ModelConfig
from sklambda.data import Dataset
from tests.browser import open_page, screenshot
from training.report import write_report

pytestmark = pytest.mark.e2e

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# What the browser made of the page's images once it loaded.
IMAGES = """
return {
  headings: Array.from(document.querySelectorAll('h2'), h => h.textContent),
  images: Array.from(document.images, i => ({
    alt: i.alt, complete: i.complete, width: i.naturalWidth, height: i.naturalHeight})),
  svgs: Array.from(document.querySelectorAll('svg'), s => {
    const box = s.getBBox(); return box.width * box.height; }),
};
"""


@pytest.fixture(scope="module")
def report_page(
    tmp_path_factory: pytest.TempPathFactory, house_config: ModelConfig, house_dataset: Dataset
) -> Path:
    """The default model's report, as `python -m training train` writes it."""
    out = tmp_path_factory.mktemp("report") / "house-prices"
    trained = train_artifact(house_config, house_dataset, out)
    return write_report(trained, house_config, house_dataset)


def _shown(chromium: Any, page: Path) -> dict[str, Any]:
    open_page(chromium, page)  # returns once the page's load event has fired
    shown: dict[str, Any] = chromium.execute_script(IMAGES)
    return shown


def test_the_model_report_renders_with_every_image_loaded(chromium, report_page):
    shown = _shown(chromium, report_page)
    assert shown["headings"] == ["Metrics", "Holdout", "Feature effects", "Data", "Model card"]
    assert [image["alt"] for image in shown["images"]] == [
        "Actual vs predicted",
        "Residuals",
        "Coefficients",
        "Permutation importance",
    ]
    for image in shown["images"]:
        assert image["complete"] and image["width"] > 0 and image["height"] > 0, image
    assert all(area > 0 for area in shown["svgs"])
    shot = screenshot(chromium, "model-report")
    assert shot.read_bytes().startswith(PNG_SIGNATURE)
    assert shot.stat().st_size > 10_000  # a page with plots, not a blank window


def test_a_broken_image_is_seen_as_not_loaded(chromium, tmp_path):
    # The check above can fail: an image the browser cannot decode has no natural width.
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><img alt="broken" src="data:image/png;base64,AAAA">')
    [image] = _shown(chromium, page)["images"]
    assert image["width"] == 0
