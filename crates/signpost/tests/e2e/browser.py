#!/usr/bin/env python3
"""Browser test of signpost's status page (issue 17, point 3).

Driven by crates/signpost/tests/e2e/admin.rs (`status_page_in_chromium`), which
starts signpost and the HTTP backends and reads the steps printed here. Debian's
chromium + chromium-driver, headless, through selenium (PyPI). Protocol on
stdout/stdin: after "step: fail 127.0.0.3" this script waits for a line on
stdin, sent once the test made that endpoint's backend fail.
"""

import argparse
import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

ENDPOINT = '[data-endpoint="shop/web/127.0.0.3"]'


def state_of(driver, selector):
    """The element's data-state, read in one script: the page swaps its live sections
    every two seconds, so a WebElement found earlier may be stale."""
    return driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.dataset.state : null;", selector
    )


def step(text):
    print("step: " + text, flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--artifacts", required=True)
    parser.add_argument("--profile", required=True)
    args = parser.parse_args()

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--user-data-dir=" + args.profile,
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    try:
        run(driver, args)
    except Exception:
        driver.save_screenshot(args.artifacts + "/failure.png")
        with open(args.artifacts + "/failure.html", "w", encoding="utf-8") as page:
            page.write(driver.page_source)
        raise
    finally:
        driver.quit()


def run(driver, args):
    wait = WebDriverWait(driver, 20, poll_frequency=0.1)
    driver.get(args.url)
    wait.until(EC.presence_of_element_located((By.ID, "services")))
    assert "signpost" in driver.title, driver.title
    step("loaded")

    # Search by service name: only shop/web stays.
    search = driver.find_element(By.ID, "search")
    search.send_keys("web")
    wait.until(
        lambda d: d.execute_script("return !document.querySelector('[data-service=\"payments/billing\"]');")
    )
    services = driver.execute_script(
        "return Array.from(document.querySelectorAll('[data-service]'), e => e.dataset.service);"
    )
    assert services == ["shop/web"], services
    assert "search=web" in driver.current_url, driver.current_url
    wait.until(lambda d: state_of(d, ENDPOINT) == "healthy")
    step("found shop/web")

    # The backend of 127.0.0.3 starts failing; the page shows it without a reload.
    marker = driver.execute_script("window.__signpost_marker = 17; return window.__signpost_marker;")
    step("fail 127.0.0.3")
    sys.stdin.readline()
    WebDriverWait(driver, 30, poll_frequency=0.2).until(lambda d: state_of(d, ENDPOINT) == "unhealthy")
    assert driver.execute_script("return window.__signpost_marker;") == marker, "the page reloaded"
    text, history = driver.execute_script(
        "const row = document.querySelector(arguments[0]);"
        "return [row.innerText, Array.from(row.querySelectorAll('.history li'), li => li.className)];",
        ENDPOINT,
    )
    assert "unhealthy" in text and "503" in text, text
    assert history[-2:] == ["dot failing", "dot unhealthy"], history
    step("127.0.0.3 unhealthy")

    # The explain form: which region does 127.0.2.9 get for api.aikernel.io, and why.
    driver.find_element(By.ID, "explain-name").send_keys("api.aikernel.io")
    driver.find_element(By.ID, "explain-client").send_keys("127.0.2.9")
    driver.find_element(By.CSS_SELECTOR, "#explain-form button").click()
    result = wait.until(EC.presence_of_element_located((By.ID, "explain-result")))
    assert result.get_attribute("data-chosen") == "eu-west-1", result.text
    assert "eu-west-1" in result.text and "network" in result.text, result.text
    step("explained eu-west-1")

    # Screenshots: a laptop and a phone.
    for width, height in ((1280, 1000), (390, 844)):
        driver.set_window_size(width, height)
        driver.execute_script("window.scrollTo(0, 0)")
        full = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(width, max(height, min(full, 4000)))
        overflow = driver.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 1, f"horizontal scrolling at {width}px: {overflow}px"
        driver.save_screenshot(f"{args.artifacts}/status-{width}.png")
    step("screenshots")


if __name__ == "__main__":
    main()
