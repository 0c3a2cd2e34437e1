"""The HTML report: view data and Markdown from real results, and the page itself in headless
Chromium."""

from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from markupsafe import escape
from report_fixtures import (
    HOSTILE,
    IREE_LOOP_ERROR,
    benchmarks,
    first,
    full_size,
    hostile,
    ops_size,
    rename_target,
    run_bench,
    run_int8,
    run_small,
    save,
    with_iree_error,
    with_regression,
)

from conformance.report import report_command, write_report
from conformance.report.command import MAX_BENCHMARKS, MAX_CHECKS, MAX_RESULTS_BYTES
from conformance.report.compare import check_change, compare_benchmarks
from conformance.report.html import render_html
from conformance.report.markdown import md, render_markdown
from conformance.report.messages import cause, informative
from conformance.report.model import DETAILED_CHECKS, build_view
from conformance.report.signs import number
from conformance.results.document import load_document
from conformance.results.records import NOT_PASSED, CheckRecord

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

    def __init__(self, browser, path: Path, width: int = 1600) -> None:
        self.url = path.resolve().as_uri()
        self.page = browser.new_page(viewport={"width": width, "height": 1000})
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
    page.screenshot(path=str(tmp_path / "report-screenshot.png"))  # never into the checkout

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
    page.screenshot(path=str(tmp_path / "report-drilldown.png"))

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


# ---- bad input: unknown verdicts, malformed records, another version, hostile sizes ----


def report_cli(*args) -> tuple[int, str, str]:
    result = CliRunner().invoke(report_command, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    "change,message",
    [
        ({"verdict": "bogus"}, "has verdict 'bogus'; allowed: passed, failed, error"),
        ({"verdict": None}, "has verdict None; allowed"),
        ({"margin": "big"}, "has margin big, not a number"),
        ({"problems": "text"}, "has problems that are not a list of texts"),
        ({"target": 7}, "has no text 'target'"),
        ({"outputs": []}, "has outputs that is not an object"),
    ],
)
def test_a_malformed_check_record_is_one_line_naming_it(document, tmp_path, change, message):
    broken = copy.deepcopy(document)
    broken["checks"][3].update(change)
    path = save(broken, tmp_path / "results.json")
    code, out, err = report_cli(path, "-o", tmp_path / "r.html")
    assert code == 2 and "Traceback" not in out + err
    (line,) = err.splitlines()
    assert line.startswith(f"error: {path}: check 3 (") and message in line
    assert not (tmp_path / "r.html").exists()


def test_report_refuses_files_beyond_its_limits(document, tmp_path):
    huge = tmp_path / "huge.json"
    huge.write_text('{"checks": []}')
    os.truncate(huge, MAX_RESULTS_BYTES + 1)  # sparse: refused by size before it is read
    code, _, err = report_cli(huge, "-o", tmp_path / "r.html")
    assert code == 2 and f"at most {MAX_RESULTS_BYTES // 2**20} MiB" in err

    check = {k: document["checks"][0][k] for k in ("model", "exporter", "target", "verdict")}
    check.update(data_set=0, data_set_label="batch1")
    many = dict(document, checks=[dict(check, id=f"c{i}") for i in range(MAX_CHECKS + 1)])
    code, _, err = report_cli(save(many, tmp_path / "many.json"), "-o", tmp_path / "r.html")
    assert code == 2 and f"has {MAX_CHECKS + 1:,} check records; the report reads at most" in err

    bench = dict(document, benchmarks=[{}] * (MAX_BENCHMARKS + 1))
    code, _, err = report_cli(save(bench, tmp_path / "bench.json"), "-o", tmp_path / "r.html")
    assert code == 2 and f"at most {MAX_BENCHMARKS:,}" in err
    assert not (tmp_path / "r.html").exists()


def test_report_rejects_non_finite_numbers(document, tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(document).replace('"duration_s": ', '"duration_s": 1e999, "x": ', 1))
    code, _, err = report_cli(path, "-o", tmp_path / "r.html")
    assert code == 2 and "not a readable JSON results file" in err


