"""`runlog report` in a real browser: Debian's headless Chromium driven by Playwright (the
system browser, never one downloaded at run time; `.ci/run` installs `chromium`). Skipped,
saying why, only when that browser is absent."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from reportledger import HOSTILE_NAME, HOSTILE_PARAMETER, build

CHROMIUM = os.environ.get("RUNLOG_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]

if not Path(CHROMIUM).exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, as .ci/run does)", allow_module_level=True)

from playwright import sync_api  # noqa: E402  (in the test extra: a missing package is a failure, not a skip)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def report(ledger_path, run_cli, tmp_path):
    facts = build(ledger_path)
    target = tmp_path / "report.html"
    result = run_cli("report", "-o", target)
    assert result.exit_code == 0, result.output
    return target, facts


def open_page(browser, path: Path, *, javascript: bool = True):
    context = browser.new_context(java_script_enabled=javascript)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
    page.on("request", lambda r: problems.append(f"request: {r.url}") if not r.url.startswith("file:") else None)
    page.goto(path.as_uri())
    return page, problems


def test_no_console_errors_and_one_node_per_run_one_edge_per_replay(browser, report):
    path, facts = report
    page, problems = open_page(browser, path)
    assert page.locator("svg.lineage .node").count() == facts["runs"]
    assert page.locator("svg.lineage .edge-replay").count() == facts["replays"]
    assert page.locator("#runs-table tbody tr:visible").count() == facts["runs"]
    assert page.locator("#count").inner_text() == f"{facts['runs']} of {facts['runs']} runs"
    assert problems == []
    page.context.close()


def test_filter_narrows_the_table(browser, report):
    path, facts = report
    page, problems = open_page(browser, path)
    page.fill("#filter", "replay-")
    rows = page.locator("#runs-table tbody tr:visible")
    assert rows.count() == 2
    assert all("replay-" in text for text in rows.all_inner_texts())
    page.fill("#filter", "")
    page.select_option("#status-filter", "COMPLETED")
    assert page.locator("#runs-table tbody tr:visible").count() == 2  # the original and the import
    page.select_option("#status-filter", "")
    assert page.locator("#runs-table tbody tr:visible").count() == facts["runs"]
    assert problems == []
    page.context.close()


def test_sorting_by_a_column(browser, report):
    path, _ = report
    page, problems = open_page(browser, path)
    page.click("#runs-table th:nth-child(6) button")  # run id, ascending
    ids = [t.strip() for t in page.locator("#runs-table tbody tr td:nth-child(6)").all_inner_texts()]
    assert ids == sorted(ids)
    page.click("#runs-table th:nth-child(6) button")
    ids = [t.strip() for t in page.locator("#runs-table tbody tr td:nth-child(6)").all_inner_texts()]
    assert ids == sorted(ids, reverse=True)
    assert page.get_attribute("#runs-table th:nth-child(6)", "aria-sort") == "descending"
    assert problems == []
    page.context.close()


def test_clicking_a_node_shows_its_section(browser, report):
    path, facts = report
    page, problems = open_page(browser, path)
    address = facts["addresses"]["replay"]
    section = page.locator(f"#run-{address[:16]}")
    assert not section.is_visible()
    page.click(f'svg.lineage .node[data-id="{address}"]')
    assert section.is_visible()
    assert "Changes since the run it replays" in section.text_content()
    assert page.evaluate("location.hash") == f"#run-{address[:16]}"
    assert problems == []
    page.context.close()


def test_injected_markup_does_not_run(browser, report):
    path, facts = report
    page, problems = open_page(browser, path)
    page.click(f'svg.lineage .node[data-id="{facts["addresses"]["hostile"]}"]')
    section = page.locator(f"#run-{facts['addresses']['hostile'][:16]}")
    assert HOSTILE_NAME in section.inner_text()  # shown as text, character for character
    assert HOSTILE_PARAMETER in section.inner_text()
    page.fill("#filter", "onerror")  # re-renders the table rows holding it
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("img").count() == 0
    assert problems == []
    page.context.close()


def test_without_javascript_tables_and_graph_are_there(browser, report):
    path, facts = report
    page, problems = open_page(browser, path, javascript=False)
    assert page.locator("#runs-table tbody tr:visible").count() == facts["runs"]
    assert page.locator("svg.lineage .node").count() == facts["runs"]
    assert page.locator("svg.chart").count() == 1
    assert not page.locator("#controls").is_visible()  # the controls need the script: hidden without it
    address = facts["addresses"]["original"]
    page.click(f'svg.lineage .node[data-id="{address}"]')  # links and :target open sections without script
    assert page.locator(f"#run-{address[:16]}").is_visible()
    assert problems == []
    page.context.close()


def test_pages_of_a_hundred_rows(browser, ledger_path, run_cli, tmp_path):
    from recordfactory import make_record
    from runlog.ledger import Ledger

    with Ledger.open(ledger_path) as ledger:
        ledger.add_records([make_record(run_id=str(2000000 + i), name=f"run-{i:03d}") for i in range(130)])
    target = tmp_path / "big.html"
    assert run_cli("report", "-o", target).exit_code == 0
    page, problems = open_page(browser, target)
    rows = page.locator("#runs-table tbody tr:visible")
    assert rows.count() == 100 and "page 1 of 2" in page.inner_text("#count")
    page.click("#next")
    assert rows.count() == 30 and "page 2 of 2" in page.inner_text("#count")
    page.fill("#filter", "run-007")
    assert rows.count() == 1 and page.inner_text("#count") == "1 of 130 runs"
    page.emulate_media(media="print")  # printed (to PDF): every row and every section, no controls
    assert rows.count() == 130 and page.locator("section.run:visible").count() == 130
    assert not page.locator("#controls").is_visible()
    assert page.pdf()[:5] == b"%PDF-"
    assert problems == []
    page.context.close()
