"""Browser tests of the review page: Playwright drives Debian's chromium (scripts/test.sh installs it;
Playwright's own browser download is never used) against the real api, ingest, scoring and serving
processes with the pipeline stream and the job runner (so a submission reaching the threshold really
trains, with the reference trainer, and deploys), on the real Postgres, broker, S3 and tritonserver, with
the data of tests/browser/world.py.

Everything here lives for the module: the services stop after it, so later tests can start their own on
the same ports. Screenshots go to $CVLOOP_SCREENSHOTS_DIR when it is set (scripts/screenshots.py sets
docs/screenshots), else to the test session's temporary folder."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from cvloop.sdk import Client
from cvloop.stack import service
from cvloop.stack.settings import sdk_settings
from services.common.settings import Settings
from tests.browser.world import World, build
from tests.sdk_support import new_project, running

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# The whole loop: the pipeline counts submissions and requests trainings, the job runner runs them (and
# the training data's reference jobs), serving follows the deployments the pipeline changes.
SERVICES = [service.Api, service.Ingest, service.Scoring, service.Serving]
SERVICES += [service.Pipeline, service.JobRunner]
# A deployment the pipeline changed reaches serving (and a failed publish its outbox) within a second; the
# promotion gate decides on a page's worth of reviews.
GATE_PAIRS = 10
PROMPT = {
    "pipeline_outbox_retry_s": 0.5,
    "serving_reconcile_interval_s": 0.5,
    "pipeline_gate_min_pairs": GATE_PAIRS,
}


@pytest.fixture(scope="module")
def platform(
    postgres_settings: Settings, kafka_settings: Settings, s3_settings: Settings, triton_settings: Settings
) -> Iterator[Settings]:
    settings = postgres_settings.model_copy(update=PROMPT)
    with running(*(kind(settings) for kind in SERVICES)):
        yield settings


@pytest.fixture(scope="module")
def api_key(platform: Settings) -> str:
    return new_project(platform, f"review-{uuid4().hex[:8]}")


@pytest.fixture(scope="module")
def client(platform: Settings, api_key: str) -> Iterator[Client]:
    with Client(api_key, settings=sdk_settings(platform)) as client:
        yield client


@pytest.fixture(scope="module")
def world(client: Client) -> World:
    return build(client)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Per module: while Playwright's synchronous API runs, its event loop counts as running in this
    thread, which the async tests of other folders cannot share."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/test.sh installs Debian's chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = os.environ.get("CVLOOP_SCREENSHOTS_DIR")
    path = Path(folder) if folder else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def page(world: World, signed_in: Page) -> Page:
    """The review page on the world's data. The world is made before the page: Playwright's synchronous
    API holds an event loop, and making the world runs one of its own."""
    return signed_in


@pytest.fixture
def signed_in(api_key: str, platform: Settings, browser: Browser) -> Iterator[Page]:
    """A fresh page on the review page, signed in with the key through the key form (a module's own data
    made first: see `page`)."""
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, base_url=sdk_settings(platform).api_url
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto("/review")
    page.fill("#key-input", api_key)
    page.click("#key-form button[type=submit]")
    page.wait_for_selector("#key-forget", state="visible")
    yield page
    context.close()
