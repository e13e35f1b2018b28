"""The admin page driven in headless Chromium against a real gateway process.

The browser is Debian's ``chromium`` (``scripts/test`` installs it), driven by
Playwright; one browser serves the whole module, each test gets a fresh tab.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.conftest import ADMIN_KEY, GatewayProcess, basic, free_port

CHROMIUM = Path("/usr/bin/chromium")
WIDTH, HEIGHT = 1280, 800
LONGEST_NAME = "n" * 64  # the longest display name the API takes, with nowhere to break


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the module."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/test, which installs Debian's chromium")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM))
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh 1280 x 800 tab (its own cookies and storage)."""
    context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
    yield context.new_page()
    context.close()


@pytest.fixture
def gp(gateway_factory: Callable[..., GatewayProcess], redis_url: str) -> GatewayProcess:
    """A gateway on the test Redis with alice (admin) and bob (member) in ``default``.

    Nothing listens on its upstream: a request that passes authentication is a 502.
    """
    g = gateway_factory(store_url=redis_url, upstream=f"http://127.0.0.1:{free_port()}")
    for username, role in (("alice", "admin"), ("bob", "member")):
        status, body = g.admin_call("POST", "/admin/api/users", {"username": username, "role": role})
        assert status == 201, body
    return g


def proxy_status(gp: GatewayProcess, token: str, secret: str) -> int:
    """The status of a proxied request with these Basic credentials."""
    request = urllib.request.Request(gp.proxy + "/api/default/reports",
                                     headers={"Authorization": basic(token, secret)})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code


def connect(page: Page, key: str, actor: str = "") -> None:
    """Fill in the header form and press Connect."""
    page.fill("#key", key)
    page.fill("#actor", actor)
    page.get_by_role("button", name="Connect").click()


def create_in_page(page: Page, name: str) -> tuple[str, str]:
    """Create a workspace token with the page's form; the token and secret it shows."""
    page.fill("#create-name", name)
    page.get_by_role("button", name="Create API key").click()
    expect(page.locator("#created")).to_be_visible()
    token = page.locator("#created-token").inner_text()
    expect(page.locator("#tokens tr", has_text=token)).to_have_count(1)
    return token, page.locator("#created-secret").inner_text()


def test_a_wrong_admin_key_is_said_on_screen_and_clears_what_was_shown(
        page: Page, gp: GatewayProcess) -> None:
    """/admin leads to the page; a wrong key shows a visible message and no token list, also
    after a connection that worked."""
    page.goto(gp.admin + "/admin")
    assert page.url == gp.admin + "/admin/"

    connect(page, "not-the-admin-key")
    expect(page.locator("#status")).to_be_visible()
    expect(page.locator("#status")).to_have_text(
        "The admin key was not accepted: check it and connect again.")
    expect(page.locator("#main")).to_be_hidden()

    connect(page, ADMIN_KEY, "alice")
    expect(page.locator("#status")).to_have_text("Connected as alice")
    token, secret = create_in_page(page, "nightly export")

    connect(page, ADMIN_KEY + "x", "alice")
    expect(page.locator("#status")).to_contain_text("admin key was not accepted")
    expect(page.locator("#main")).to_be_hidden()
    expect(page.locator("#tokens tr")).to_have_count(0)
    html = page.content()
    assert token not in html and secret not in html


def test_a_failed_switch_of_actor_leaves_nothing_of_the_previous_user(
        page: Page, gp: GatewayProcess) -> None:
    """Acting as an unknown user says so in the page's own words and removes the previous
    user's list and one-time secret; a switch that works shows the new user's view only."""
    page.goto(gp.admin + "/admin/")
    connect(page, ADMIN_KEY, "alice")
    token, secret = create_in_page(page, "alice's pipeline")

    connect(page, ADMIN_KEY, "nobody")
    expect(page.locator("#tokens tr")).to_have_count(0)
    status = page.locator("#status")
    expect(status).to_have_text(
        "There is no user \u201cnobody\u201d to act as: check \u201cAct as\u201d "
        "(leave it empty to act as the operator).")
    expect(page.locator("#main")).to_be_hidden()
    html = page.content()
    assert token not in html and secret not in html

    connect(page, ADMIN_KEY, "bob")
    expect(status).to_have_text("Connected as bob")
    expect(page.locator("#tokens tr")).to_have_count(0)  # a member sees only their own
    expect(page.locator("#member-state")).to_have_text("managed by an admin")
    assert token not in page.content()


def test_the_one_time_secret_goes_when_the_actor_changes(page: Page, gp: GatewayProcess) -> None:
    """Editing "Act as" hides the secret at once; connecting as someone else never shows it."""
    page.goto(gp.admin + "/admin/")
    connect(page, ADMIN_KEY, "alice")
    _, secret = create_in_page(page, "for the actor test")

    page.fill("#actor", "")
    expect(page.locator("#created")).to_be_hidden()
    page.get_by_role("button", name="Connect").click()
    expect(page.locator("#status")).to_have_text("Connected as the operator")
    expect(page.locator("#tokens tr")).to_have_count(1)  # the operator sees alice's token
    assert secret not in page.content()


