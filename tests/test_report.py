"""`runlog report` without a browser: determinism, escaping, what the page says, selection,
limits and one-line errors. The browser checks are in test_report_browser.py."""

from __future__ import annotations

import html
import re
import sqlite3
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reportledger import HOSTILE_NAME, HOSTILE_PARAMETER, build
from runlog.ledger import Ledger
from runlog.report import render, select
from runlog.report.graph import Edge, Node, layout, svg


@pytest.fixture
def small(ledger_path):
    return build(ledger_path)


def _tags(page: str) -> list[tuple[str, dict]]:
    """Every element of the page as an HTML parser sees it: (tag, attributes)."""
    from html.parser import HTMLParser

    found = []

    class Collect(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, dict(attrs)))

    Collect().feed(page)
    return found


def _report(run_cli, tmp_path, *args, name="report.html"):
    target = tmp_path / name
    result = run_cli("report", *args, "-o", target, "--force")
    return result, (target.read_text(encoding="utf-8") if target.exists() else None)


def test_same_ledger_same_bytes(small, ledger_path, run_cli, tmp_path):
    first, page = _report(run_cli, tmp_path, name="one.html")
    second, again = _report(run_cli, tmp_path, name="two.html")
    assert first.exit_code == 0 and second.exit_code == 0, first.output
    assert (tmp_path / "one.html").read_bytes() == (tmp_path / "two.html").read_bytes()
    with Ledger.open(ledger_path) as ledger:  # something new about a run: a different report
        ledger.observe(small["addresses"]["replay2"], "GetRun", {"status": "COMPLETED"}, status="COMPLETED")
    _, changed = _report(run_cli, tmp_path, name="three.html")
    assert changed != page


def test_record_text_is_text(small, run_cli, tmp_path):
    result, page = _report(run_cli, tmp_path)
    assert result.exit_code == 0
    # the name and the parameter are in the page, escaped, never as markup
    assert "&lt;img src=x onerror=&quot;window.__pwned=1&quot;&gt;" in page
    assert "&lt;/script&gt;&lt;script&gt;window.__pwned=2&lt;/script&gt;" in page
    assert "<img" not in page and "onerror=\"window" not in page and HOSTILE_PARAMETER not in page
    assert HOSTILE_NAME not in page
    assert page.count("<script") == 1 and page.count("</script>") == 1  # the page's own script only
    # U+2028 (a line break to JavaScript) is shown as an escape, & as an entity
    assert "\u2028" not in page and "&lt;b&gt;bold&lt;/b&gt; &amp;" in page
    # nothing is loaded from anywhere: a policy that forbids it, no src= at all, links inside the page
    policy = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', page).group(1)
    assert "default-src 'none'" in policy and "script-src 'sha256-" in policy and "unsafe-inline" not in policy
    tags = _tags(page)
    assert not [t for t, attrs in tags if t in ("img", "iframe", "object", "embed", "link", "base", "form")]
    assert not [(t, a) for t, attrs in tags for a in attrs if a in ("src", "srcset") or a.startswith("on")]
    assert set(re.findall(r'href="(.)', page)) == {"#"}


def test_header_has_verify_result_head_and_counts(small, run_cli, tmp_path):
    verified = run_cli("verify")
    head = re.search(r"^head (\S+)", verified.output, re.M).group(1)
    result, page = _report(run_cli, tmp_path)
    assert result.exit_code == 0
    assert f"head {head}" in result.output and "6 run(s), ledger intact" in result.output
    assert head in page and "intact" in page
    assert "6 selected of 6 in the ledger" in page
    from runlog import __version__

    assert f"runlog {__version__}" in page


def test_tampered_ledger_report_is_written_and_exits_1(small, ledger_path, run_cli, tmp_path):
    conn = sqlite3.connect(ledger_path)
    conn.execute("DROP TRIGGER records_no_update")
    conn.execute("UPDATE records SET body = replace(body, 'original-run', 'edited-run') WHERE address = ?",
                 (small["addresses"]["original"],))
    conn.commit()
    conn.close()
    result, page = _report(run_cli, tmp_path)
    assert result.exit_code == 1
    assert "problem(s) found by verify" in result.output
    assert "problem(s)</span>" in page and "no longer matches its content address" in page


def test_sections_have_request_inputs_git_observations_and_diff(small, run_cli, tmp_path):
    _, page = _report(run_cli, tmp_path)
    replay = small["addresses"]["replay"]
    section = page.split(f'id="run-{replay[:16]}"', 1)[1].split("</section>", 1)[0]
    assert "Changes since the run it replays" in section
    assert "sample_name  NA12878 → NA12879" in section  # the same path and values as `runlog diff`
    assert "s3://lab/NA12878.cram" in section and "Inputs and their identities" in section
    assert "GetRun" in section and "RUNNING" in section
    assert "a" * 40 in section  # the git commit
    original = small["addresses"]["original"]
    assert f'href="#run-{original[:16]}"' in section  # the replay links its original
    hostile = page.split(f'id="run-{small["addresses"]["hostile"][:16]}"', 1)[1].split("</section>", 1)[0]
    assert "the previous run of workflow 1234567" in hostile