def test_baseline_of_another_spec_version_is_a_visible_warning(results, document, tmp_path):
    older = copy.deepcopy(document)
    older["run"]["spec_version"] = "0.0.9"
    baseline = save(older, tmp_path / "baseline.json")
    out, summary = tmp_path / "r.html", tmp_path / "s.md"
    code, _, err = report_cli(results, "-o", out, "--baseline", baseline, "--markdown", summary)
    assert code == 0
    warning = "the baseline was measured under spec 0.0.9, this run under spec 0.1.0"
    assert f"warning: {warning}" in err
    assert warning in out.read_text(encoding="utf-8") and "baseline-warning" in out.read_text()
    assert f"**Warning: not like with like:** {warning}" in summary.read_text(encoding="utf-8")
    same = save(copy.deepcopy(document), tmp_path / "same.json")
    code, _, err = report_cli(results, "-o", out, "--baseline", same)
    assert code == 0 and "warning" not in err and "baseline-warning" not in out.read_text()


def test_baseline_of_another_schema_major_version_is_refused(results, document, tmp_path):
    other = dict(copy.deepcopy(document), schema_version="2.0")
    baseline = save(other, tmp_path / "baseline.json")
    code, _, err = report_cli(results, "-o", tmp_path / "r.html", "--baseline", baseline)
    assert code == 2 and "the baseline is results schema 2.0, this run 1.0" in err
    minor = save(dict(other, schema_version="1.9"), tmp_path / "minor.json")
    code, _, err = report_cli(results, "-o", tmp_path / "r.html", "--baseline", minor)
    assert code == 0 and "warning: the baseline is results schema 1.9, this run 1.0" in err


# ---- findings: their informative part, grouped, with stderr ----


def test_informative_part_keeps_the_operator_iree_names():
    summary = informative(IREE_LOOP_ERROR)
    assert len(IREE_LOOP_ERROR) > 1900 and len(summary) <= 320
    assert "failed to legalize operation 'torch.operator' that was explicitly marked illegal" in (
        summary
    )
    assert "[onnx.Loop]" in summary and summary.startswith("load failed: CompilerToolError")
    assert "!torch.vtensor" not in summary and "/tmp/" not in summary
    short = "encoded: values out of tolerance: margin 3.5"
    assert informative(short) == short
    assert cause(short) == cause(short.replace("3.5", "12"))


def test_identical_findings_are_grouped_and_keep_the_whole_message(document, tmp_path):
    current, ids = with_iree_error(document)
    view = build_view(current)
    (finding,) = [f for f in view.findings if f.check.record.check_id in ids]
    assert sorted(c.record.check_id for c in finding.data_sets) == sorted(ids) and len(ids) >= 2
    not_passed = sum(1 for c in current["checks"] if c["verdict"] in NOT_PASSED)
    assert len(view.findings) < not_passed  # per data set findings were repeated before
    noise = [
        f
        for f in view.findings
        if f.check.record.target == "defect:noise" and f.check.record.verdict == "failed"
    ]
    assert noise and all(len(f.data_sets) > 1 for f in noise)  # another margin, same cause

    path = write_report(save(current, tmp_path / "results.json"), tmp_path / "report.html")
    html = path.read_text(encoding="utf-8")
    start = html.index('<table class="findings">')
    table = html[start : html.index("</table>", start)]
    assert table.count("[onnx.Loop]") == 1  # one row for the artifact, not one per data set
    # the whole message in the drill-down of each check
    assert html.count(f"<pre>{escape(IREE_LOOP_ERROR)}</pre>") == len(ids)
    assert "last line of stderr &lt;b&gt;x&lt;/b&gt;" in html  # the captured stderr, escaped
    markdown = render_markdown(view)
    line = next(x for x in markdown.splitlines() if "\\[onnx.Loop\\]" in x)
    assert all(md(c.record.data_set_label) in line for c in finding.data_sets)  # as Markdown
    assert sum("onnx.Loop" in x for x in markdown.splitlines()) == 1


# ---- size: the ops profile's 14,000 checks ----


