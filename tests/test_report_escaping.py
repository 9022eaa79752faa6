"""Names from a saved result that carry HTML or Markdown (test parameter, model, backend, label,
version, machine profile, a history file's name) are shown as their literal text in every report:
no tag, link, emphasis or table column comes from data, and no script runs when the report opens."""

import dataclasses
import html
import json
import re

import pytest

from harness.cli import main
from harness.report import sparsity, threads
from harness.report.markdown import markdown_text
from tests.headless_chromium import CHROMIUM, NO_CHROMIUM, console_messages, dump_dom
from tests.test_cli import PROFILE, crafted
from tests.test_report_sparsity import _result as sparse_result
from tests.test_report_threads import _result as thread_result

SCRIPT = "<script>window.__pwned=1</script>"
IMG = '<img src=x onerror="window.__pwned=1">'
PIPE = "| col | break"
BOLD = "**bold**"
LINK = "[link](javascript:alert(1))"
MATH = r"$\undefined{$ ~~strike~~ `code`"  # mathtext for matplotlib, math and code for GitHub
HOSTILE = [SCRIPT, IMG, PIPE, BOLD, LINK, MATH]

# Where an HTML tag, comment or declaration could start: no Markdown report may contain one.
TAG_START = re.compile(r"<[A-Za-z/!?]")
# CommonMark's backslash escape (of ASCII punctuation) and entity reference, decoded in one pass.
COMMONMARK_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])|&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]*);")


def commonmark_text(markdown: str) -> str:
    """The text CommonMark shows for ``markdown`` written without markup: escapes and entities decoded."""
    return COMMONMARK_ESCAPE.sub(lambda m: m[1] or html.unescape(m[0]), markdown)


def markdown_tables(markdown: str) -> list[list[list[str]]]:
    """The GFM tables of ``markdown``: rows of cells, split where GFM splits them (a ``|`` not
    escaped by a backslash)."""
    tables, rows = [], []
    for line in markdown.splitlines() + [""]:
        if line.startswith("|"):
            rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]])
        elif rows:
            tables.append(rows)
            rows = []
    return tables


def assert_columns_kept(markdown: str) -> list[list[list[str]]]:
    """Every row of every table has its header's columns; the tables, for more checks."""
    tables = markdown_tables(markdown)
    for table in tables:
        assert [len(row) for row in table] == [len(table[0])] * len(table), table
    return tables


def hostile_result(path, seed, profile):
    """A result from test_cli's ``crafted`` with one cell per hostile string, which is its test
    parameter, model, backend, backend label, backend version and artifact (its size doubling from
    seed to seed: a size regression, whose note is that text); the peak's method is hostile too."""
    crafted(path, {f"cell{i}-ort": 1e-3 for i in range(len(HOSTILE))}, seed=seed, profile=profile)
    data = json.loads(path.read_text())
    for bench, text in zip(data["benchmarks"], HOSTILE):
        bench["fullname"] = f"suites/test_latency.py::test_latency[{text}]"
        bench["name"] = f"test_latency[{text}]"
        bench["extra_info"].update(model=text, backend=text, backend_label=text, backend_version=text)
        bench["extra_info"].update(artifact=text, artifact_bytes=1000 * 2**seed)
    data["infer_bench"]["peak_method"] = PIPE
    path.write_text(json.dumps(data))
    return path


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    """report.md, report.html and the step summary of a hostile result against a hostile baseline
    from another (hostile) profile, with a hostile run in the history."""
    tmp = tmp_path_factory.mktemp("hostile")
    baseline = dict(PROFILE, profile_id=LINK, cpu={"model": BOLD}, packages={"onnxruntime": PIPE})
    current = dict(PROFILE, profile_id=SCRIPT, cpu={"model": IMG}, packages={"onnxruntime": BOLD})
    base = hostile_result(tmp / "base.json", 0, baseline)
    cur = hostile_result(tmp / "cur.json", 1, current)
    history = tmp / "history"
    history.mkdir()
    hostile_result(history / f"0001_{MATH}.json", 2, current)
    out = tmp / "out"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GITHUB_STEP_SUMMARY", str(out / "step-summary.md"))
        argv = ["report", str(cur), "--baseline", str(base), "-o", str(out), "--history", str(history)]
        assert main([*argv, "--allow-profile-mismatch"]) == 0
    return out


@pytest.mark.parametrize(
    "value, markdown",
    [
        ("test_latency[mlp-ort]", "test_latency[mlp-ort]"),  # ordinary names stay as they are
        (SCRIPT, r"&lt;script&gt;window.\_\_pwned=1&lt;/script&gt;"),
        (IMG, r'&lt;img src=x onerror="window.\_\_pwned=1"&gt;'),
        (PIPE, r"\| col \| break"),
        (BOLD, r"\*\*bold\*\*"),
        (LINK, r"[link\](javascript:alert(1))"),
        (MATH, r"\$\\undefined{\$ \~\~strike\~\~ \`code\`"),
        ("C:\\models\\a&amp;b", r"C:\\models\\a&amp;amp;b"),
        ("[x]: javascript:y [z][x]", r"[x\]: javascript:y [z\][x]"),
        ("two\nlines\r\nthree\rfour", "two lines three four"),
    ],
)
def test_markdown_text_escapes_markup_and_reads_back_as_the_value(value, markdown):
    assert markdown_text(value) == markdown
    assert commonmark_text(markdown) == " ".join(value.splitlines())