def test_graph_has_a_node_per_run_and_an_edge_per_replay(small, run_cli, tmp_path):
    _, page = _report(run_cli, tmp_path)
    graph = page.split('<svg xmlns="http://www.w3.org/2000/svg" class="lineage"', 1)[1].split("</svg>", 1)[0]
    assert graph.count('class="node ') == small["runs"]
    assert graph.count('class="edge edge-replay"') == small["replays"]
    rejected = small["addresses"]["rejected"]
    node = re.search(rf'<a href="[^"]*" class="([^"]*)" data-id="{rejected}">', graph).group(1)
    assert "not-run" in node and "st-rejected" in node
    imported = small["addresses"]["import"]
    assert "kind-import" in re.search(rf'class="([^"]*)" data-id="{imported}"', graph).group(1)


def test_selection_by_ref_and_since(small, run_cli, tmp_path):
    result, page = _report(run_cli, tmp_path, "1000003", "@1")
    assert result.exit_code == 0 and "2 run(s)" in result.output
    assert "2 selected of 6 in the ledger" in page and "records 1000003, @1" in page
    result, page = _report(run_cli, tmp_path, "--since", "2999-01-01")
    assert result.exit_code == 0 and "0 run(s)" in result.output and "No runs selected." in page
    result, page = _report(run_cli, tmp_path, "--since", "2000-01-01T00:00:00+02:00")
    assert "6 run(s)" in result.output and "created at or after 1999-12-31T22:00:00.000Z" in page


@pytest.mark.parametrize("args, message", [
    (["--since", "last tuesday"], "--since 'last tuesday': give a date as YYYY-MM-DD"),
    (["--since", "0001-01-01T00:00:00+01:00"], "between the years 1 and 9999"),
    (["no-such-run"], "no record matches 'no-such-run'"),
    (["--batch", "@1"], "(kind import), not a batch record"),
])
def test_bad_input_is_one_line_exit_2(small, run_cli, tmp_path, args, message):
    result, _ = _report(run_cli, tmp_path, *args)
    assert result.exit_code == 2
    assert result.stderr.startswith("runlog: error: ") and message in result.stderr
    assert result.stderr.count("\n") == 1


def test_output_errors(small, run_cli, tmp_path):
    existing = tmp_path / "kept.html"
    existing.write_text("mine")
    result = run_cli("report", "-o", existing)
    assert result.exit_code == 2 and "already exists; add --force" in result.stderr
    assert existing.read_text() == "mine"
    result = run_cli("report", "-o", tmp_path / "missing" / "r.html")
    assert result.exit_code == 2 and "does not exist; create it first" in result.stderr
    link = tmp_path / "link.html"
    link.symlink_to(existing)
    result = run_cli("report", "-o", link, "--force")
    assert result.exit_code == 2 and "symbolic link" in result.stderr and existing.read_text() == "mine"
    result = run_cli("report", "-o", tmp_path)
    assert result.exit_code == 2
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no staging file left behind


def test_no_ledger_is_exit_2(tmp_path, ledger_path, run_cli):
    result = run_cli("report", "-o", tmp_path / "r.html")
    assert result.exit_code == 2 and "no ledger at" in result.stderr
    assert not (tmp_path / "r.html").exists()


def test_a_bad_target_is_refused_before_the_ledger_is_opened(tmp_path, ledger_path, run_cli):
    """-o is checked first: with no ledger, or a file that is no ledger, a bad target is what
    the one line names (exit 2), and nothing is written."""
    kept = tmp_path / "kept.html"
    kept.write_text("mine")
    for ledger in (ledger_path, tmp_path / "not-a-ledger.db"):
        if ledger != ledger_path:
            ledger.write_text("not SQLite")
        result = run_cli("--ledger", ledger, "report", "-o", kept)
        assert result.exit_code == 2 and result.stderr.count("\n") == 1
        assert "already exists; add --force" in result.stderr and kept.read_text() == "mine"
        result = run_cli("--ledger", ledger, "report", "-o", tmp_path / "missing" / "r.html")
        assert result.exit_code == 2 and "does not exist; create it first" in result.stderr
    not_a_ledger = tmp_path / "not-a-ledger.db"
    result = run_cli("--ledger", not_a_ledger, "report", "-o", not_a_ledger, "--force")
    assert result.exit_code == 2 and "is the ledger's own file; the report never replaces it" in result.stderr
    assert not_a_ledger.read_text() == "not SQLite"


def test_a_good_target_and_no_ledger_say_no_ledger(tmp_path, ledger_path, run_cli):
    result = run_cli("report", "-o", tmp_path / "r.html")
    assert result.exit_code == 2 and result.stderr == f"runlog: error: no ledger at {ledger_path} yet (nothing " \
        "submitted with it)\n"
    assert not (tmp_path / "r.html").exists()