def test_ops_profile_size_report_renders_within_bounds(document, tmp_path):
    """14,000 checks (2,000 per target on 7 targets): the report renders, its charts bounded
    to DETAILED_CHECKS checks and its findings table to FINDINGS_SHOWN rows."""
    big = ops_size(document)
    path = save(big, tmp_path / "results.json")
    code, out, err = report_cli(path, "-o", tmp_path / "report.html")
    assert code == 0, err
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert len(big["checks"]) == 14_000
    assert html.count('<table class="worst">') <= DETAILED_CHECKS * 2  # at most 2 outputs each
    assert html.count("Charts and worst elements are shown for the first") > 0
    assert "passed checks not listed (a run of over 2000 checks" in html
    assert len(html.encode()) < 20 * 1024 * 1024


# ---- performance from a real benchmark run ----


@pytest.fixture(scope="module")
def bench_results(tmp_path_factory) -> Path:
    return run_bench(tmp_path_factory.mktemp("bench") / "run")


def test_performance_section_from_a_real_benchmark_run(bench_results, tmp_path):
    document = load_document(bench_results)
    perf = build_view(document).performance
    assert perf.present and perf.not_measured == ()
    assert sorted(r.target for r in perf.single_stream) == ["ort:cpu", "reference"]
    for row in perf.single_stream:
        latency = row.record["latency_ms"]
        assert 0 < latency["min"] <= latency["p50"] <= latency["p90"] <= latency["p99"]
        assert latency["p99"] <= latency["max"] and row.record["queries"] >= 64
    assert perf.offline_batches == (1, 8, 32) and len(perf.cold_start) == 2
    assert {c.target for c in perf.charts if c.ladder and c.throughput} == {"ort:cpu", "reference"}
    html = write_report(bench_results, tmp_path / "report.html").read_text(encoding="utf-8")
    assert 'class="bench single"' in html and 'class="bench offline"' in html
    p50 = next(r for r in perf.single_stream if r.target == "ort:cpu").record["latency_ms"]["p50"]
    assert number(p50) in html


LAYOUT_PROBLEMS = """() => {
  document.querySelectorAll("details").forEach((d) => { d.open = true; });
  const width = window.innerWidth;
  const sideways = document.documentElement.scrollWidth - width;
  const profile = document.querySelector("#profile-rule").getBoundingClientRect();
  const broken = [];
  for (const el of document.querySelectorAll(".tok")) {
    const range = document.createRange();
    range.selectNodeContents(el);
    const lines = new Set([...range.getClientRects()].map((r) => Math.round(r.top)));
    if (lines.size > 1) broken.push(el.textContent);
  }
  const outside = [...document.querySelectorAll("p, h1, h2, h3, nav, summary, dl")]
    .filter((el) => el.getBoundingClientRect().right > width + 1)
    .map((el) => el.tagName + "#" + el.id + "." + el.className);
  return {sideways, profileRight: profile.right, width, broken, outside};
}"""


@pytest.mark.parametrize("width", [400, 1280])
def test_report_fits_a_phone_and_a_desktop_width(browser, document, tmp_path, width):
    """No sideways scroll of the page (wide tables scroll in their own frame), the profile
    paragraph within the screen, and no target, model or exporter name broken inside."""
    current, _ = with_iree_error(dict(document, benchmarks=benchmarks()))
    path = write_report(save(current, tmp_path / "results.json"), tmp_path / "report.html")
    report = OpenedReport(browser, path, width=width)
    found = report.page.evaluate(LAYOUT_PROBLEMS)
    report.page.screenshot(path=str(tmp_path / f"report-{width}.png"), full_page=False)
    assert found["width"] == width
    assert found["sideways"] <= 0, found
    assert found["profileRight"] <= width and found["outside"] == []
    assert found["broken"] == []
    assert report.page.locator("table.verdicts th.tok").count() == len(current["targets"])
    report.assert_quiet()


