"""The web page of `transduce serve` in a real browser: headless Chromium driven by Selenium.

Skipped, saying why, only where no browser is installed (`.ci/run` installs chromium and chromium-driver).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from serve_helpers import EchoModel, running

import transduce

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (it is in the dev extra)")
if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
    pytest.skip(
        f"no browser: {CHROMIUM} and {CHROMEDRIVER} are needed (apt-get install chromium chromium-driver, as .ci/run "
        "does)",
        allow_module_level=True,
    )

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.select import Select  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

#: Draws each character of the text alone on a canvas in the element's font; returns the pictures (data URLs).
#: A missing font draws every character as the same empty box, so distinct pictures mean real glyphs.
GLYPHS = """
const [element, text] = arguments;
const style = getComputedStyle(element);
const canvas = document.createElement("canvas");
canvas.width = 64; canvas.height = 64;
const context = canvas.getContext("2d");
return Array.from(text).map((character) => {
  context.clearRect(0, 0, 64, 64);
  context.font = `32px ${style.fontFamily}`;
  context.fillText(character, 8, 44);
  return canvas.toDataURL();
});
"""


@pytest.fixture(scope="module")
def model(trained_run: Path) -> Any:
    return transduce.load(trained_run, device="cpu")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--lang=en"):
        options.add_argument(argument)
    options.add_argument("--window-size=1200,900")
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(browser: Any, condition: Any, seconds: float = 20) -> Any:
    return WebDriverWait(browser, seconds).until(lambda _: condition())


def ask(browser: Any, text: str) -> None:
    box = browser.find_element(By.ID, "text")
    box.clear()
    box.send_keys(text, Keys.ENTER)


def test_the_page_translates_with_the_n_best_list_and_the_heat_map(browser, model, tmp_path):
    with running([("dates", model)]) as served:
        browser.get(f"http://127.0.0.1:{served.port}/")
        wait_for(browser, lambda: "dates" in browser.find_element(By.ID, "model-info").text)
        assert not browser.find_element(By.ID, "model-picker").is_displayed()  # one model: no picker
        Select(browser.find_element(By.ID, "search")).select_by_value("beam")
        ask(browser, "April 5, 2001")
        output = browser.find_element(By.ID, "output")
        wait_for(browser, output.is_displayed)
        expected = model.translate("April 5, 2001", "beam", size=5, n_best=3)
        assert output.text == expected.text
        rows = browser.find_elements(By.CSS_SELECTOR, "#nbest tbody tr")
        assert [row.find_elements(By.TAG_NAME, "td")[1].text for row in rows] == [a.text for a in expected.alternatives]
        cells = browser.find_elements(By.CSS_SELECTOR, "#heatmap svg rect")
        assert len(cells) == len(expected.attention) * len(expected.source_tokens)
        browser.save_screenshot(str(tmp_path / "translate.png"))
        assert browser.find_element(By.ID, "error").is_displayed() is False


def test_the_page_picks_a_model_chats_and_renders_hangul(browser, model, tmp_path):
    with running([("dates", model), ("echo", EchoModel())]) as served:
        browser.get(f"http://127.0.0.1:{served.port}/")
        picker = browser.find_element(By.ID, "model")
        wait_for(browser, lambda: len(Select(picker).options) == 2)
        assert browser.find_element(By.ID, "model-picker").is_displayed()
        Select(picker).select_by_value("echo")
        Select(browser.find_element(By.ID, "mode")).select_by_value("chat")
        ask(browser, "안녕하세요")
        wait_for(browser, lambda: len(browser.find_elements(By.CSS_SELECTOR, "#chatlog li")) == 2)
        you, reply = browser.find_elements(By.CSS_SELECTOR, "#chatlog li")
        assert (you.text, reply.text) == ("안녕하세요", "요세하녕안")
        pictures = browser.execute_script(GLYPHS, reply, "안녕하세요")
        assert len(set(pictures)) == 5, "the five syllables look alike: no font with Hangul (fonts-noto-cjk)"
        browser.save_screenshot(str(tmp_path / "chat.png"))


def test_the_page_shows_an_error_message_and_asks_for_the_token(browser, model):
    with running([("dates", model)], token="s3cret") as served:
        browser.get(f"http://127.0.0.1:{served.port}/")
        error = browser.find_element(By.ID, "error")
        wait_for(browser, error.is_displayed)
        assert "needs a token" in error.text
        browser.find_element(By.ID, "token").send_keys("s3cret")
        browser.find_element(By.ID, "token-save").click()
        wait_for(browser, lambda: "dates" in browser.find_element(By.ID, "model-info").text)
        assert not error.is_displayed()
        ask(browser, "x" * 3000)  # over the server's 2,000 characters
        wait_for(browser, error.is_displayed)
        assert error.text.startswith("texts.0: ")


def test_the_api_page_lists_the_endpoints_of_the_schema(browser, model):
    with running([("dates", model)]) as served:
        browser.get(f"http://127.0.0.1:{served.port}/docs")
        wait_for(browser, lambda: len(browser.find_elements(By.CSS_SELECTOR, "#endpoints h2")) >= 5)
        titles = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "#endpoints h2")]
        expected = {"POST /v1/translate", "POST /v1/score", "POST /v1/chat", "GET /v1/models", "GET /v1/health"}
        assert expected <= set(titles)
        assert '"texts"' in browser.find_element(By.ID, "endpoints").text  # the request schema, resolved
