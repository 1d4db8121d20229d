"""The action page clicked through in a real browser: Debian's headless chromium with a phone-sized viewport
and WeChat's in-app browser user agent, driven by Debian's chromedriver through Selenium. The bot, the
sandbox and the database are the real ones; the browser runs in a worker thread while the loop serves it.

Without chromium the test skips with the reason, unless OZONBOT_REQUIRE_BROWSER=1 (CI), where it fails."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from services.storage.models import Posting
from tests.conftest import CLIENT_ID
from tests.page_helpers import WAYBILL, WECHAT_UA, serving_page
from tests.test_couriers import encode, waybill

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PHONE = {"width": 393, "height": 851, "pixelRatio": 2.75, "touch": True}
WAIT = 20


def _missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists() and not shutil.which(path.name):
            return f"{path} not found (apt-get install chromium chromium-driver)"
    return None


@pytest.fixture
def browser_available() -> None:
    reason = _missing()
    if reason is None:
        return
    if os.environ.get("OZONBOT_REQUIRE_BROWSER") == "1":
        pytest.fail(f"OZONBOT_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(f"no headless browser: {reason}")


class Phone:
    """Chromium as a phone in WeChat, with the few gestures the packer makes."""

    def __init__(self) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service

        options = Options()
        options.binary_location = str(CHROMIUM if CHROMIUM.exists() else shutil.which("chromium"))
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                    "--no-first-run", "--disable-extensions", "--lang=zh-CN", f"--user-agent={WECHAT_UA}"):
            options.add_argument(arg)
        options.add_experimental_option("mobileEmulation", {"deviceMetrics": PHONE, "userAgent": WECHAT_UA})
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        # an explicit chromedriver path: Selenium Manager never looks for (or downloads) one
        driver_path = CHROMEDRIVER if CHROMEDRIVER.exists() else Path(shutil.which("chromedriver"))
        self.driver = webdriver.Chrome(service=Service(str(driver_path)), options=options)

    def quit(self) -> None:
        self.driver.quit()

    def open(self, url: str) -> None:
        self.driver.get(url)

    def text(self) -> str:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.TAG_NAME, "body").text

    def wait_for_text(self, text: str) -> None:
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(self.driver, WAIT, ignored_exceptions=(StaleElementReferenceException,)).until(
            lambda _: text in self.text(), message=f"{text!r} never showed; page: {self.text()[:600]!r}")

    def tap(self, label: str, tag: str = "button") -> None:
        """Taps the control whose text contains `label`, then waits for the page it leads to."""
        from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec
        from selenium.webdriver.support.ui import WebDriverWait

        for attempt in range(3):  # the page may still be replacing itself after the previous tap
            try:
                control = WebDriverWait(self.driver, WAIT).until(ec.element_to_be_clickable(
                    (By.XPATH, f"//{tag}[contains(normalize-space(.), '{label}')]")))
                control.click()
                break
            except (StaleElementReferenceException, WebDriverException):
                if attempt == 2:
                    raise
        try:
            WebDriverWait(self.driver, WAIT).until(ec.staleness_of(control))
        except WebDriverException as exc:  # chromium: "node does not belong to the document" = it is gone
            if "does not belong to the document" not in str(exc):
                raise

    def type_into(self, element_id: str, value: str) -> None:
        from selenium.webdriver.common.by import By

        field = self.driver.find_element(By.ID, element_id)
        field.clear()
        field.send_keys(value)

    def script(self, code: str):
        return self.driver.execute_script(code)

    def console_errors(self) -> list[str]:
        return [entry["message"] for entry in self.driver.get_log("browser") if entry["level"] == "SEVERE"]


def ships(sandbox, number: str) -> int:
    return len([c for c in sandbox.calls_to("/v4/posting/fbs/ship") if c.body.get("posting_number") == number])


def click_through(phone: Phone, url: str, second_number: str, photo: Path) -> dict:
    """What a packer does in WeChat: open the alert's link, switch to English, courier, Packed, the typed
    tracking number; then the second order from the list, finished with a photo of its waybill."""
    seen: dict = {}
    phone.open(url)
    seen["agent"] = phone.script("return navigator.userAgent")
    seen["width"] = phone.script("return window.innerWidth")
    seen["lang_before"] = phone.script("return document.documentElement.lang")
    seen["zh_text"] = phone.text()
    seen["button_height"] = phone.script(
        "return getComputedStyle(document.querySelector('.card button')).minHeight")
    phone.tap("English")
    phone.wait_for_text("SF Express")
    phone.tap("SF Express")
    phone.wait_for_text("Courier: SF Express")
    phone.tap("Packed")
    phone.wait_for_text("Packed in Ozon")
    phone.type_into("number", WAYBILL)
    phone.tap("Send the number")
    phone.wait_for_text(f"Tracking number {WAYBILL} sent to Ozon")
    seen["final"] = phone.text()

    phone.tap("All open orders", tag="a")
    phone.wait_for_text(second_number)
    phone.tap(second_number, tag="a")
    phone.tap("ZTO Express")
    phone.tap("Packed")
    phone.wait_for_text("Packed in Ozon")
    phone.driver.find_element("id", "photo").send_keys(str(photo))
    phone.tap("Read the barcode")
    phone.wait_for_text("first-mile record")
    seen["errors"] = phone.console_errors()
    return seen


async def test_packer_clicks_through_the_action_page_in_wechat_browser(browser_available, make_settings, sandbox,
                                                                       tmp_path):
    own, partner = sandbox.generate_orders(CLIENT_ID, 2, flows=["non_integrated", "aggregator"])
    photo = tmp_path / "waybill.png"
    photo.write_bytes(encode(waybill("75312345678901"), "PNG"))  # a ZTO number
    async with serving_page(make_settings(ozon_api_url=sandbox.base_url), locale="zh_CN") as desk:
        posting = await Posting.get(posting_number=own["posting_number"])
        phone = await asyncio.to_thread(Phone)
        try:
            seen = await asyncio.to_thread(click_through, phone, desk.url(desk.owner, posting.id),
                                           partner["posting_number"], photo)
        finally:
            await asyncio.to_thread(phone.quit)
        row = await Posting.get(posting_number=partner["posting_number"])

    assert "MicroMessenger" in seen["agent"] and seen["width"] <= 430
    assert seen["lang_before"] == "zh-CN" and "顺丰" in seen["zh_text"]
    assert seen["button_height"] == "52px", "the inline style must pass the Content-Security-Policy"
    assert "Status: in delivery" in seen["final"] and f"Tracking sent to Ozon: {WAYBILL}" in seen["final"]
    assert not seen["errors"], seen["errors"]  # no CSP violation, no script error
    assert ships(sandbox, own["posting_number"]) == 1 and ships(sandbox, partner["posting_number"]) == 1
    assert sandbox.posting(CLIENT_ID, own["posting_number"])["tracking_number"] == WAYBILL
    assert row.waybill == "75312345678901" and row.stage == "handed_over"
