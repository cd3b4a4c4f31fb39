"""`bnexp report ... --out page.html`: one self-contained page (figures inline
as SVG, the checks with intervals and outcomes, the grid-point table, a
table of contents, nothing from the network), read back as HTML and
rendered in a real browser (Debian's chromium, headless; CI installs it)."""

import shutil
import subprocess
from html.parser import HTMLParser

import pytest
from clitools import invoke
from test_report import fake_sweep

from bnexp import report_html

REPORT = {
    "title": "Norms <compared>", "source": "A paper, section 2",
    "claim": "Batch norm learns; **no norm** does not (`model.norm`).",
    "checks": [
        {"id": "bn_high", "text": "BN's test accuracy is above 0.8", "mean": "final_test_acc",
         "where": {"model.norm": "batch"}, "above": 0.8},
        {"id": "none_high", "text": "No norm's is above 0.8", "mean": "final_test_acc",
         "where": {"model.norm": "none"}, "above": 0.8}],
    "notes": "BN reaches {bn}.",
    "values": {"bn": {"mean": "final_test_acc", "where": {"model.norm": "batch"}}},
    "figures": [{"kind": "final", "x": "model.norm", "metric": "test_acc"}, {}],
}


# the checks' outcomes on these runs: BN's 0.91 [0.885, 0.935] and no norm's 0.11 in the
# first sweep; 0.7 and 0.9 with wide intervals in the second
OUTCOMES = ["holds (new)", "does not hold (new)", "inconclusive (new)", "inconclusive (new)"]


class Page(HTMLParser):
    """What a test looks at: tags, ids, links, sources, the checks' outcome cells."""

    def __init__(self, text):
        super().__init__()
        self.tags, self.ids, self.links, self.sources, self.outcomes = [], [], [], [], []
        self._cell = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "a":
            self.links.append(a.get("href"))
        for key in ("src", "href", "xlink:href"):
            if a.get(key) and tag != "a":
                self.sources.append(a[key])
        if tag == "td" and "outcome" in (a.get("class") or ""):
            self._cell = []

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.outcomes.append("".join(self._cell))
            self._cell = None


@pytest.fixture
def sweeps(tmp_path):
    a = fake_sweep(tmp_path / "a", {"model.norm": ["batch", "none"]},
                   {("batch",): [0.90, 0.91, 0.92], ("none",): [0.10, 0.12, 0.11]}, REPORT)
    b = fake_sweep(tmp_path / "b", {"model.norm": ["batch", "none"]},
                   {("batch",): [0.5, 0.9, 0.7], ("none",): [0.85, 0.9, 0.95]},
                   {**REPORT, "title": "Second"})
    return a, b


def test_the_page_holds_every_section_check_and_figure_inline(sweeps, tmp_path):
    out = tmp_path / "page.html"
    result = invoke("report", *sweeps, "--title", "Both", "--out", out)
    assert result.exit_code == 0, result.output
    text = out.read_text()
    page = Page(text)
    assert page.tags.count("section") == 2 and page.tags.count("svg") == 4  # 2 figures each
    # the checks, in order, with their computed outcomes: those of the Markdown page
    assert page.outcomes == OUTCOMES
    md = tmp_path / "page.md"
    assert invoke("report", *sweeps, "--title", "Both", "--out", md).exit_code == 0
    md_outcomes = [line.rsplit("|", 2)[1].strip() for line in md.read_text().splitlines()
                   if line.startswith("| ") and line.rstrip().endswith("(new) |")]
    assert md_outcomes == OUTCOMES
    for verdict in ("partly holds", "inconclusive"):
        slug = verdict.replace(" ", "-")
        assert f'Verdict: <span class="outcome {slug}">{verdict}</span>' in text
    assert "0.910 [0.885, 0.935]" in text  # BN's interval, as the Markdown page gives it
    # the table of contents leads to each section; the grid-point table is there
    toc = [link for link in page.links if link and link.startswith("#")]
    assert len(toc) == 2 and all(link[1:] in page.ids for link in toc)
    assert text.count("<th>final test acc</th>") == 2
    # escaped text, marks turned into tags
    assert "Norms &lt;compared&gt;" in text and "<strong>no norm</strong>" in text
    assert "<code>model.norm</code>" in text and "BN reaches 0.910 [0.885, 0.935]." in text
    # nothing fetched: no scripts, stylesheets, images or frames; references stay in the page
    assert not {"script", "link", "img", "iframe"} & set(page.tags)
    assert all(s.startswith("#") for s in page.sources), page.sources[:5]
    # one figure's ids do not collide with another's (each figure defines its glyphs)
    assert len(page.ids) == len(set(page.ids)) and any(i.startswith("s1f1-") for i in page.ids)


def test_the_same_runs_give_the_same_page(sweeps, tmp_path):
    for name in ("one.html", "two.html"):
        assert invoke("report", *sweeps, "--out", tmp_path / name).exit_code == 0
    assert (tmp_path / "one.html").read_bytes() == (tmp_path / "two.html").read_bytes()


def test_a_figures_folder_is_refused_for_an_html_page(sweeps, tmp_path):
    result = invoke("report", sweeps[0], "--out", tmp_path / "p.html", "--figures",
                    tmp_path / "figs")
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: figures: {tmp_path / 'figs'}: an HTML page holds its figures inline; a "
        "figures folder goes with a Markdown page (.md)"]
    assert not (tmp_path / "p.html").exists() and not (tmp_path / "figs").exists()


def test_intro_markdown_becomes_headings_lists_and_tables():
    html = report_html.blocks("# Results\n\nSome `code` and **bold**.\n\n- one\n- two\n  more\n\n"
                              "| a | b |\n|---|---|\n| 1 | 2 |")
    assert "<h2>Results</h2>" in html and "<p>Some <code>code</code> and <strong>bold" in html
    assert "<ul><li>one</li><li>two more</li></ul>" in html
    assert "<table><thead><tr><th>a</th><th>b</th></tr></thead><tbody><tr><td>1</td>" in html


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium here (CI installs Debian's)")
def test_the_page_renders_in_a_browser_with_its_figures_and_outcomes(sweeps, tmp_path):
    out = tmp_path / "page.html"
    assert invoke("report", *sweeps, "--title", "Both", "--out", out).exit_code == 0
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*flags, "--dump-dom", out.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    page = Page(dom)
    assert page.tags.count("svg") == 4 and page.tags.count("section") == 2
    assert page.outcomes == OUTCOMES
    assert page.tags.count("path") > 50  # the figures' own drawing survived parsing
    shot = tmp_path / "page.png"
    subprocess.run([*flags, "--window-size=1200,3000", f"--screenshot={shot}", out.as_uri()],
                   capture_output=True, timeout=120)
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (3000, 1200)
    assert pixels[..., :3].std() > 0.05  # drawn, not a blank page
