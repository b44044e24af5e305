"""The WebUI in a real headless Chromium (Debian's), driven by Playwright, against a real server.

Playwright only talks to the browser binary given; it never downloads one.
The checks read the pixels the page rendered (through a canvas), not the HTML alone.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from m2fp_server.evaluation.groundtruth import Placement, still
from m2fp_server.web.frontend import HttpFrontEnd
from m2fp_server.web.settings import HttpSettings

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PERSON_RGB = (255, 85, 0)
GREEN = (0, 255, 0)

#: Draw an <img> into a canvas and read the RGBA of the given (x, y) points.
SAMPLE_JS = """async ([id, points]) => {
  const img = document.getElementById(id);
  await img.decode();
  const c = document.createElement("canvas");
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const g = c.getContext("2d");
  g.drawImage(img, 0, 0);
  return { size: [c.width, c.height],
           px: points.map(([x, y]) => Array.from(g.getImageData(x, y, 1, 1).data)) };
}"""


@pytest.fixture()
def web(server):  # type: ignore[no-untyped-def]
    fe = HttpFrontEnd.sharing(server, HttpSettings(port=0))
    fe.start()
    yield fe
    fe.stop()


@pytest.fixture()
def page(tmp_path):  # type: ignore[no-untyped-def]
    from playwright.sync_api import sync_playwright
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install chromium (see .ci/run)")
    with sync_playwright() as pw:
        # a persistent context on a fresh profile directory: nothing from another run leaks in
        ctx = pw.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=CHROMIUM,
                                                    headless=True, args=CHROMIUM_FLAGS,
                                                    viewport={"width": 1280, "height": 1000})
        pg = ctx.pages[0] if ctx.pages else ctx.new_page()
        pg.problems = []  # console errors (CSP violations show up here) and uncaught exceptions
        pg.on("console", lambda m: pg.problems.append(m.text) if m.type == "error" else None)
        pg.on("pageerror", lambda e: pg.problems.append(str(e)))
        try:
            yield pg
        finally:
            ctx.close()


def points(mask: np.ndarray, n: int, seed: int) -> list[list[int]]:
    """n (x, y) points well inside ``mask`` (eroded, so edges never decide a check)."""
    inner = cv2.erode(mask.astype(np.uint8), np.ones((31, 31), np.uint8))
    ys, xs = np.nonzero(inner)
    pick = np.random.default_rng(seed).choice(len(xs), n, replace=False)
    return [[int(xs[i]), int(ys[i])] for i in pick]


def wait_state(pg, state: str) -> None:  # type: ignore[no-untyped-def]
    # a function, not an expression: Playwright evals expressions, which the page's CSP forbids
    pg.wait_for_function("(s) => document.body.dataset.state === s", arg=state, timeout=10_000)


def next_render(pg, action) -> None:  # type: ignore[no-untyped-def]
    """Do ``action`` and wait until the page has drawn the reply it causes."""
    before = int(pg.evaluate("Number(document.body.dataset.renders || 0)"))
    action()
    pg.wait_for_function("(n) => Number(document.body.dataset.renders || 0) > n "
                         "&& document.body.dataset.state === 'done'", arg=before, timeout=15_000)


def test_upload_a_photo_and_see_parsing_mask_and_composite(web, page, tmp_path):
    rgb, truth = still("astronaut", (640, 480), Placement(cx=0.45, bottom=1.0, height=0.92), seed=11)
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    fg, bg = points(truth, 24, 1), points(1 - truth, 24, 2)

    def sample(img_id: str, pts: list[list[int]]) -> np.ndarray:
        out = page.evaluate(SAMPLE_JS, [img_id, pts])
        assert out["size"] == [640, 480]
        return np.array(out["px"], int)

    page.goto(web.url + "/")
    wait_state(page, "ready")
    assert "engine: selfie" in page.inner_text("#engine")
    person_box = page.locator("#part-list input[data-part='Person']")
    assert person_box.is_checked()  # one checkbox per body part of the engine, all on
    assert page.locator("#part-list input").count() == 1  # "Background" is not a part

    next_render(page, lambda: page.set_input_files("#file", str(photo)))
    assert page.get_attribute("#original", "src").startswith("blob:")
    assert "640×480" in page.inner_text("#status")
    legend = page.locator("#legend li")
    assert [legend.nth(i).get_attribute("data-class") for i in range(legend.count())] == ["Background", "Person"]
    assert page.locator("#masks img").count() == 2

    parsing = sample("parsing", fg + bg)
    assert (parsing[:24, :3] == PERSON_RGB).all() and (parsing[24:, :3] == 0).all()
    alpha = sample("alpha", fg + bg)[:, 0]
    assert (alpha[:24] > 200).all() and (alpha[24:] < 50).all()
    comp = sample("composite", fg + bg)  # transparent by default: an RGBA picture
    assert (comp[:24, 3] > 200).all() and (comp[24:, 3] < 50).all()

    next_render(page, lambda: page.fill("#bg-color", "#00ff00"))  # picking a colour selects "Colour"
    assert page.locator("input[name=bg][value=color]").is_checked()
    comp = sample("composite", fg + bg)
    assert np.abs(comp[24:, :3] - GREEN).max() < 40  # the background replaced
    truth_rgb = np.array([rgb[y, x] for x, y in fg], int)
    assert np.abs(comp[:24, :3] - truth_rgb).mean() < 10  # the person kept

    next_render(page, lambda: person_box.uncheck())  # no part kept: nothing but background
    comp = sample("composite", fg)
    assert np.abs(comp[:, :3] - GREEN).max() < 2
    assert (sample("alpha", fg)[:, 0] == 0).all()
    assert "engine output reused" in page.inner_text("#status")  # no second inference for a setting

    next_render(page, lambda: person_box.check())
    page.screenshot(path=str(tmp_path / "webui.png"), full_page=True)
    assert (tmp_path / "webui.png").stat().st_size > 10_000
    assert page.problems == []


def test_a_bad_upload_shows_the_servers_message(web, page, tmp_path):
    fake = tmp_path / "holiday.png"
    fake.write_text("this is not a picture\n")
    page.goto(web.url + "/")
    wait_state(page, "ready")
    page.set_input_files("#file", str(fake))
    wait_state(page, "error")
    assert "not an image" in page.inner_text("#error")
    assert page.is_visible("#error")
    assert page.get_attribute("#parsing", "src") is None
