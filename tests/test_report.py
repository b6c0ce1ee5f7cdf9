"""The HTML pipeline report (graphlake/report.py) on one small demo lake: its sections, its numbers
against the lake's tables, its files on disk, and the page in a real headless browser (Debian's
chromium; skipped only when /usr/bin/chromium is missing)."""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
from html.parser import HTMLParser

import pytest

from graphlake.app import cli
from graphlake.app.report import SECTIONS, write_pipeline_report
from graphlake.core import lake, tables

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--allow-file-access-from-files", "--virtual-time-budget=5000"]


class _Page(HTMLParser):
    """Headings, <img src>, <a href> and ``data-key -> data-value`` cells of a page."""

    def __init__(self, text: str):
        super().__init__()
        self.headings, self.srcs, self.hrefs, self.values, self._h = [], [], [], {}, None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("h1", "h2", "h3"):
            self._h = ""
        elif tag == "img":
            self.srcs.append(a["src"])
        elif tag == "a" and "href" in a:
            self.hrefs.append(a["href"])
        if "data-key" in a:
            self.values[a["data-key"]] = a["data-value"]

    def handle_data(self, data):
        if self._h is not None:
            self._h += data

    def handle_endtag(self, tag):
        if tag in ("h1", "h2", "h3") and self._h is not None:
            self.headings.append(self._h.strip())
            self._h = None


@pytest.fixture(scope="module")
def demo(demo_run):
    """``(lake_dir, demo summary, report page text)``: the shared `graphlake demo` run (it writes the report)."""
    lake_dir, summary, out = demo_run
    assert f"==> pipeline report: {summary['report']}\n" in out
    with open(summary["report"], encoding="utf-8") as f:
        return lake_dir, summary, f.read()


def test_every_section_and_the_numbers_of_the_lake(spark, demo):
    from graphlake.graph_build.manifest import table_rows

    lake_dir, summary, text = demo
    page = _Page(text)
    assert summary["report"] == os.path.join(lake_dir, "_reports", "pipeline",
                                             f"g0-{summary['train']['run_id']}", "index.html")
    for i, title in enumerate(SECTIONS):
        assert f"{i + 1}. {title}" in page.headings, title
    assert "Degree distributions" in page.headings and "PageRank: top nodes" in page.headings
    # quarantine: the page's counts are the tables' rows, and the ETL run's own count
    q_path = tables.table_path(lake_dir, tables.QUARANTINE_EVENTS)
    q_rows = lake.read_table(spark, q_path).count()
    assert int(page.values[f"{tables.QUARANTINE_EVENTS}:rows"]) == q_rows == table_rows(q_path)
    assert int(page.values[f"etl:{summary['etl']['run_id']}:events_quarantined"]) == q_rows
    by_reason = {r["reason"]: r["count"] for r in lake.read_table(spark, q_path).groupBy("reason").count().collect()}
    assert {k.split(":", 1)[1]: int(v) for k, v in page.values.items() if k.startswith("quarantine_reason:")} == by_reason
    assert by_reason == summary["etl"]["events"]["reasons"]
    # graph: node / edge counts of the manifest
    graph = summary["graph"]
    assert {k[6:]: int(v) for k, v in page.values.items() if k.startswith("nodes:")} == graph["node_counts"]
    assert {k[6:]: int(v) for k, v in page.values.items() if k.startswith("edges:")} == graph["edge_counts"]
    # evaluation: the run's validation metrics
    for name, value in summary["train"]["validation"].items():
        if "@" in name:
            assert float(page.values[f"metric:run validation:{name[4:]}"]) == pytest.approx(value)
    # images: one ETL plot, one degree plot per edge type, the training curves, metrics, projection
    from graphlake.training.report import plots, read_history

    curves = len(plots(read_history(summary["train"]["run_dir"]), encode=lambda fig: None))
    expected = 1 + len(graph["edge_counts"]) + curves + 1 + 1
    assert len(page.srcs) == expected == len([n for n in os.listdir(os.path.dirname(summary["report"]))
                                              if n.endswith(".png")])
    # recommendations: 3 users x 5 items, each with its explanation
    recs = re.search(r'<section id="s6">(.*?)</section>', text, re.S).group(1)
    assert recs.count("<tr>") == 1 + 3 * 5 and "gl_explain" in recs and "(no history)" not in recs


def test_relative_links_and_images_exist_on_disk(demo):
    _, summary, text = demo
    page, here = _Page(text), os.path.dirname(summary["report"])
    assert page.srcs and len(page.hrefs) >= 2 + len(SECTIONS)
    for ref in page.srcs + page.hrefs:
        if ref.startswith("#"):
            assert f'id="{ref[1:]}"' in text, ref
            continue
        assert not re.match(r"^[a-z]+:|^/", ref), f"not a relative link: {ref}"
        assert os.path.isfile(os.path.normpath(os.path.join(here, ref))), ref
    assert any(h.endswith("report.html") for h in page.hrefs)  # the training run's own report
    assert "../../data_docs/index.html" in page.hrefs