def test_exporter_findings_are_counted_only_in_their_own_column(document, tmp_path):
    """A conformant target's row: exporter findings in their column, none in failed/error."""
    verdicts = {v.target: v for v in build_view(document).verdicts}
    for target in ("ort:cpu", "reference"):
        row = verdicts[target]
        assert row.profiles[0].conformant and row.exporter_findings > 0
        assert [row.counts[v] for v in NOT_PASSED] == [0] * len(NOT_PASSED), row.counts
    markdown = render_markdown(build_view(document))
    line = next(x for x in markdown.splitlines() if x.startswith("| ort:cpu |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[3:7] == ["0", "0", "0", "0"] and int(cells[-1]) > 0, line


# ---- the precision section (issue 13 item 5) ----


@pytest.fixture(scope="module")
def int8_document(tmp_path_factory) -> dict:
    return load_document(run_int8(tmp_path_factory.mktemp("int8") / "run"))


def accuracy_checks(document: dict) -> list[dict]:
    return [c for c in document["checks"] if c.get("kind") == "accuracy"]


def test_precision_section_only_for_reduced_precision_runs(document, int8_document):
    from conformance.compare.tolerance import tolerance_for
    from conformance.pack.load import Pack
    from conformance.spec import PACK_DIR

    assert build_view(document).precision is None  # fp32 only: no section
    assert build_view(document).profile == "core"
    assert build_view(int8_document).profile == "int8"  # the verdict names the run's profile
    markdown = render_markdown(build_view(int8_document))
    assert "conformant for the **int8** profile" in markdown
    section = markdown.split("### Accuracy", 1)[1].split("###", 1)[0]
    accuracy_rows = [line for line in section.splitlines() if line.startswith("| ")][1:]
    assert len(accuracy_rows) == len(accuracy_checks(int8_document))
    view = build_view(int8_document).precision
    assert view is not None and view.precisions == ("int8",)
    records = accuracy_checks(int8_document)
    assert records and len(view.accuracy) == len(records)
    for row, record in zip(view.accuracy, records, strict=True):
        assert (row.relative, row.tier) == (record.get("relative"), record.get("tier", ""))
    tiers = {(t.target, t.precision): t.counts for t in view.tiers}
    for target in {r["target"] for r in records}:
        mine = [r for r in records if r["target"] == target and "tier" in r]
        assert tiers[(target, "int8")] == tuple(
            sum(r["tier"] == t for r in mine) for t in ("99.9", "99", "below 99")
        )
    models = {m.name: m for m in Pack(PACK_DIR).models}
    for row in view.tolerances:
        rule = tolerance_for("int8", row.model, models[row.model].record["tolerance_class"])
        values = [
            c
            for c in int8_document["checks"]
            if c["model"] == row.model and c.get("kind") != "accuracy" and c["verdict"] != "skipped"
        ]
        passed = sum(c["verdict"] == "passed" for c in values)
        assert row.cells == (
            f"atol {number(rule.atol)}, rtol {number(rule.rtol)} ({passed}/{len(values)} passed)",
        )


def test_precision_section_in_chromium(browser, int8_document, tmp_path):
    document = rename_target(int8_document, "ort:cpu", HOSTILE)
    records = accuracy_checks(document)
    path = write_report(save(document, tmp_path / "results.json"), tmp_path / "report.html")
    report = OpenedReport(browser, path)
    page = report.page
    section = page.locator("#precision")
    assert section.is_visible() and page.locator("nav a[href='#precision']").count() == 1
    assert "conformant for the int8 profile" in page.inner_text("#headline")
    rows = page.locator("table.precision.accuracy tbody tr")
    assert rows.count() == len(records)
    for index, record in enumerate(records):
        text = rows.nth(index).inner_text()
        assert record["exporter"] in text and f"{record['relative']:.4f}" in text
        assert record["tier"] in text and record["verdict"] in text
    answered = [r for r in records if "relative" in r]
    assert page.locator("#precision svg circle.accuracy-mark").count() == len(answered)
    assert page.locator("#precision svg line.tier-line").count() == 3
    assert HOSTILE in section.inner_text() and page.locator("img").count() == 0
    assert "int8" in page.inner_text("table.precision.tolerances")
    page.screenshot(path=str(tmp_path / "precision.png"), full_page=True)
    report.assert_quiet()
