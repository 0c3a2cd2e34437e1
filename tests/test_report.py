"""The HTML report: view data and Markdown from real results, and the page itself in headless Chromium."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from report_fixtures import (
    HOSTILE,
    benchmarks,
    first,
    full_size,
    hostile,
    run_small,
    save,
    with_regression,
)

from conformance.report import report_command, write_report
from conformance.report.compare import check_change, compare_benchmarks
from conformance.report.html import render_html
from conformance.report.markdown import render_markdown
from conformance.report.model import build_view
from conformance.results.document import load_document
from conformance.results.records import CheckRecord

REPORTS = Path(__file__).resolve().parent.parent / "reports"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
MAX_REPORT_BYTES = 2 * 1024 * 1024


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    return run_small(tmp_path_factory.mktemp("report") / "run")


@pytest.fixture(scope="module")
def document(results) -> dict:
    return load_document(results)


# ---- view data, Markdown and the command (no browser) ----


def test_verdicts_follow_the_core_rule(document):
    verdicts = {v.target: v for v in build_view(document).verdicts}
    assert verdicts["ort:cpu"].profiles[0].status == "conformant"
    assert (
        verdicts["ort:cpu"].exporter_findings > 0
    )  # transformer_encoder's recorded findings: not counted
    assert (
        verdicts["defect:noise"].profiles[0].status == "not conformant"
        and verdicts["defect:noise"].negative_control
    )
    assert verdicts["defect:crash"].counts["crashed"] > 0
    cuda = verdicts["ort:cuda"]
    assert cuda.profiles[0].status == "not run" and cuda.skip_reasons[0][0].startswith(
        "target unavailable"
    )


def test_matrix_groups_data_sets_and_leaves_out_unavailable_targets(document):
    matrix = build_view(document).matrix
    assert "ort:cuda" in matrix.left_out and "ort:cuda" not in matrix.targets
    assert [row.model for row in matrix.rows] == ["mlp", "transformer_encoder"]
    assert len(matrix.cells) == 2 * len(matrix.exporters) * len(matrix.targets)
    noise = next(c for c in matrix.cells if c.target == "defect:noise" and c.model == "mlp")
    assert noise.sign.word == "fail" and noise.margin > 1 and noise.label[0].isdigit()
    exporter_cell = next(
        c for c in matrix.cells if c.target == "ort:cpu" and c.worst.attributed_to == "exporter"
    )
    assert exporter_cell.sign.word == "exporter"  # not the runtime's failure, and shown as such


def test_comparison_marks_regression_and_moved_figures(document):
    current, regressed_id = with_regression(document)
    comparison = build_view(current, baseline=document).comparison
    assert comparison.count("regressed") == 1 and comparison.checks[0].check_id == regressed_id
    assert comparison.unchanged == len(document["checks"]) - 1
    before = CheckRecord(
        model="m",
        exporter="e",
        data_set=0,
        data_set_label="b1",
        target="t",
        verdict="passed",
        margin=0.1,
    )
    assert check_change(before, CheckRecord(**{**before.__dict__, "margin": 0.3})) == "moved"
    assert check_change(before, CheckRecord(**{**before.__dict__, "margin": 0.15})) is None
    baseline_bench, current_bench = benchmarks(), benchmarks()
    current_bench[0]["latency_ms"] = dict(
        current_bench[0]["latency_ms"], p50=0.08
    )  # +60%: beyond noise
    current_bench[1]["latency_ms"] = dict(
        current_bench[1]["latency_ms"], p50=1.95
    )  # +2.6%: within noise
    moved = compare_benchmarks(baseline_bench, current_bench)
    assert [(m.benchmark, m.worse) for m in moved] == [(current_bench[0]["id"], True)]


def test_performance_reads_whatever_is_present(document):
    assert not build_view(document).performance.present
    perf = build_view(dict(document, benchmarks=benchmarks())).performance
    assert (
        len(perf.single_stream) == 4
        and perf.offline_batches == (1, 8, 32)
        and len(perf.cold_start) == 1
    )
    assert [(r.target, r.caching_flagged) for r in perf.caching_guard] == [
        ("ort:cpu", False),
        ("reference", False),
        ("ort:cpu", False),
        ("reference", True),
    ]
    assert [r.scenario for r in perf.loadgen] == ["LoadGen-Offline"]
    assert [r.status for r in perf.not_measured] == ["error"]
    assert {c.target for c in perf.charts if c.ladder and c.throughput} == {"ort:cpu", "reference"}


def test_unfinished_run_renders_what_it_has(document):
    started = dict(
        document, run=dict(document["run"], status="running", finished_at=None), checks=[]
    )
    view = build_view(started)
    assert not view.complete and view.matrix.rows == () and view.findings == ()
    assert {v.profiles[0].status for v in view.verdicts} == {"not run"}
    assert "This run is <strong>running</strong>" in render_html(view)
    assert "0 checks." in render_markdown(view)


def test_untrusted_names_are_escaped_in_html_and_markdown(document, tmp_path):
    path = write_report(
        save(hostile(document), tmp_path / "results.json"), tmp_path / "report.html"
    )
    html = path.read_text(encoding="utf-8")
    assert "<img" not in html and "<script>alert" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    markdown = render_markdown(build_view(hostile(document)))
    assert "<img" not in markdown and "&lt;img" in markdown


def test_report_command_writes_html_and_markdown(results, document, tmp_path):
    baseline = save(copy.deepcopy(document), tmp_path / "baseline.json")
    out, summary = tmp_path / "out" / "report.html", tmp_path / "summary.md"
    result = CliRunner().invoke(
        report_command,
        [str(results), "-o", str(out), "--baseline", str(baseline), "--markdown", str(summary)],
    )
    assert result.exit_code == 0, result.output
    assert out.is_file() and "Comparison with the baseline" in out.read_text(encoding="utf-8")
    text = summary.read_text(encoding="utf-8")
    assert (
        "targets conformant for the **core** profile" in text
        and "| ort:cpu | ✔ conformant |" in text
    )


@pytest.mark.parametrize(
    "content,message",
    [
        (None, "no results file"),
        ("{not json", "not a readable JSON"),
        ('{"run": {}}', "not a results document"),
    ],
)
def test_report_command_bad_input_is_one_line(tmp_path, content, message):
    path = tmp_path / "results.json"
    if content is not None:
        path.write_text(content)
    result = CliRunner().invoke(report_command, [str(path), "-o", str(tmp_path / "r.html")])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_full_size_report_stays_under_2_mb(document, tmp_path):
    big = full_size(document)
    path = write_report(save(big, tmp_path / "results.json"), tmp_path / "report.html")
    assert len(big["checks"]) == 720
    assert path.stat().st_size < MAX_REPORT_BYTES, f"{path.stat().st_size / 1e6:.2f} MB"


# ---- the page in headless Chromium ----


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="the browser tests need playwright: pip install playwright"
    )
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"the browser tests need Chromium at {CHROMIUM}: apt-get install -y chromium")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class OpenedReport:
    """A page with the report open, and everything it did that it must not do."""

    def __init__(self, browser, path: Path) -> None:
        self.url = path.resolve().as_uri()
        self.page = browser.new_page(viewport={"width": 1600, "height": 1000})
        self.console_errors: list[str] = []
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.page.on(
            "console",
            lambda m: (
                self.console_errors.append(m.text) if m.type in ("error", "warning") else None
            ),
        )
        self.page.on("pageerror", lambda error: self.console_errors.append(str(error)))
        self.page.on(
            "request",
            lambda r: self.requests.append(r.url) if r.url.split("#")[0] != self.url else None,
        )
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.goto(self.url)
        self.page.wait_for_load_state("load")

    def assert_quiet(self) -> None:
        assert self.console_errors == [] and self.requests == [] and self.dialogs == []


def test_report_opens_offline_with_verdict_matrix_and_drilldown(browser, document, tmp_path):
    path = write_report(
        save(dict(document, benchmarks=benchmarks()), tmp_path / "results.json"),
        tmp_path / "report.html",
    )
    report = OpenedReport(browser, path)
    page = report.page
    assert page.locator(
        "#headline"
    ).is_visible() and "targets conformant for the core profile" in page.inner_text("#headline")
    row = page.locator("table.verdicts tr", has=page.locator("th", has_text="defect:noise"))
    assert "not conformant" in row.inner_text()
    assert page.locator("table.matrix").is_visible()
    assert page.locator("table.matrix td a").count() == len(build_view(document).matrix.cells)
    REPORTS.mkdir(exist_ok=True)
    page.screenshot(path=str(REPORTS / "report-screenshot.png"))

    failing = build_view(document).findings[0]
    page.click(f"table.matrix a[href='#{failing.cell_anchor}']")
    cell = page.locator(f"details#{failing.cell_anchor}")
    assert cell.get_attribute("open") is not None
    detail = page.locator(f"#{failing.check.anchor}")
    assert (
        detail.is_visible()
        and detail.locator("table.worst").first.is_visible()
        and detail.locator("svg").first.is_visible()
    )
    page.screenshot(path=str(REPORTS / "report-drilldown.png"))

    passed_cell = next(c for c in build_view(document).matrix.cells if c.passed == len(c.checks))
    page.click(f"table.matrix a[href='#{passed_cell.anchor}']")
    assert page.locator(f"details#{passed_cell.anchor} table.checks").is_visible()
    assert (
        page.locator("table.bench.single").is_visible()
        and page.locator("#performance svg").count() >= 4
    )
    page.emulate_media(media="print")
    assert not page.locator("nav").is_visible()
    report.assert_quiet()


def test_report_without_benchmarks_says_so(browser, results, tmp_path):
    report = OpenedReport(browser, write_report(results, tmp_path / "report.html"))
    assert report.page.inner_text("#no-benchmarks") == "No benchmarks in this run."
    report.assert_quiet()


def test_hostile_target_name_is_shown_as_text(browser, document, tmp_path):
    path = write_report(
        save(hostile(document), tmp_path / "results.json"), tmp_path / "report.html"
    )
    report = OpenedReport(browser, path)
    page = report.page
    assert page.locator("img").count() == 0 and page.locator("script").count() == 1
    assert HOSTILE in page.inner_text("table.verdicts") and HOSTILE in page.inner_text(
        "table.matrix thead"
    )
    report.assert_quiet()  # no dialog fired, no console error, no request for "x"


def test_baseline_comparison_marks_the_regression(browser, document, tmp_path):
    current, regressed_id = with_regression(document)
    baseline = save(document, tmp_path / "baseline.json")
    path = write_report(
        save(current, tmp_path / "results.json"), tmp_path / "report.html", baseline=baseline
    )
    report = OpenedReport(browser, path)
    page = report.page
    assert page.locator("#comparison").is_visible()
    row = page.locator("table.changes tr", has_text=regressed_id)
    assert (
        "regressed" in row.inner_text()
        and "passed" in row.inner_text()
        and "failed" in row.inner_text()
    )
    cell = page.locator("table.matrix a[aria-label*='regressed against the baseline']")
    assert cell.count() == 1 and "▼" in cell.inner_text()
    assert first(current, "ort:cpu", "failed")["id"] == regressed_id
    report.assert_quiet()