_HARNESS = """<!doctype html><html><body>
<iframe id="report" src="%s" style="width:1200px;height:900px"></iframe>
<script>
function probe(url) {
  return new Promise(function (done) {
    var x = new XMLHttpRequest();
    x.onload = function () { done((x.status === 0 || x.status === 200) && x.responseText.length > 0); };
    x.onerror = function () { done(false); };
    try { x.open("GET", url); x.send(); } catch (e) { done(false); }
  });
}
document.getElementById("report").onload = async function () {
  var doc = this.contentDocument, out = {images: [], links: []};
  for (var img of doc.images) out.images.push({src: img.getAttribute("src"), ok: img.complete && img.naturalWidth > 0});
  for (var a of doc.querySelectorAll("a[href]")) out.links.push({href: a.getAttribute("href"), ok: await probe(a.href)});
  var pre = document.createElement("pre");
  pre.id = "result";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
};
</script></body></html>
"""


def _chromium(args: list[str], user_data: str) -> str:
    done = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={user_data}", *args],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_report_in_headless_chromium(demo, tmp_path):
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing (Debian package `chromium`; .ci/run installs it)")
    _, summary, text = demo
    harness = tmp_path / "harness.html"
    harness.write_text(_HARNESS % ("file://" + os.path.abspath(summary["report"])), encoding="utf-8")
    dom = _chromium(["--dump-dom", f"file://{harness}"], str(tmp_path / "profile"))
    found = re.search(r'<pre id="result">(.*?)</pre>', dom, re.S)
    assert found, f"the harness did not finish: {dom[-1500:]}"
    result = json.loads(html.unescape(found.group(1)))
    assert len(result["images"]) == len(_Page(text).srcs) > 10
    assert [i["src"] for i in result["images"] if not i["ok"]] == [], "broken images"
    assert [a["href"] for a in result["links"] if not a["ok"]] == [], "broken links"
    assert any(a["href"].endswith("data_docs/index.html") for a in result["links"])
    shot = tmp_path / "report.png"
    _chromium([f"--screenshot={shot}", "--window-size=1200,2400", "file://" + os.path.abspath(summary["report"])],
              str(tmp_path / "profile"))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000


def test_cli_verb_writes_the_same_report_again(demo, capsys):
    lake_dir, summary, text = demo
    dates = [arg for d in summary["etl"]["dates"] for arg in ("--date", d)]
    assert cli.main(["report", "--lake", lake_dir, "--name", "again", *dates, "--json"]) == 0
    path = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["report"]
    assert path == os.path.join(lake_dir, "_reports", "pipeline", "again", "index.html")
    first = os.path.basename(os.path.dirname(summary["report"]))
    with open(path, encoding="utf-8") as f:
        assert f.read() == text.replace(f"report {first}", "report again")  # deterministic
    for name in sorted(n for n in os.listdir(os.path.dirname(path)) if n.endswith(".png")):
        with open(os.path.join(os.path.dirname(path), name), "rb") as a, \
                open(os.path.join(os.path.dirname(summary["report"]), name), "rb") as b:
            assert a.read() == b.read(), name


def test_an_empty_lake_says_what_is_absent(spark, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    path = write_pipeline_report(spark, str(empty))
    with open(path, encoding="utf-8") as f:
        text = f.read()
    assert path.endswith(os.path.join("pipeline", "gnone-none", "index.html")) and "<img" not in text
    for phrase in ("No ETL run in meta/etl_runs", "No quarantine/* table", "No graph version in graph/manifest",
                   "No finished training run", "Nothing is published", "Skipped: no graph version",
                   "No published item asset", "No Great Expectations Data Docs"):
        assert phrase in text, phrase
    assert len(_Page(text).headings) == 1 + len(SECTIONS)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"name": "../x"}, ValueError, "name"), ({"etl_dates": "2024-01-01"}, ValueError, "etl_dates"),
    ({"graph_version": -1}, ValueError, "graph_version"), ({"sample": 0}, ValueError, "sample"),
    ({"asset_version": "newest"}, ValueError, "asset_version"), ({"seed": 1.5}, TypeError, "seed"),
    ({"train_run_id": "nope"}, ValueError, "train_run_id"),
])
def test_bad_arguments_name_the_argument(spark, tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        write_pipeline_report(spark, str(tmp_path), **kwargs)


def test_training_plots_show_the_learning_rate_only_when_a_schedule_recorded_it():
    from graphlake.training.report import plots

    history = [{"epoch": 0, "step": s, "loss": 1.0 / s, "edges_per_s": 100.0, "lr": 0.01 * (1 - s / 10)}
               for s in range(1, 10)]
    assert [t for t, _ in plots(history, encode=lambda fig: None)] == [
        "Training loss", "Throughput", "Learning rate (lr_schedule)"]
    constant = [{k: v for k, v in h.items() if k != "lr"} for h in history]
    assert [t for t, _ in plots(constant, encode=lambda fig: None)] == ["Training loss", "Throughput"]
