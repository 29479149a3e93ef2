"""The dashboard end to end: the real app on the local host (devstack.host) with Azurite and the Cosmos
emulator, driven in headless Debian chromium by Playwright (no browser download). Screenshots go to
test-artifacts/dashboard-*.png."""
from __future__ import annotations

import secrets
import shutil
from pathlib import Path

import pytest
import requests

from devstack.apphost import AppHost
from shared.activity import save_activity
from shared.insights import journeys as jr
from shared.insights import refresh
from shared.insights import segments as seg

from .insights_data import NOW, ago, event, purchase, seed_shop
from .test_insights_journeys import SHOP

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason="Debian chromium is not installed (apt-get install -y chromium)")


def seed(store) -> dict:
    seed_shop(store)
    ids = store.container("identifiers")
    for email, pid in (("ann.lee@fastmail.co.uk", "p_ann"), ("bob.ray@fastmail.co.uk", "p_bob")):
        ids.upsert_item({"id": f"email:{email}", "type": "email", "profile_id": pid, "created_at": "2026-01-01T00:00:00Z"})
    for key, pid in (("pos|1", "p_ann"), ("web|a1", "p_ann"), ("web|b1", "p_bob")):
        ids.upsert_item({"id": f"source:{key}", "type": "source", "profile_id": pid, "created_at": "2026-01-01T00:00:00Z"})
    save_activity(store, [
        purchase("pos|1", "o1", ago(30), 120.0, channel="store", items=[{"sku": "SH-1", "category": "shoes"}]),
        purchase("web|b1", "o2", ago(3), 40.0, channel="web", items=[{"sku": "BK-1", "category": "books"}]),
        event("web|a1", 40, "Home", ago(6), type_="page"),
        event("web|a1", 41, "Product Added", ago(0, 20)),
        event("web|b1", 40, "Home", ago(3, 1), type_="page"),
        event("web|b1", 41, "Product Added", ago(2, 23)),  # after the view seed_shop gives Bob 3 days ago
        event("web|b1", 42, "Order Completed", ago(2, 22)),
    ])
    london = seg.create_segment(store, seg.SegmentDefinition(
        name="London", rule={"field": "enrichment.region", "op": "=", "value": "London"}), now=NOW)
    journey = jr.create_journey(store, jr.JourneyDefinition.model_validate(SHOP))
    refresh.refresh_all(store, now=NOW)
    store.container("merges").upsert_item({"id": "m1", "profile_id": "p_ann", "absorbed_id": "p_old", "reason": "rule"})
    return {"segment": london, "journey": journey}


@pytest.fixture
def host(cosmos_store, stack_settings, artifacts_dir):
    from shared.storage import bootstrap_storage

    bootstrap_storage(stack_settings)
    data = seed(cosmos_store)
    key = secrets.token_urlsafe(16)
    with AppHost(stack_settings, artifacts_dir, name="dashboard", keys={"UCP_HOST_FUNCTION_KEYS": key}) as app:
        yield {"url": app.url, "key": key, **data}


def open_page(playwright):
    """(browser, page, the console errors and page errors the page reports as it runs) in headless chromium."""
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--headless=new"])
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    return browser, page, problems


