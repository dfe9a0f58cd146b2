"""A reviewer's walk through the MLflow UI, in a real headless Chromium (Debian's, driven by Selenium).

Version page (``#/models/NAME/versions/N``): the model card as description, the ``challenger`` alias, the gate
tags, a link to the run that made it. That run's artifacts view (``.../runs/RUN/artifacts/review/...``): the
model card rendered, and the dossier one click away.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lmforge.config import load_config
from lmforge.registry.register import register_model

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1400,1000",
]
WAIT_S = 180  # the UI bundle is large; on 2 busy cores the first paint takes a while


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("Debian's chromium and chromium-driver are not installed: run infra/system-deps.sh")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium (dev extra) is not installed")

    profile = tempfile.mkdtemp(prefix="lmforge-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium  # with both paths given, Selenium never tries to download a browser
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    session = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver))
    try:
        yield session
    finally:
        session.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_reviewer_finds_model_card_and_dossier_in_the_ui(browser, sqlite_server, tiny_model_dir: Path,
                                                         tracking_at: Callable[..., None], tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    tracking_at(sqlite_server)
    version = register_model(load_config("tiny", ["registry.model_prefix=ui"]), "teacher", tiny_model_dir,
                             {"val_ppl": 400.0}, {"data": "passed", "distill": "n/a"})

    browser.get(f"{sqlite_server.url}/#/models/{version.name}/versions/{version.version}")
    page = _wait_for_text(browser, f"Model card: {version.name} (teacher)", "challenger", "lmforge.gate.compliance",
                          shot=tmp_path / "version.png")
    assert "Intended use" in page and "Sample generations" in page
    run_link = browser.find_element(By.CSS_SELECTOR, f"a[href*='/runs/{version.run_id}']").get_attribute("href")

    browser.get(f"{run_link}/artifacts/review/model_card.md")
    _wait_for_text(browser, "review/model_card.md", "Intended use", "Compliance", "dossier.json",
                   shot=tmp_path / "model_card.png")
    browser.find_element(By.XPATH, "//*[normalize-space(text())='dossier.json']").click()
    _wait_for_text(browser, "review/dossier.json", '"gates"', '"lineage"', shot=tmp_path / "dossier.png")


def _wait_for_text(browser, *needles: str, shot: Path) -> str:  # browser: a selenium WebDriver
    """The page's visible text once it shows every needle (screenshot in ``shot``); else fail with what it showed."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def shown(driver) -> str | bool:
        text = driver.find_element(By.TAG_NAME, "body").text
        return text if all(n in text for n in needles) else False

    try:
        text = WebDriverWait(browser, WAIT_S, poll_frequency=1).until(shown)
    except TimeoutException:
        browser.save_screenshot(str(shot))
        text = browser.find_element(By.TAG_NAME, "body").text
        pytest.fail(f"{browser.current_url} never showed {needles} (screenshot {shot}):\n{text[:2000]}")
    browser.save_screenshot(str(shot))
    return text
