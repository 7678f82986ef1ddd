"""The Swagger page in a real browser (headless Chromium, tests/browser.py) against the local
API: authorize with the key, try POST /predict with the page's own example, read a 200 with a
prediction. The screenshot is kept under test-artifacts/."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

import pytest

from tests.browser import open_page, screenshot
from tests.helpers import Served

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver
    from selenium.webdriver.remote.webelement import WebElement

pytestmark = pytest.mark.e2e

API_KEY = "swagger-e2e-key"
WAIT_SECONDS = 60  # the first POST /predict starts the function and loads the model


@pytest.fixture(scope="module")
def url(serve_template: Callable[..., AbstractContextManager[Served]]) -> Iterator[str]:
    with serve_template(
        API_KEY, concurrency=2, functions=("PredictFunction", "ApiDocsFunction")
    ) as (api, _):
        yield api.url


def visible(driver: WebDriver, css: str, within: WebElement | None = None) -> WebElement:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait

    root = within or driver
    WebDriverWait(driver, WAIT_SECONDS).until(
        lambda _: any(e.is_displayed() for e in root.find_elements(By.CSS_SELECTOR, css))
    )
    found = next(e for e in root.find_elements(By.CSS_SELECTOR, css) if e.is_displayed())
    WebDriverWait(driver, WAIT_SECONDS).until(expected_conditions.element_to_be_clickable(found))
    return found


def authorize(driver: WebDriver, key: str) -> None:
    visible(driver, "button.btn.authorize").click()
    dialog = visible(driver, ".modal-ux")
    visible(driver, "input", dialog).send_keys(key)
    visible(driver, "button.btn.modal-btn.auth.authorize", dialog).click()
    visible(driver, "button.btn-done", dialog).click()


def operation(driver: WebDriver, method: str, path: str) -> WebElement:
    from selenium.webdriver.common.by import By

    xpath = f"//div[contains(@class, 'opblock-{method}')][.//*[@data-path='{path}']]"
    return driver.find_element(By.XPATH, xpath)


def test_swagger_page_executes_post_predict_with_the_key(url: str, chromium: WebDriver) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    open_page(chromium, f"{url}/swagger")
    visible(chromium, ".swagger-ui .info")
    authorize(chromium, API_KEY)

    predict = operation(chromium, "post", "/predict")
    visible(chromium, ".opblock-summary", predict).click()
    visible(chromium, "button.try-out__btn", predict).click()
    example = json.loads(visible(chromium, "textarea.body-param__text", predict).text)
    assert "lotsize" in example  # the page's first example: one record of the served model
    visible(chromium, "button.btn.execute", predict).click()

    status = visible(chromium, ".live-responses-table tr.response .response-col_status", predict)
    WebDriverWait(chromium, WAIT_SECONDS).until(lambda _: status.text.strip())
    reply_text = predict.find_element(
        By.CSS_SELECTOR, ".live-responses-table .response-col_description pre"
    ).text
    chromium.execute_script("arguments[0].scrollIntoView({block: 'center'});", status)
    path = screenshot(chromium, "swagger-post-predict")
    assert path.stat().st_size > 0

    assert status.text.strip() == "200", reply_text[:500]
    reply = json.loads(reply_text)
    assert len(reply["predictions"]) == 1 and reply["predictions"][0] > 0
    # The request went where the page is served: no stage prefix locally.
    request_url = predict.find_element(By.CSS_SELECTOR, ".request-url pre").text.strip()
    assert request_url == f"{url}/predict"