def test_create_then_revoke_at_1280_keeps_every_revoke_button_on_screen(
        page: Page, gp: GatewayProcess) -> None:
    """At 1280 x 800 with the longest names the page fits the window and every row's Revoke
    button is inside the viewport; the shown secret authenticates, and revoking its token
    removes it from the page and from service."""
    for name in (LONGEST_NAME, "quarterly board reporting pipeline for the finance team"):
        status, body = gp.admin_call("POST", "/admin/api/tokens",
                                     {"type": "workspace", "name": name}, actor="alice")
        assert status == 201, body
    page.goto(gp.admin + "/admin/")
    connect(page, ADMIN_KEY, "alice")
    token, secret = create_in_page(page, LONGEST_NAME)
    assert secret.startswith("tgs_")
    assert proxy_status(gp, token, secret) == 502  # authenticated, then the dead upstream

    buttons = page.locator("#tokens").get_by_role("button", name="Revoke")
    expect(buttons).to_have_count(3)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= WIDTH, f"the page is {width} px wide in a {WIDTH} px window"
    for i in range(3):
        box = buttons.nth(i).bounding_box()
        assert box is not None
        assert 0 <= box["x"] and box["x"] + box["width"] <= WIDTH, (i, box)
        assert 0 <= box["y"] and box["y"] + box["height"] <= HEIGHT, (i, box)

    row = page.locator("#tokens tr", has_text=token)
    row.get_by_role("button", name="Revoke").click()
    expect(page.locator("#status")).to_have_text("Revoked " + token)
    expect(page.locator("#created")).to_be_hidden()
    expect(row).to_contain_text("revoked")
    expect(row.get_by_role("button")).to_have_count(0)
    expect(buttons).to_have_count(2)
    assert secret not in page.content()
    assert proxy_status(gp, token, secret) == 401


def test_messages_name_the_act_as_field_not_the_header(page: Page, gp: GatewayProcess) -> None:
    """The operator creating a member token is told to use "Act as", not an HTTP header."""
    page.goto(gp.admin + "/admin/")
    connect(page, ADMIN_KEY)
    expect(page.locator("#status")).to_have_text("Connected as the operator")
    page.select_option("#create-type", "member")
    page.fill("#create-name", "mine")
    page.get_by_role("button", name="Create API key").click()
    status = page.locator("#status")
    expect(status).to_have_class("error")
    expect(status).to_contain_text("\u201cAct as\u201d")
    assert "X-Tokengate-Actor" not in status.inner_text()
    expect(page.locator("#created")).to_be_hidden()


def proxy_call(gp: GatewayProcess, token: str, secret: str, method: str = "GET") -> int:
    """The status of a proxied request with this method and these Basic credentials."""
    request = urllib.request.Request(gp.proxy + "/api/default/reports", method=method,
                                     headers={"Authorization": basic(token, secret)})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code


def test_create_a_scoped_token_roll_it_and_revoke_it(page: Page, gp: GatewayProcess) -> None:
    """The form creates a read-only token for this host with its own limit, and its row says
    so; Roll shows a new secret once while the old one keeps working through the grace
    period, and the row shows the roll; Revoke ends both secrets."""
    page.goto(gp.admin + "/admin/")
    connect(page, ADMIN_KEY, "alice")
    page.fill("#create-name", "read-only reporting")
    page.fill("#create-scopes", "read-only\nPOST /api/{workspace}/reports/{report}/runs")
    page.fill("#create-networks", "127.0.0.1, ::1")
    page.fill("#create-limit", "50")
    page.fill("#create-window", "60")
    page.get_by_role("button", name="Create API key").click()
    expect(page.locator("#created")).to_be_visible()
    token = page.locator("#created-token").inner_text()
    old = page.locator("#created-secret").inner_text()
    row = page.locator("#tokens tr", has_text=token)
    expect(row).to_contain_text(
        "scopes: read-only; POST /api/{workspace}/reports/{report}/runs")
    expect(row).to_contain_text("from 127.0.0.1/32, ::1/128")
    expect(row).to_contain_text("50 per 60 s")
    assert proxy_call(gp, token, old) == 502  # allowed, then the dead upstream
    assert proxy_call(gp, token, old, "DELETE") == 403  # beyond its scopes

    page.fill("#roll-grace", "3600")
    row.get_by_role("button", name="Roll").click()
    expect(page.locator("#status")).to_contain_text("Rolled " + token)
    expect(page.locator("#created-what")).to_contain_text("new secret")
    expect(page.locator("#created-token")).to_have_text(token)
    new = page.locator("#created-secret").inner_text()
    assert new.startswith("tgs_") and new != old
    expect(row).to_contain_text("old secret until")
    assert proxy_call(gp, token, new) == 502
    assert proxy_call(gp, token, old) == 502  # still inside the grace period

    row.get_by_role("button", name="Revoke").click()
    expect(page.locator("#status")).to_have_text("Revoked " + token)
    expect(page.locator("#created")).to_be_hidden()
    expect(row).to_contain_text("revoked")
    expect(row.get_by_role("button")).to_have_count(0)
    assert new not in page.content() and old not in page.content()
    assert proxy_call(gp, token, new) == 401
    assert proxy_call(gp, token, old) == 401


def test_a_bad_grant_in_the_form_is_said_on_screen(page: Page, gp: GatewayProcess) -> None:
    """A scope the API refuses shows its message (naming the grant) and creates nothing."""
    page.goto(gp.admin + "/admin/")
    connect(page, ADMIN_KEY, "alice")
    page.fill("#create-name", "typo")
    page.fill("#create-scopes", "get /api/{workspace}/reports")
    page.get_by_role("button", name="Create API key").click()
    status = page.locator("#status")
    expect(status).to_have_class("error")
    expect(status).to_contain_text("scopes[0].methods")
    expect(page.locator("#created")).to_be_hidden()
    expect(page.locator("#tokens tr")).to_have_count(0)