def test_dashboard_in_chromium(host, artifacts_dir):
    from playwright.sync_api import expect, sync_playwright

    url, key = host["url"], host["key"]
    assert requests.get(f"{url}/api/dashboard", timeout=10).status_code == 401  # the page needs the key
    assert requests.get(f"{url}/api/dashboard/assets/app.js", timeout=10).status_code == 401  # keys everywhere
    page_html = requests.get(f"{url}/api/dashboard", params={"code": key}, timeout=10).text
    assert f"dashboard/assets/app.js?code={key}" in page_html  # the page hands its key on to its assets

    with sync_playwright() as p:
        browser, page, problems = open_page(p)
        requested: list[str] = []
        page.on("request", lambda r: requested.append(r.url))
        page.goto(f"{url}/api/dashboard?code={key}")
        page.wait_for_selector("body[data-ready='1']")

        # Profile card: search by email, then by a source record.
        page.fill("#search-value", "Ann.Lee@Fastmail.co.uk")  # normalized as ingestion does
        page.click("#search button[type=submit]")
        page.wait_for_selector("#profile:not([hidden]), #error:not([hidden])")
        assert page.locator("#error").is_hidden(), page.inner_text("#error")
        assert page.inner_text("#profile-name") == "Ann Lee"
        assert "pos|1" in page.inner_text("#profile-sources")
        attributes = page.inner_text("#profile-attributes")
        assert "given_name" in attributes and "most_recent" in attributes
        assert "0.82" in page.inner_text("#churn-gauge") and "high risk" in page.inner_text("#churn-gauge")
        assert "recency" in page.inner_text("#churn-factors")
        assert page.inner_text("#profile-segments") == "London"
        assert "Shop: step 3 of 4 — Cart" in page.inner_text("#profile-stages")
        assert "shoes" in page.inner_text("#profile-needs")
        assert page.locator("#profile-timeline li").count() >= 5
        page.screenshot(path=str(artifacts_dir / "dashboard-profile.png"), full_page=True)

        page.select_option("#search-type", "source")
        page.fill("#search-value", "web|b1")
        page.click("#search button[type=submit]")
        expect(page.locator("#profile-name")).to_have_text("Bob Ray")  # (the page's CSP forbids eval-based waits)
        assert "Shop: step 4 of 4 — Buy ✓" in page.inner_text("#profile-stages")

        page.fill("#search-value", "web|nobody")
        page.click("#search button[type=submit]")
        page.wait_for_selector("#error:not([hidden])")
        assert "no profile" in page.inner_text("#error")

        page.click("button[data-tab=unification]")
        page.wait_for_selector("#unification-chart svg")
        kpis = page.inner_text("#unification-kpis")
        assert "5\nrecords" in kpis and "4\nprofiles" in kpis and "40.0%\nmatch rate" in kpis
        page.screenshot(path=str(artifacts_dir / "dashboard-unification.png"), full_page=True)

        page.click("button[data-tab=churn]")
        page.wait_for_selector("#churn-histogram-svg")
        assert page.locator("#churn-histogram-svg rect").count() == 10
        assert "none published" in page.inner_text("#churn-model")
        page.screenshot(path=str(artifacts_dir / "dashboard-churn.png"), full_page=True)

        page.click("button[data-tab=funnels]")
        page.fill("#funnel-from", ago(30).date().isoformat())
        page.fill("#funnel-to", NOW.date().isoformat())
        page.click("#funnel-form button[type=submit]")
        expect(page.locator("#funnel-title")).to_contain_text("2 entered")
        expect(page.locator("#funnel-table tbody tr")).to_have_count(4)
        rows = page.locator("#funnel-table tbody tr").all_inner_texts()
        assert rows[0].startswith("1. Visit\t2") and rows[3].startswith("4. Buy\t1")
        page.screenshot(path=str(artifacts_dir / "dashboard-funnel.png"), full_page=True)

        page.click("button[data-tab=activity]")
        page.fill("#activity-from", ago(30).date().isoformat())
        page.fill("#activity-to", NOW.date().isoformat())
        page.click("#activity-form button[type=submit]")
        expect(page.locator("#activity-conversion tbody tr")).to_have_count(2)  # web and mobile: the new range is in
        assert "web" in page.inner_text("#activity-conversion")
        assert "160" in page.inner_text("#activity-kpis")  # 120 in store + 40 on the web
        expect(page.locator("#activity-revenue svg")).to_have_count(1)
        assert page.locator("#daily-svg circle").count() == 31  # one point per day, gaps included
        page.screenshot(path=str(artifacts_dir / "dashboard-activity.png"), full_page=True)

        page.click("button[data-tab=segments]")
        page.wait_for_selector("#segments-table tbody tr")
        assert page.inner_text("#segments-table tbody").startswith("London\t2")
        browser.close()

    assert not [p for p in problems if "404" not in p and "Failed to load resource" not in p], problems
    assert all(r.startswith(url) for r in requested)  # nothing fetched from anywhere else (no CDN)
    assert all(f"code={key}" in r for r in requested if "/api/" in r and "/assets/" not in r)


