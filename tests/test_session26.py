"""Session 26: what a demanding user's trial of the cohort commands found (a fact the diff
made up, counts the text cut short, fields the JSON lacked), each through the CLI against
the emulator, real git repositories and real ledger files."""

from __future__ import annotations

import json

import pytest

from helpers import BASE, NF
from runlog.ledger import Ledger


def _changes(run_cli, *refs) -> list[dict]:
    result = run_cli("diff", *refs, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["changes"]


def test_diff_says_nothing_of_a_dirty_tree_a_record_does_not_know(aws_env, ledger_path, git_repo, run_cli, tmp_path,
                                                                  git):
    """A run recorded without a git state (no repository: "none"; an imported run: "unknown")
    against one from a dirty tree: the diff said `dirty true -> false`, as if the second run
    came from a clean tree. The state's change is the fact; the second side says nothing of
    dirtiness, so `dirty` is removed there, as its commit and branch are."""
    (git_repo / "workflow-inputs.json").write_text((git_repo / "workflow-inputs.json").read_text() + "\n")
    elsewhere = tmp_path / "not-a-repository"
    elsewhere.mkdir()

    def submit_from(env: dict | None = None) -> None:
        result = run_cli(*NF, "--parameters", json.dumps(BASE), "--endpoint-url", aws_env.endpoint_url, env=env)
        assert result.exit_code == 0, result.output

    submit_from()
    submit_from({"RUNLOG_GIT_REPO": str(elsewhere)})
    found = {c["path"]: c for c in _changes(run_cli, "@2", "@1") if c["section"] == "git"}
    assert found["state"]["old"] == "dirty" and found["state"]["new"] == "none", found
    assert (found["dirty"]["kind"], found["dirty"]["old"], found["dirty"]["new"]) == ("removed", True, None), found
    assert found["commit"]["kind"] == "removed"
    assert "true -> false" not in run_cli("diff", "@2", "@1").stdout
    # a clean tree against the same: `false` removed (not "changed"), and two known sides still compare
    git(git_repo, "checkout", "-q", "--", "workflow-inputs.json")
    submit_from()
    clean = {c["path"]: c for c in _changes(run_cli, "@2", "@1") if c["section"] == "git"}
    assert (clean["dirty"]["kind"], clean["dirty"]["new"]) == ("added", False), clean
    assert {c["path"]: (c["old"], c["new"]) for c in _changes(run_cli, "@3", "@1")
            if c["section"] == "git"}["dirty"] == (True, False)


DEFAULT = {"workflowId": "1234567", "roleArn": "arn:aws:iam::123456789012:role/OmicsRole",
           "outputUri": "s3://cohort-bucket/out/",
           "parameters": {"ref_dict": "s3://cohort-bucket/ref/genome.dict", "ref_fasta": "s3://cohort-bucket/ref/genome.fa",
                          "ref_fasta_index": "s3://cohort-bucket/ref/genome.fa.fai"}}


def _submit_batch(run_cli, emulator, samples: list[str]) -> str:
    settings = [{"runSettingId": s, "name": f"align-{s}",
                 "parameters": {"sample_name": s, "input_cram": f"s3://cohort-bucket/crams/{s}.cram"}}
                for s in samples]
    result = run_cli("submit-batch", "--batch-name", "cohort", "--default-run-setting", json.dumps(DEFAULT),
                     "--batch-run-settings", json.dumps({"inlineSettings": settings}),
                     "--endpoint-url", emulator.endpoint_url)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["id"]


def test_watch_says_how_many_failures_it_does_not_list_and_json_lists_all(aws_env, ledger_path, git_repo, run_cli):
    """`watch B` listed the first 20 failures and said nothing of the rest; its --json had
    `failures_count` 30 beside 20 `failures`. As `show B`: the rest counted, --json all."""
    samples = [f"S{i:02d}" for i in range(36)]
    failing = samples[::2] + samples[1:13:2]  # 24 runs end FAILED
    aws_env.batch_rate = 100
    aws_env.batch_fault("run", reason="OUT_OF_MEMORY", run_setting_ids=failing)
    batch_id = _submit_batch(run_cli, aws_env, samples)
    aws_env.advance(300)
    watched = run_cli("watch", batch_id, "--interval", "0.1")
    assert watched.exit_code == 1, watched.output  # not every run completed
    listed = [line for line in watched.stdout.splitlines() if line.startswith("  failed ")]
    assert len(listed) == 20, watched.stdout
    assert "… and 4 more failed (--json lists all" in watched.stdout
    facts = json.loads(run_cli("watch", batch_id, "--json").stdout)
    assert facts["failures_count"] == 24
    assert sorted(f["run_setting_id"] for f in facts["failures"]) == sorted(failing)


def test_log_batch_json_gives_each_members_run_setting_id(aws_env, ledger_path, git_repo, run_cli):
    """`log --batch B --json` had no runSettingId: a script could not map runs to samples
    without one `show` per member. Each member now has `run_setting_id`."""
    samples = ["NA12878", "NA12891", "HG002"]
    aws_env.batch_rate = 100
    batch_id = _submit_batch(run_cli, aws_env, samples)
    aws_env.advance(300)
    assert run_cli("refresh", batch_id).exit_code == 0
    listed = json.loads(run_cli("log", "--batch", batch_id, "--json", "-n", "0").stdout)
    assert sorted(e["run_setting_id"] for e in listed) == sorted(samples)
    shown = {e["run_setting_id"]: e["run_id"] for e in listed}
    for sample, run_id in shown.items():  # the mapping is the service's: each run's own setting
        member = json.loads(run_cli("show", run_id, "--json").stdout)["record"]
        assert member["batch"]["run_setting_id"] == sample
        assert member["request"]["parameters"]["input_cram"].endswith(f"/{sample}.cram")
    assert "run_setting_id" not in json.loads(run_cli("log", "--json").stdout)[0]  # the batch: no member


def test_show_member_says_why_its_run_failed_and_which_batch_setting_it_ran(aws_env, ledger_path, git_repo,
                                                                           run_cli):
    """`show MEMBER` of a run that FAILED gave its status alone; the reason (what `show B`
    lists for it) and the batch and run setting were only inside the JSON body."""
    aws_env.batch_rate = 100
    aws_env.batch_fault("run", reason="OUT_OF_MEMORY", run_setting_ids=["NA12891"])
    batch_id = _submit_batch(run_cli, aws_env, ["NA12878", "NA12891"])
    aws_env.advance(300)
    assert run_cli("refresh", batch_id).exit_code == 0
    runs = {e["run_setting_id"]: e["run_id"] for e in json.loads(run_cli("log", "--batch", batch_id, "--json").stdout)}
    shown = run_cli("show", runs["NA12891"]).stdout
    lines = dict(line.split(None, 1) for line in shown.split("\n\n")[0].splitlines())
    assert "OUT_OF_MEMORY" in lines["failed"], shown
    assert lines["batch"].startswith(f"{batch_id} (runSettingId NA12891), batch record "), shown
    assert json.loads(run_cli("show", runs["NA12891"], "--json").stdout)["failure_reason"].startswith("OUT_OF_MEMORY")
    fine = run_cli("show", runs["NA12878"])
    assert "\nfailed " not in fine.stdout and "(runSettingId NA12878)" in fine.stdout
    assert "failure_reason" not in json.loads(run_cli("show", runs["NA12878"], "--json").stdout)


def test_show_batch_says_it_was_replayed(aws_env, ledger_path, git_repo, run_cli):
    """`show MEMBER` said `replayed by …` and its --json had `replays`; `show B`, after
    `replay B --only failed`, had neither."""
    aws_env.batch_rate = 100
    aws_env.batch_fault("run", reason="OUT_OF_MEMORY", run_setting_ids=["HG002"])
    batch_id = _submit_batch(run_cli, aws_env, ["NA12878", "HG002"])
    aws_env.advance(300)
    assert run_cli("refresh", batch_id).exit_code == 0
    before = json.loads(run_cli("show", batch_id, "--json").stdout)
    assert before["replays"] == [] and "replayed by" not in run_cli("show", batch_id).stdout
    again = run_cli("replay", batch_id, "--only", "failed", "--endpoint-url", aws_env.endpoint_url)
    assert again.exit_code == 0, again.output
    new_id = json.loads(again.stdout)["id"]
    replays = json.loads(run_cli("show", batch_id, "--json").stdout)["replays"]
    assert len(replays) == 1
    assert json.loads(run_cli("show", replays[0], "--json").stdout)["record"]["lineage"]["replay_of"]["run_id"] == batch_id
    text = run_cli("show", batch_id).stdout
    assert f"replayed by  {replays[0]} (batch {new_id}, submitted)" in text, text


def test_report_graph_tells_an_original_it_did_not_draw_from_one_not_in_the_report(aws_env, ledger_path, git_repo,
                                                                                  run_cli):
    """The lineage graph draws the newest GRAPH_LIMIT runs; a drawn replay whose original is
    in the report's table but not drawn said "(not in this report)", and the note counted
    only the replays whose original was drawn ("0 replay(s)")."""
    from helpers import submit
    from runlog.report.page import render
    from runlog.report.select import select

    first = submit(run_cli, aws_env, BASE)
    submit(run_cli, aws_env, {**BASE, "aligner": "kallisto"})
    again = run_cli("replay", first, "--endpoint-url", aws_env.endpoint_url)
    assert again.exit_code == 0, again.output
    with Ledger.open(ledger_path, create=False) as ledger:
        original = ledger.resolve(first).address
        page = render(select(ledger, [], graph_limit=2))  # the replay and the second run drawn
        whole = render(select(ledger, []))
    assert f'<tr id="row-{original[:16]}"' in page  # the original is in the report's table
    assert f"replay of {original[:12]} (not drawn: see its row)" in page
    assert "(not in this report)" not in page
    assert "2 record(s), 1 replay(s)" in page
    assert "3 record(s), 1 replay(s)" in whole and "not drawn" not in whole


def _missing_value_cases() -> list[tuple[str, list[str]]]:
    """Each command with an option that takes a value, that option last without it (after the
    command's arguments, given)."""
    import click

    from runlog.cli import COMMANDS, cli

    cases = []
    for name in sorted(COMMANDS):
        params = cli.get_command(None, name).params
        valued = [p for p in params if isinstance(p, click.Option) and not p.is_flag and not p.count and p.opts[0]
                  not in ("--help",)]
        if not valued:
            continue
        given = [f"x{i}" for i, p in enumerate(params) if isinstance(p, click.Argument) and p.required
                 for _ in range(max(p.nargs, 1))]
        cases.append((name, [*given, valued[0].opts[0]]))
    return cases


@pytest.mark.parametrize("name,args", _missing_value_cases(), ids=lambda v: v if isinstance(v, str) else "")
def test_an_option_without_its_value_points_to_its_commands_help(name, args):
    """`runlog log -n` said to see `runlog --help`, whose page does not list -n; an unknown
    option and a missing argument already named the command's own help."""
    from click.testing import CliRunner

    from runlog.cli import cli

    result = CliRunner().invoke(cli, [name, *args], prog_name="runlog")  # the name it is installed as
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("runlog: error: Option ") and "requires an argument" in result.stderr, \
        result.stderr
    assert result.stderr.rstrip("\n").endswith(f"(see `runlog {name} --help`)"), result.stderr


def test_validate_counts_the_valid_files_past_ten(aws_env, ledger_path, git_repo, run_cli, tmp_path):
    """`export B --validate` printed a line per file: 104 for a 100-run batch. Past ten files it
    counts the valid ones (an INVALID or unchecked file still has its own line); --json has
    every verdict."""
    samples = [f"S{i:02d}" for i in range(12)]
    aws_env.batch_rate = 100
    batch_id = _submit_batch(run_cli, aws_env, samples)
    aws_env.advance(300)
    assert run_cli("refresh", batch_id).exit_code == 0
    out = tmp_path / "bcos"
    result = run_cli("export", batch_id, "-f", "bco", "-o", out, "--validate")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[-1] == "valid: 12 of the 12 file(s) checked (--json lists each verdict)", result.stdout
    assert len(lines) == 2 and lines[0].startswith("wrote 12 file(s)")
    verdicts = json.loads(run_cli("export", batch_id, "-f", "bco", "-o", tmp_path / "again", "--validate",
                                  "--json").stdout)["validation"]
    assert len(verdicts) == 12 and all(v["ok"] for v in verdicts)


def test_replay_dry_run_json_notes_name_the_options(aws_env, ledger_path, git_repo, run_cli):
    """A batch cancelled before it submitted all its run settings: `replay B --only failed
    --dry-run`'s note said `only failed` and, in --json only, `only` (the library's names)."""
    samples = [f"S{i:02d}" for i in range(12)]
    aws_env.batch_rate = 1  # one run submitted a second
    batch_id = _submit_batch(run_cli, aws_env, samples)
    aws_env.advance(20)  # 10 of the 12 submitted
    assert run_cli("cancel", batch_id, "--endpoint-url", aws_env.endpoint_url).exit_code == 0
    aws_env.advance(300)
    assert run_cli("refresh", batch_id).exit_code == 0
    planned = run_cli("replay", batch_id, "--only", "failed", "--dry-run", "--json")
    assert planned.exit_code == 0, planned.output
    notes = json.loads(planned.stdout)["notes"]
    never = [line for line in notes if "never submitted" in line]
    assert never, (notes, planned.stderr)
    assert "`--only failed` leaves them out; name them with --only (their runSettingIds)" in never[0], never
    assert never[0] in planned.stderr


def test_exported_json_escapes_what_a_terminal_takes_for_control_codes(aws_env, ledger_path, git_repo, run_cli,
                                                                       tmp_path):
    """A run setting's parameter holding U+009B (CSI) and U+2028 was written raw into the crate
    and batches/<id>/run-settings.json, where ESC is escaped: `cat` of the file could start an
    escape sequence. They are now escaped too; the JSON's values are unchanged."""
    hostile = "NA12878\u009b31mred\u2028\u0085"
    settings = [{"runSettingId": "S0", "name": "align-S0",
                 "parameters": {"sample_name": hostile, "input_cram": "s3://cohort-bucket/crams/S0.cram"}}]
    result = run_cli("submit-batch", "--default-run-setting", json.dumps(DEFAULT),
                     "--batch-run-settings", json.dumps({"inlineSettings": settings}),
                     "--endpoint-url", aws_env.endpoint_url)
    assert result.exit_code == 0, result.output
    batch_id = json.loads(result.stdout)["id"]
    aws_env.batch_rate = 100
    aws_env.advance(300)
    assert run_cli("refresh", batch_id).exit_code == 0
    out = tmp_path / "crate"
    exported = run_cli("export", batch_id, "-f", "all", "-o", out, "--license", "CC-BY-4.0")
    assert exported.exit_code == 0, exported.output
    written = [p for p in out.rglob("*.json")]
    holding = [p for p in written if "\\u009b31mred\\u2028\\u0085" in p.read_text(encoding="utf-8")]
    names = {p.name for p in holding}
    assert {"ro-crate-metadata.json", "run-settings.json"} <= names, names
    for path in written:
        text = path.read_text(encoding="utf-8")
        assert not any(ch in text for ch in "\u009b\u2028\u0085\x7f"), path
    assert not [p for p in out.rglob("*") if p.is_file() and p.suffix != ".json"  # the Markdown, CSV, PROV-N
                and any(ch in p.read_text(encoding="utf-8", errors="replace") for ch in "\u009b\u2028\u0085")]
    settings_file = next(p for p in holding if p.name == "run-settings.json")
    assert json.loads(settings_file.read_text())[0]["parameters"]["sample_name"] == hostile


def test_report_names_a_batchs_members_chart_by_its_batch_id(aws_env, ledger_path, git_repo, run_cli, tmp_path):
    """The "Batch members by status" bar was labelled by the batch record's address alone."""
    aws_env.batch_rate = 100
    batch_id = _submit_batch(run_cli, aws_env, ["NA12878", "NA12891"])
    aws_env.advance(300)
    assert run_cli("refresh", batch_id).exit_code == 0
    address = json.loads(run_cli("show", batch_id, "--json").stdout)["address"]
    assert run_cli("report", "-o", tmp_path / "r.html").exit_code == 0
    page = (tmp_path / "r.html").read_text()
    assert f"batch {batch_id} (record {address[:12]}): 2 run(s)" in page


# -- what a fault trial found (a helper's kill -9 and strace of submit-batch) -------------------------

def test_a_batch_recover_completes_after_it_finished_gets_its_members_from_a_plain_refresh(aws_env, ledger_path,
                                                                                       git_repo, run_cli):
    """StartRunBatch started the batch but its answers were lost (pending); the batch finished
    before `recover` sent the request again, whose answer says PROCESSED. `runlog refresh`
    (no REF) took the batch for finished and settled: "no unfinished runs to refresh", and
    `show B` said 0 member records for ever. It is refreshed once GetBatch was never asked."""
    aws_env.batch_rate = 100
    aws_env.inject("error", operation="StartRunBatch", count=3, phase="after")  # started, every answer lost
    samples = ["NA12878", "NA12891", "HG002"]
    settings = [{"runSettingId": s, "name": f"align-{s}",
                 "parameters": {"sample_name": s, "input_cram": f"s3://cohort-bucket/crams/{s}.cram"}} for s in samples]
    first = run_cli("submit-batch", "--default-run-setting", json.dumps(DEFAULT),
                    "--batch-run-settings", json.dumps({"inlineSettings": settings}),
                    "--endpoint-url", aws_env.endpoint_url)
    assert first.exit_code == 1 and "pending" in first.stderr, first.output
    aws_env.advance(300)  # the batch runs to its end meanwhile
    recovered = run_cli("recover", "--json")
    assert recovered.exit_code == 0, recovered.output
    shown = json.loads(run_cli("show", "@1", "--json").stdout)
    batch_id = shown["record"]["outcome"]["response"]["id"]
    assert shown["record"]["outcome"]["response"]["status"] == "PROCESSED"
    refreshed = run_cli("refresh")
    assert refreshed.exit_code == 0, refreshed.output
    assert "3 new member record(s)" in refreshed.stdout, refreshed.output
    facts = json.loads(run_cli("show", batch_id, "--json").stdout)["batch"]
    assert facts["members_recorded"] == 3 and facts["run_status"] == {"COMPLETED": 3}
    assert "no unfinished runs to refresh" in run_cli("refresh").stderr  # settled now: not asked again


def test_the_attempt_is_on_disk_before_the_request_leaves(aws_env, ledger_path, git_repo, tmp_path):
    """The intent is committed before StartRunBatch (or StartRun) is sent, but with SQLite's
    `synchronous = NORMAL` the commit sat in the page cache when the request left: a power loss
    then could take back the attempt of a batch the service had started. strace of one
    submission: the ledger's WAL is synced after its last write and before the POST."""
    import os
    import re
    import shutil
    import subprocess
    import sys

    if shutil.which("strace") is None:
        pytest.skip("strace is not installed")
    trace = tmp_path / "trace.txt"
    settings = [{"runSettingId": "S0", "name": "align-S0",
                 "parameters": {"sample_name": "S0", "input_cram": "s3://cohort-bucket/crams/S0.cram"}}]
    for kind, args, request in (
            ("batch", ["submit-batch", "--default-run-setting", json.dumps(DEFAULT), "--batch-run-settings",
                       json.dumps({"inlineSettings": settings})], "POST /runBatch"),
            ("run", ["submit", "--workflow-id", "1234567", "--role-arn", DEFAULT["roleArn"], "--output-uri",
                     "s3://cohort-bucket/out/", "--parameters", "file://workflow-inputs.json"], "POST /run ")):
        done = subprocess.run(["strace", "-f", "-y", "-e", "trace=fsync,fdatasync,sendto,pwrite64", "-o", str(trace),
                               sys.executable, "-m", "runlog", *args, "--endpoint-url", aws_env.endpoint_url],
                              cwd=git_repo, env={**os.environ, "RUNLOG_LEDGER": str(ledger_path)},
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        lines = trace.read_text().splitlines()
        sent = next(i for i, line in enumerate(lines) if request in line)
        wal = f"{ledger_path.name}-wal>"
        writes = [i for i, line in enumerate(lines[:sent]) if "pwrite64(" in line and wal in line]
        assert writes, kind
        assert [line for line in lines[writes[-1]:sent] if re.search(r"f(data)?sync\(\d+<[^>]*" + re.escape(wal), line)], \
            (kind, lines[writes[-1]:sent + 1])
