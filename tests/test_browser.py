"""The report and the patient pages as a reader sees them: opened in headless Chromium.

Needs the Debian ``chromium`` package and the ``playwright`` Python package (driving the system
browser; no browser download).  `.ci/run` installs Chromium and sets ``OMIX_REQUIRE_BROWSER=1``,
so in CI a missing browser fails instead of skipping.  Screenshots (and a printed PDF of a
patient page) are kept in ``$OMIX_ARTIFACTS`` (default ``results/test-artifacts/``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import pandas as pd
import pytest
from conftest import ROOT, run_snakemake

CHROMIUM = next((p for p in (os.environ.get("OMIX_CHROMIUM"), shutil.which("chromium"),
                             shutil.which("chromium-browser")) if p), None)
ARTIFACTS = Path(os.environ.get("OMIX_ARTIFACTS", ROOT / "results" / "test-artifacts"))


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - requirements.txt pins it
        sync_playwright = None
    if CHROMIUM is None or sync_playwright is None:
        why = "no chromium on PATH (Debian: apt-get install chromium)" if CHROMIUM is None \
            else "playwright is not installed"
        if os.environ.get("OMIX_REQUIRE_BROWSER") == "1":
            pytest.fail(f"OMIX_REQUIRE_BROWSER=1 but {why}")
        pytest.skip(why)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def open_page(browser, path: Path):
    """A page at ``path`` that records every script error and failed request."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(f"script error: {e}"))
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error"
            else None)
    page.on("requestfailed", lambda r: errors.append(f"failed to load {r.url}"))
    page.goto(path.as_uri())
    return page, errors


def to_top(page) -> None:
    page.evaluate("() => document.querySelectorAll('*').forEach(e => { e.scrollTop = 0; })")


def test_report_first_page_and_every_result_load_in_chromium(browser, split_run: Path):
    r = split_run / "results" / "small"
    proc = run_snakemake(split_run, "--report", "results/small/report.html")
    assert proc.returncode == 0, proc.stderr[-3000:]
    page, errors = open_page(browser, r / "report.html")
    page.wait_for_selector("#omix-overview", timeout=60_000)
    to_top(page)
    page.screenshot(path=str(ARTIFACTS / "report_first_page.png"))
    # the first page is the headline, and it shows this run's figures
    text = page.inner_text("#omix-overview")
    assert "Headline results: cohort small" in text
    metrics = pd.read_csv(r / "predict" / "metrics.tsv", sep="\t").set_index(["model", "metric"])
    auc = metrics.loc[("inner_cv_choice", "auc")]
    assert f"AUC {auc['mean']:.3f} (95% interval {auc['ci_low']:.3f} - {auc['ci_high']:.3f})" \
        in " ".join(text.split())
    sizes = pd.read_csv(r / "clusters.tsv", sep="\t")["cluster"].value_counts()
    assert all(f"{c} {n}" in text for c, n in sizes.items())
    # the headline is at the top of the window, not cut off by the report's centred layout
    box = page.locator("#omix-overview h2").bounding_box()
    assert box is not None and 0 <= box["y"] < 1000
    # every result the report embeds: images decode, HTML tables are tables
    checks = page.evaluate("""async () => {
        const out = [];
        for (const [path, res] of Object.entries(results)) {
            if (res.mime_type.startsWith('image/')) {
                const img = new Image();
                const ok = await new Promise(done => {
                    img.onload = () => done(img.naturalWidth > 0 && img.naturalHeight > 0);
                    img.onerror = () => done(false);
                    img.src = res.data_uri;
                });
                out.push([path, res.mime_type, ok]);
            } else if (res.mime_type === 'text/html') {
                const body = await (await fetch(res.data_uri)).text();
                out.push([path, res.mime_type, body.includes('<table') ||
                                               body.includes('Not computed')]);
            } else {
                out.push([path, res.mime_type, res.data_uri.startsWith('data:')]);
            }
        }
        return out;
    }""")
    bad = [(p, m) for p, m, ok in checks if not ok]
    assert not bad, bad
    mimes = {m for _, m, _ in checks}
    assert {"image/png", "text/html"} <= mimes
    assert sum(m == "image/png" for _, m, _ in checks) >= 10
    assert any(p.endswith("report/overview.html") for p, _, _ in checks)
    # each category of the menu opens and lists its results
    for cat in page.evaluate("() => Object.keys(categories)"):
        listed = page.evaluate("c => Object.values(categories[c]).flat()", cat)
        assert listed, cat
        # from the main menu, as a reader clicks (category to category directly, the report's
        # own navigation keeps the previous list: a Snakemake report quirk, not ours)
        page.evaluate("() => app.setView({navbarMode: 'menu'})")
        page.wait_for_function("() => document.querySelector('nav').innerText"
                               ".includes('Statistics')", timeout=10_000)
        page.evaluate("c => app.showCategory(c)", cat)
        page.wait_for_function("paths => paths.every(p => "
                               "document.querySelector('nav').innerText.includes(p))",
                               arg=listed, timeout=10_000)
    page.evaluate("() => app.showCategory('0. Headline results')")
    page.screenshot(path=str(ARTIFACTS / "report_headline_category.png"))
    assert not errors, errors
    page.close()


def test_patient_index_and_page_load_link_and_print_in_chromium(browser, split_run: Path):
    out = split_run / "results" / "small" / "apply" / "val" / "patients"
    page, errors = open_page(browser, out / "index.html")
    hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
    val = pd.read_csv(split_run / "data" / "validation.tsv", sep="\t", dtype=str)
    assert len(hrefs) == len(val)
    broken = [h for h in hrefs
              if urlparse(h).scheme != "file" or not Path(unquote(urlparse(h).path)).is_file()]
    assert not broken, broken
    rows = page.locator("table tr").count()
    assert rows == len(val) + 1
    page.screenshot(path=str(ARTIFACTS / "patient_index.png"), full_page=True)
    page.goto(hrefs[0])
    page.wait_for_load_state("load")
    imgs = page.evaluate("() => Array.from(document.images).map(i => [i.src.slice(0, 40), "
                         "i.complete && i.naturalWidth > 0])")
    assert all(ok for _, ok in imgs), imgs
    assert page.locator("svg").count() >= 1  # the figures are inline SVG
    links = page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
    assert all(Path(unquote(urlparse(h).path)).is_file() for h in links
               if urlparse(h).scheme == "file"), links
    page.screenshot(path=str(ARTIFACTS / "patient_page.png"), full_page=True)
    page.emulate_media(media="print")
    pdf = ARTIFACTS / "patient_page.pdf"
    page.pdf(path=str(pdf), format="A4")
    assert pdf.read_bytes().startswith(b"%PDF")
    assert not errors, errors
    page.close()
