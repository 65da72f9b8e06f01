"""The report opened from a file:// URL in a real browser (Chromium through Playwright)."""

from __future__ import annotations

import pytest
from tests.browser import needs_chromium, open_page

pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = needs_chromium


@pytest.fixture(scope="module")
def page(report_path):
    """The report in a headless Chromium, with console errors and requests recorded."""
    with open_page(report_path.resolve().as_uri()) as tab:
        tab.wait_for_load_state("load")
        yield tab


def test_no_console_error_and_no_network_request(page, report_path):
    """The page loads with no console error and asks for nothing but itself."""
    assert page.errors == []
    assert page.requests == [report_path.resolve().as_uri()]


def test_every_image_is_decoded(page):
    """Every <img> in the page has loaded and has pixels."""
    counts = page.evaluate("""() => {
        const images = Array.from(document.images).filter(i => !i.hidden);
        return [images.length, images.filter(i => i.complete && i.naturalWidth > 0).length];
    }""")
    assert counts[0] > 50 and counts[0] == counts[1]


def test_clicking_a_confusion_cell_shows_its_images(page):
    """A click on an off-diagonal cell shows images of exactly that (true, predicted) pair."""
    cell = page.locator("button.cell:not([disabled])").filter(
        has_not=page.locator("xx")).evaluate_all("""cells => {
            const off = cells.filter(c => c.dataset.true !== c.dataset.pred);
            const pick = off.length ? off[off.length - 1] : cells[0];
            return [pick.dataset.true, pick.dataset.pred, Number(pick.textContent)];
        }""")
    true, predicted, count = cell
    page.locator(f'button.cell[data-true="{true}"][data-pred="{predicted}"]').click()
    thumbs = page.locator("#cell-view figure.thumb")
    assert thumbs.count() == min(count, 24)
    assert set(thumbs.evaluate_all("f => f.map(x => x.dataset.true + ',' + x.dataset.pred)")) == {
        f"{true},{predicted}"}
    assert page.evaluate("() => Array.from(document.querySelectorAll('#cell-view img'))"
                         ".every(i => i.complete && i.naturalWidth > 0)")
    assert page.locator(f'button.cell[data-true="{true}"][data-pred="{predicted}"]'
                        ).get_attribute("aria-pressed") == "true"


def test_keyboard_reaches_a_cell_and_the_pca_points(page):
    """Enter on a focused diagonal cell shows its images; arrow keys on the map show a point."""
    button = page.locator('button.cell[data-true="0"][data-pred="0"]')
    button.focus()
    page.keyboard.press("Enter")
    assert page.locator("#cell-title").inner_text().startswith("True ")
    assert page.locator("#cell-view figure.thumb").first.get_attribute("data-pred") == "0"
    page.locator("#pca-map").focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    caption = page.locator("#pca-point figcaption").inner_text()
    assert caption.startswith("#") and "predicted" in caption
    assert page.evaluate("() => document.querySelector('#pca-point img').naturalWidth") > 0


def test_hovering_a_curve_point_shows_its_value(page):
    """Hovering a learning-curve point shows a tooltip with the epoch and the value."""
    page.locator("#curves circle.point").first.hover()
    assert page.locator("#tip").is_visible()
    assert page.locator("#tip").inner_text().startswith("epoch 1, training: ")


def test_a_screenshot_of_each_section(page, tmp_path):
    """Each section renders to a non-empty screenshot, and the page prints to PDF."""
    sections = page.locator("main > section")
    assert sections.count() == 9
    for number in range(sections.count()):
        section = sections.nth(number)
        path = tmp_path / f"{section.get_attribute('id')}.png"
        section.screenshot(path=str(path))
        assert path.stat().st_size > 1000
    pdf = page.pdf()
    assert pdf.startswith(b"%PDF") and len(pdf) > 10_000
