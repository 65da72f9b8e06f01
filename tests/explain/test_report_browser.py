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
    assert sections.count() == 11
    for number in range(sections.count()):
        section = sections.nth(number)
        path = tmp_path / f"{section.get_attribute('id')}.png"
        section.screenshot(path=str(path))
        assert path.stat().st_size > 1000
    pdf = page.pdf()
    assert pdf.startswith(b"%PDF") and len(pdf) > 10_000


# --- Linked views: a map, its kernels, a pixel ------------------------------------------------


def _example(page):
    """The first example of the feature-map section, once its maps are drawn."""
    article = page.locator("article[data-example]").first
    page.wait_for_selector("article[data-example][data-ready=true]")
    return article


def _click_pixel(page, detail, row: int, column: int, shape: tuple[int, int]) -> None:
    box = detail.locator(".fm-big canvas").bounding_box()
    page.mouse.click(box["x"] + (column + 0.5) * box["width"] / shape[1],
                     box["y"] + (row + 0.5) * box["height"] / shape[0])


def _reference(report_path, example: int, layer: int, channel: int, pixel):
    """cnnkit.featuremaps' answer for one pixel of the example's map, from the run's model."""
    from cnnkit.evaluation import load_split
    from cnnkit.featuremaps import map_detail
    from cnnkit.model import TrainedModel

    model = TrainedModel.load(report_path.parent, engine="numpy")
    _, _, images, _ = load_split(model.checkpoint, "the run")
    inputs = model.normalise(images[example][None])
    return model, map_detail(model, inputs, layer, channel, pixel)


def test_a_map_opens_with_the_map_it_came_from_and_its_kernel(page, report_path):
    """A click on relu1 map 2 shows it large with conv1 map 2 as its source; opening that
    shows kernel 2, whose numbers are the checkpoint's weights."""
    article = _example(page)
    article.locator('.fm-tile[data-layer="1"][data-channel="2"]').click()
    detail = article.locator(".fm-detail")
    assert detail.locator("h3").inner_text().startswith("relu1 map 2")
    assert detail.locator(".fm-text").inner_text() == "relu1 map 2 = max(0, conv1 map 2)"
    assert article.locator('.fm-tile[aria-pressed=true]').get_attribute("data-channel") == "2"
    detail.locator(".fm-open").click()
    assert detail.locator("h3").inner_text().startswith("conv1 map 2")
    shown = [float(cell) for cell in detail.locator(".fm-kernels td").all_inner_texts()]
    model, _ = _reference(report_path, int(article.get_attribute("data-example")), 0, 2, None)
    weights = model.checkpoint.model["0.weight"][2, 0].ravel()
    assert shown == pytest.approx(weights.tolist(), rel=1e-3, abs=1e-6)


def test_a_pixel_shows_its_window_and_a_sum_equal_to_the_map(page, report_path):
    """On conv1 map 2 a clicked pixel shows its 3×3 window (padding marked at the border), the
    kernel, the products, and a sum equal to the network's value there, which is cnnkit's."""
    article = _example(page)
    detail = article.locator(".fm-detail")
    article.locator('.fm-tile[data-layer="1"][data-channel="2"]').click()
    detail.locator(".fm-open").click()
    _click_pixel(page, detail, 0, 5, (28, 28))
    page.wait_for_function("() => document.querySelector('article[data-example] .fm-check')")
    assert detail.locator(".fm-pixel h4").inner_text() == "Pixel (0, 5) of conv1 map 2"
    window = detail.locator(".fm-channel table").first
    assert window.locator("td").count() == 9 and window.locator("td.pad").count() == 3
    computed = float(detail.locator(".fm-sum").inner_text().split("= ")[-1])
    value = float(detail.locator(".fm-value").inner_text())
    _, reference = _reference(report_path, int(article.get_attribute("data-example")), 0, 2,
                              [0, 5])
    assert computed == pytest.approx(value, abs=2e-4)
    assert value == pytest.approx(reference["pixel"]["value"], rel=1e-5, abs=2e-4)
    assert "the same up to rounding" in detail.locator(".fm-check").inner_text()


def test_the_keyboard_opens_a_map_and_walks_its_pixels(page, report_path):
    """Tab moves from one layer's tiles to the next layer's, the arrow keys to another map,
    Enter opens it; on the enlarged map the arrow keys choose pixels, whose maximum and window
    are cnnkit's."""
    article = _example(page)
    article.locator('.fm-tiles[data-layer="1"] .fm-tile').first.focus()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.dataset.layer") == "2"
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Enter")
    detail = article.locator(".fm-detail")
    assert detail.locator("h3").inner_text().startswith("pool1 map 1")
    assert page.evaluate("document.activeElement.classList.contains('fm-big')")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowRight")
    assert detail.locator(".fm-pixel h4").inner_text() == "Pixel (1, 1) of pool1 map 1"
    _, reference = _reference(report_path, int(article.get_attribute("data-example")), 2, 1,
                              [1, 1])
    cells = detail.locator(".fm-pixel td").all_inner_texts()
    assert [float(c) for c in cells] == pytest.approx(
        [v for row in reference["pixel"]["window"] for v in row], rel=1e-3, abs=2e-4)
    assert float(detail.locator(".fm-value").inner_text()) == pytest.approx(
        reference["pixel"]["value"], rel=1e-5, abs=2e-4)


def test_a_deeper_convolution_shows_a_kernel_per_input_channel(page, report_path):
    """conv2's maps come from six pool1 maps: six kernels and their sum, and a pixel's six
    channel sums plus the bias equal the network's value."""
    article = _example(page)
    article.locator('.fm-tile[data-layer="4"][data-channel="3"]').click()
    detail = article.locator(".fm-detail")
    detail.locator(".fm-open").click()
    assert detail.locator("h3").inner_text().startswith("conv2 map 3")
    assert detail.locator(".fm-kernels canvas").count() == 6 + 1
    assert detail.locator(".fm-sources .fm-frame").count() == 6
    _click_pixel(page, detail, 7, 7, (14, 14))
    detail.locator(".fm-check").wait_for()
    assert detail.locator("details.fm-channel").count() == 6
    computed = float(detail.locator(".fm-sum").inner_text().split("= ")[-1])
    _, reference = _reference(report_path, int(article.get_attribute("data-example")), 3, 3,
                              [7, 7])
    assert computed == pytest.approx(reference["pixel"]["computed"], rel=1e-4, abs=5e-4)
    detail.locator(".fm-close").click()
    assert detail.is_hidden()
    assert page.evaluate("document.activeElement.dataset.channel") == "3"


def test_no_console_error_after_the_linked_views(page, report_path):
    """The linked views logged no error and asked for nothing outside the file."""
    assert page.errors == []
    assert page.requests == [report_path.resolve().as_uri()]