def test_markdown_report_shows_hostile_names_as_text_in_their_own_columns(report_dir):
    md = (report_dir / "report.md").read_text()
    assert TAG_START.search(md) is None and not re.search(r"(?<!\\)\]\(", md)
    summary, verdicts = assert_columns_kept(md)
    assert summary[0][:2] == ["cell", "backend"] and verdicts[0][:2] == ["cell", "verdict"]
    names = sorted(f"test_latency[{text}]" for text in HOSTILE)
    assert sorted(commonmark_text(row[0]) for row in summary[2:]) == names
    assert sorted(commonmark_text(row[1]) for row in summary[2:]) == sorted(HOSTILE)
    assert sorted(commonmark_text(row[0]) for row in verdicts[2:]) == names
    text = commonmark_text(md)
    # each cell's size regression notes its (hostile) artifact, as text, last in the note column
    assert sorted(commonmark_text(row[-1]).split("size: ")[-1] for row in verdicts[2:]) == sorted(HOSTILE)
    assert f"Profile **{SCRIPT}** - {IMG}, 2 effective CPUs; practical fp32 peak 100 GFLOP/s ({PIPE})." in text
    assert f"- **compared across machine profiles** {LINK} -> {SCRIPT}: timings may not be comparable" in text
    assert f"- **runtime changed**: onnxruntime {PIPE} in the baseline, {BOLD} now" in text
    assert (report_dir / "step-summary.md").read_text() == md


def test_markdown_report_rendered_like_github_has_no_tag_link_or_emphasis_from_data(report_dir):
    md = (report_dir / "report.md").read_text()
    try:
        from markdown_it import MarkdownIt
    except ImportError:
        markdown = pytest.importorskip(
            "markdown", reason="no Markdown renderer installed (markdown-it-py or Markdown; neither is a dependency)"
        )
        rendered = markdown.markdown(md, extensions=["markdown.extensions.tables"])
        shown = HOSTILE[:-1]  # Python-Markdown, unlike CommonMark, does not unescape \$ and \~
    else:
        rendered = MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(md)
        shown = HOSTILE
    assert not re.search(r"<(script|img|a|code|del|s)\b", rendered)
    assert "<strong>bold</strong>" not in rendered
    for table in re.findall(r"<table>.*?</table>", rendered, re.S):
        header, *rows = re.findall(r"<tr>.*?</tr>", table, re.S)
        assert [len(re.findall(r"<td\b", row)) for row in rows] == [len(re.findall(r"<th\b", header))] * len(rows)
    text = html.unescape(re.sub(r"<[^>]*>", "", rendered))
    assert all(f"test_latency[{value}]" in text for value in shown)


def test_html_report_escapes_every_hostile_name_once(report_dir):
    page = (report_dir / "report.html").read_text()
    assert page.count("<script") == 1 and "data-plots-rendered" in page  # only the report's own render check
    assert page.count("<img") == page.count("<img class='plot'") == 3  # the hostile-named run's trend plotted too
    assert f"Profile <b>{html.escape(SCRIPT)}</b> - {html.escape(IMG)}, 2 effective CPUs" in page
    for text in HOSTILE:
        assert f"<td>{html.escape(f'test_latency[{text}]')}</td><td>{html.escape(text)}</td>" in page
        assert f"<td title='{html.escape(text)}'><span style='color:#d62728'>2.0x REGRESSION</span></td>" in page
    assert "&amp;lt;" not in page and r"\*" not in page and r"\_" not in page  # no double escaping, no Markdown


@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
def test_hostile_report_runs_no_script_in_headless_chromium(report_dir, tmp_path):
    probe = (
        "<script>window.addEventListener('load', function () { setTimeout(function () {"
        " document.body.setAttribute('data-pwned', String(window.__pwned)); }, 0); });</script>"
    )
    # the probe sees a payload that runs: the image's onerror, unescaped, sets window.__pwned
    control = tmp_path / "control.html"
    control.write_text(f"<!DOCTYPE html><html><body>{IMG}{probe}</body></html>")
    assert 'data-pwned="1"' in dump_dom(control, tmp_path / "control-profile").stdout
    page = tmp_path / "report.html"
    page.write_text((report_dir / "report.html").read_text().replace("</body>", f"{probe}</body>"))
    proc = dump_dom(page, tmp_path / "profile")
    dom = proc.stdout
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'data-pwned="undefined"' in dom and 'data-plots-rendered="3/3"' in dom
    assert dom.count("<tr>") == 1 + len(HOSTILE)
    assert all(html.escape(text, quote=False) in dom for text in HOSTILE)  # shown as text
    assert console_messages(proc.stderr) == []


def test_thread_and_sparsity_markdown_show_hostile_names_as_text():
    results = [thread_result(t, int(t), 1e-3 / int(t), model=SCRIPT, backend=PIPE) for t in ("1", "2")]
    md = threads.to_markdown(threads.scaling_table(results), results)
    assert TAG_START.search(md) is None
    [table] = assert_columns_kept(md)
    assert [[commonmark_text(cell) for cell in row[:3]] for row in table[2:]] == [[SCRIPT, PIPE, "both"]] * 2
    results = [
        dataclasses.replace(sparse_result(LINK, s, ms, model=SCRIPT), label=IMG) for s, ms in ((0.0, 10), (0.9, 5))
    ]
    md = sparsity.to_markdown(sparsity.sparsity_table(results))
    assert TAG_START.search(md) is None and not re.search(r"(?<!\\)\]\(", md)
    points, break_even = assert_columns_kept(md)
    assert [[commonmark_text(row[0]), commonmark_text(row[-1])] for row in points[2:]] == [[LINK, IMG]] * 2
    assert commonmark_text(break_even[2][0]) == LINK
    text = commonmark_text(md)
    assert f"## {SCRIPT} (llvm, 2 threads)" in text and f"Best dense cell: **{LINK}** 10.000 ms." in text