def test_limits_keep_every_row_and_say_what_is_left_out(small, ledger_path):
    with Ledger.open(ledger_path, readonly=True) as ledger:
        selection = select(ledger, [], detail_limit=2, graph_limit=3)
        page = render(selection)
    assert page.count('<tr id="row-') == 6
    assert page.count('<section class="run"') == 2
    assert page.count('class="node ') == 3
    assert "The graph shows the newest 3 of the 6 selected runs" in page
    assert "Sections for the newest 2 of the 6 selected runs" in page
    oldest = small["addresses"]["original"][:16]
    assert f'<a href="#row-{oldest}">' in page  # a run without a section links to its row


def test_generic_edges_batch_members_right_of_the_batch():
    nodes = [Node("b", "batch", "#b", "batch", ["kind-batch"], "square"),
             *[Node(f"m{i}", f"member {i}", f"#m{i}", "m", ["st-completed"]) for i in range(3)],
             Node("r", "replay", "#r", "r")]
    edges = [Edge("b", f"m{i}", "member") for i in range(3)] + [Edge("r", "m0", "replay")]
    cells, _, rows = layout(nodes, edges)
    assert cells["b"][0] == 0 and {cells[f"m{i}"][0] for i in range(3)} == {1}
    assert cells["r"][0] == 2 and cells["r"][1] == cells["m0"][1] + 1  # the replay right of what it replays
    drawn = svg(nodes, edges)
    assert drawn.count('class="edge edge-member"') == 3 and drawn.count("<rect ") == 1


def test_report_does_not_import_boto3(small, ledger_path, tmp_path):
    code = (
        "import sys, runpy\n"
        f"sys.argv = ['runlog', '--ledger', {str(ledger_path)!r}, 'report', '-o', {str(tmp_path / 'r.html')!r}]\n"
        "try:\n    runpy.run_module('runlog', run_name='__main__')\n"
        "except SystemExit as exc:\n    print('EXIT', exc.code)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore', 'git'))\n"
        "print('IMPORTED', bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert "IMPORTED []" in out.stdout, out.stdout + out.stderr
    assert (tmp_path / "r.html").exists()


def test_replay_through_the_emulator_shows_its_diff(aws_env, ledger_path, git_repo, run_cli, tmp_path):
    from helpers import BASE, submit

    submit(run_cli, aws_env, BASE)
    replayed = run_cli("replay", "@1", "--set", "aligner=bowtie", "--endpoint-url", aws_env.endpoint_url)
    assert replayed.exit_code == 0, replayed.output
    result, page = _report(run_cli, tmp_path)
    assert result.exit_code == 0, result.output
    assert page.count('class="edge edge-replay"') == 1
    assert "Changes since the run it replays" in page and "aligner  star → bowtie" in page


@given(st.text())
def test_escape_is_html_escape_of_terminal_safe(text):
    from runlog.report.graph import esc
    from runlog.textsafe import terminal_safe

    assert esc(text) == html.escape(terminal_safe(text), quote=True)


def test_a_recorded_batch_is_drawn_with_its_members(aws_env, ledger_path, git_repo, run_cli, tmp_path):
    """A real batch (runlog submit-batch against the emulator, members recorded by refresh):
    a square node for the batch, an edge to each member, and --batch selects the cohort."""
    import json

    from helpers import ROLE

    default = {"workflowId": "1234567", "roleArn": ROLE, "outputUri": "s3://cohort/out/",
               "parameters": {"ref_dict": "s3://cohort/g.dict", "ref_fasta": "s3://cohort/g.fa",
                              "ref_fasta_index": "s3://cohort/g.fa.fai"}}
    settings = {"inlineSettings": [{"runSettingId": s, "parameters": {"sample_name": s,
                                                                      "input_cram": f"s3://cohort/{s}.cram"}}
                                   for s in ("NA1", "NA2", "NA3")]}
    aws_env.batch_rate = 100
    started = run_cli("submit-batch", "--default-run-setting", json.dumps(default), "--batch-run-settings",
                      json.dumps(settings), "--endpoint-url", aws_env.endpoint_url)
    assert started.exit_code == 0, started.output
    batch_id = json.loads(started.stdout)["id"]
    aws_env.advance(11)
    refreshed = run_cli("refresh", batch_id)
    assert refreshed.exit_code == 0, refreshed.output
    result, page = _report(run_cli, tmp_path)
    assert result.exit_code == 0, result.output
    assert page.count('class="edge edge-member"') == 3
    assert page.count("<rect x=") >= 1  # the batch's square node
    cohort, only = _report(run_cli, tmp_path, "--batch", batch_id, name="cohort.html")
    assert cohort.exit_code == 0, cohort.output
    assert only.count('class="edge edge-member"') == 3
    assert all(f"NA{n}" in only for n in (1, 2, 3))