def test_review_list_in_chromium(host, cosmos_store, artifacts_dir):
    """A steward works the review list in the dashboard: filter, open a review side by side, approve, reject."""
    from playwright.sync_api import expect, sync_playwright

    from shared.identity import resolve_records
    from shared.identity.review import get_review
    from shared.models import CustomerRecord
    from shared.settings import get_settings

    home = dict(given_name="Ann", family_name="Lee", postcode="LS1 4AB", city="Leeds")
    card = dict(source="loyalty", given_name="Claire", family_name="Moreau", email="claire.moreau77@shopmail.net")
    other = dict(source="loyalty", given_name="Hugo", family_name="Moreau", email="hugo.moreau41@shopmail.net")
    results = resolve_records(cosmos_store, [
        CustomerRecord(record_key="C-1", loyalty_id="633700000001", **card),
        CustomerRecord(record_key="C-2", loyalty_id="633700000002", **card),  # a second card: protection
        CustomerRecord(record_key="H-1", loyalty_id="633700000011", **other),
        CustomerRecord(record_key="H-2", loyalty_id="633700000012", **other),
        CustomerRecord(source="pos", record_key="A-1", address_line1="1 High Street", email="thelees4300@mail.net",
                       **home),
        CustomerRecord(source="web", record_key="A-2", address_line1="1 High St", email="ann.lee88@post.net", **home),
    ], settings=get_settings())
    assert [r.action for r in results] == ["created", "review"] * 3

    with sync_playwright() as p:
        browser, page, problems = open_page(p)
        page.goto(f"{host['url']}/api/dashboard?code={host['key']}&tab=reviews")
        rows = page.locator("#reviews-table tbody tr")
        expect(rows).to_have_count(3)
        page.on("dialog", lambda dialog: dialog.accept())  # the bulk approval asks first
        page.fill("#review-by", "steward-7")
        page.click("#reviews-approve-all")  # no filter: refused in the page
        expect(page.locator("#error")).to_contain_text("choose a reason or a score")

        page.select_option("#review-reason", "limit")
        page.click("#reviews-form button[type=submit]")
        expect(rows).to_have_count(2)
        assert "loyalty|C-2" in rows.first.inner_text() and "limit:loyalty_id" in rows.first.inner_text()
        rows.first.locator("button").click()
        expect(page.locator("#review-sides")).to_contain_text("loyalty|C-2")
        card_row = page.locator("#review-compare tbody tr", has_text="loyalty_id")
        assert card_row.get_attribute("class") == "differs"
        assert "633700000002" in card_row.inner_text() and "633700000001" in card_row.inner_text()
        assert page.locator("#review-compare tbody tr", has_text="given_name").get_attribute("class") == "same"
        assert "given_name: exact" in page.inner_text("#review-levels")
        page.screenshot(path=str(artifacts_dir / "dashboard-review.png"), full_page=True)
        page.click("#review-approve")
        expect(page.locator("#reviews-count")).to_contain_text("approved: loyalty|C-2")
        expect(rows).to_have_count(1)
        page.fill("#review-min-score", "0.99")
        page.click("#reviews-approve-all")  # Hugo's second card, by one decision
        expect(page.locator("#reviews-count")).to_contain_text("approved 1, not approved 0")
        expect(rows).to_have_count(0)
        page.fill("#review-min-score", "")

        page.select_option("#review-reason", "")
        page.click("#reviews-form button[type=submit]")
        expect(rows).to_have_count(1)
        rows.first.locator("button").click()
        expect(page.locator("#review-sides")).to_contain_text("web|A-2")
        assert page.inner_text("#review-title").startswith("score (match probability 0.")
        assert "email: different" in page.inner_text("#review-levels")
        assert "birth_date: missing on one side" in page.inner_text("#review-levels")
        page.click("#review-reject")
        expect(page.locator("#reviews-count")).to_contain_text("rejected: web|A-2")
        expect(rows).to_have_count(0)
        browser.close()

    reviews = {r["record_key"]: r for r in cosmos_store.container("review").query_items()}
    assert (reviews["loyalty|C-2"]["status"], reviews["loyalty|C-2"]["decided_by"]) == ("approved", "steward-7")
    assert (reviews["loyalty|H-2"]["status"], reviews["loyalty|H-2"]["decided_by"]) == ("approved", "steward-7")
    assert (reviews["web|A-2"]["status"], reviews["web|A-2"]["decided_by"]) == ("rejected", "steward-7")  # kept
    assert get_review(cosmos_store, reviews["loyalty|C-2"]["id"])["profile_id"] == results[0].profile_id
    assert not [p for p in problems if "Failed to load resource" not in p], problems  # (the browser's favicon)
