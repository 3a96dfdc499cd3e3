"""runlog as a library keeps to itself: a Runlog opens its ledger read-only for reads (and so
never creates, migrates or writes it), and library messages leave the command line's words
(flags, `runlog COMMAND`) to the command line, which still prints them."""

from __future__ import annotations

import sqlite3

import pytest

import runlog
from helpers import fill, read_only
from runlog.ledger import Ledger
from runlog.migrations import LEDGER_FORMAT

REQUEST = {"workflowId": "1234567", "workflowOwnerId": "123456789012",
           "roleArn": "arn:aws:iam::123456789012:role/HealthOmicsServiceRole",
           "outputUri": "s3://your-bucket/results/", "parameters": {"param1": "value1", "param2": "value2"}}


def older_ledger(path, count=2) -> list[str]:
    """A ledger as runlog wrote it before migration m003 (no row seals): a writable open
    migrates it, a read-only one reads it as it is."""
    made = fill(path, count)
    conn = sqlite3.connect(path)
    conn.executescript("DROP TRIGGER row_seals_no_update; DROP TRIGGER row_seals_no_delete; DROP TABLE row_seals;"
                       "PRAGMA user_version = 2;")
    conn.close()
    return made


def user_version(path) -> int:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()


def every_read(rl: runlog.Runlog, made: list[str], out) -> None:
    """log, show, observations, diff, verify and export, each asserting what it read."""
    assert [e.address for e in rl.log()] == made[::-1]
    assert rl.show("@1").address == made[-1]
    assert [o["status"] for o in rl.observations(made[0])] == ["COMPLETED"]
    compared = rl.diff(made[0], made[1])
    assert (compared.a["record"], compared.b["record"]) == (made[0], made[1])
    report = rl.verify()
    assert report.ok and report.records == len(made), [p.message for p in report.problems]
    assert rl.export(made[0], format="prov-json", path=out).written == [out] and out.exists()


def test_reads_never_create_a_ledger_that_does_not_exist(tmp_path):
    path = tmp_path / "not-yet" / "ledger.db"
    with runlog.Runlog(path, config={"git_repo": str(tmp_path)}) as rl:
        assert list(rl.log()) == [] and list(rl.log(same_as="@1")) == []
        reads = {"show": lambda: rl.show("@1"), "observations": lambda: rl.observations("@1"),
                 "diff": lambda: rl.diff("@1", "@2"), "verify": rl.verify,
                 "export": lambda: rl.export("@1", format="prov-json", path=tmp_path / "out.json")}
        for name, read in reads.items():
            with pytest.raises(runlog.LedgerError, match="no ledger at .*not-yet"):
                read()
            assert not path.parent.exists(), f"{name} made {path.parent}"
    assert not (tmp_path / "out.json").exists()


def test_reads_leave_an_older_ledger_as_it_is(tmp_path):
    path = tmp_path / "ledger.db"
    made = older_ledger(path)
    before = path.read_bytes()
    with runlog.Runlog(path, config={"git_repo": str(tmp_path)}) as rl:
        every_read(rl, made, tmp_path / "out.prov.json")
    assert path.read_bytes() == before and user_version(path) == 2  # not migrated, not written


def test_reads_work_on_a_ledger_the_user_cannot_write(tmp_path):
    path = tmp_path / "ledger.db"
    made = older_ledger(path)  # a writable open would have to migrate it, and could not
    before = path.read_bytes()
    with read_only(path), runlog.Runlog(path, config={"git_repo": str(tmp_path)}) as rl:
        every_read(rl, made, tmp_path / "out.prov.json")
    assert path.read_bytes() == before


def test_a_write_after_reads_opens_the_ledger_for_writing(aws_env, ledger_path, git_repo):
    made = fill(ledger_path, 1)
    with runlog.Runlog(ledger_path) as rl:
        assert [e.address for e in rl.log()] == made
        response = rl.start_run(**REQUEST)  # the read-only connection gives way to a writable one
        assert rl.show("@1").run_id == response["id"]
        assert [e.address for e in rl.log()][1:] == made
    with Ledger.open(ledger_path, readonly=True) as ledger:
        assert [e.run_id for e in ledger.entries()][0] == response["id"]
        assert ledger.conn.execute("PRAGMA user_version").fetchone()[0] == LEDGER_FORMAT


# -- messages: the library's words for Python, the command line's words on the command line -----

@pytest.mark.parametrize("library, command_line", [
    ("out.json exists: give `force=True` to replace it, or another `path`",
     "out.json exists: give --force to replace it, or another -o"),
    ("the attempt r-1 is kept as pending: `recover()` sends it (once), `abandon('r-1')` gives it up",
     "the attempt r-1 is kept as pending: `runlog recover` sends it (once), `runlog recover --abandon r-1` gives it up"),
    ("batch 77 has no member runs in the ledger yet: `refresh(['77'])` records them",
     "batch 77 has no member runs in the ledger yet: `runlog refresh 77` records them"),
    ("'@1' names a run, not a batch; `log()` lists records", "'@1' names a run, not a batch; `runlog log` lists records"),
    ("try `export('@1', runs_only=True)`", "try `runlog export @1 --runs-only`"),
    ("missing `defaultRunSetting` (a JSON object)", "missing --default-run-setting (a JSON object)"),
    ("`batchRunSettings` inlineSettings[0] has no runSettingId", "--batch-run-settings inlineSettings[0] has no runSettingId"),
    ("(check `region`, region in .runlog.toml)", "(check --region, region in .runlog.toml)"),
    ("submitted with `resolve=False`?", "submitted with --no-resolve?"),
    # names neither table knows stay as the library wrote them
    ("run `git init` first; `strict=maybe`, `nothing()` and `recover(x)` stay",
     "run `git init` first; `strict=maybe`, `nothing()` and `recover(x)` stay"),
    ("no backticks at all --force", "no backticks at all --force"),
])
def test_the_command_line_words_library_messages_with_its_options_and_commands(library, command_line):
    from runlog.cli.wording import command_line as worded

    assert worded(library) == command_line


def test_an_export_that_would_replace_a_file_names_force_to_python_and_the_flag_to_the_shell(
        ledger_path, tmp_path, run_cli):
    fill(ledger_path, 1)
    existing = tmp_path / "exists.json"
    existing.write_text("keep me")
    with runlog.Runlog(ledger_path) as rl, pytest.raises(runlog.UsageError) as refused:
        rl.export("@1", format="bco", path=existing)
    assert refused.value.option == "force"
    assert "exists: give `force=True` to replace it, or another `path`" in refused.value.message
    assert "--" not in refused.value.message
    result = run_cli("export", "@1", "-f", "bco", "-o", existing)
    assert result.exit_code == 2 and existing.read_text() == "keep me"
    assert result.stderr.strip().endswith("exists: give --force to replace it, or another -o")
    assert "`" not in result.stderr


def test_a_bad_region_names_the_setting_to_python_and_the_option_to_the_shell(ledger_path, run_cli):
    with runlog.Runlog(ledger_path, config={"region": "no such region!"}) as rl, \
            pytest.raises(runlog.UsageError) as refused:
        rl.import_runs()
    assert refused.value.option == "region" and "(check `region`, region in .runlog.toml" in refused.value.message
    assert not ledger_path.exists()
    result = run_cli("import", "--region", "no such region!")
    assert result.exit_code == 2 and "(check --region, region in .runlog.toml" in result.stderr
    assert not ledger_path.exists()


def test_a_batch_request_names_members_as_boto3_does_and_the_shell_shows_options(ledger_path, run_cli):
    from runlog.batch import check_request

    with pytest.raises(runlog.UsageError) as refused:
        check_request({"batchRunSettings": {"inlineSettings": []}})
    assert refused.value.option == "defaultRunSetting" and "missing `defaultRunSetting`" in refused.value.message
    result = run_cli("submit-batch", "--batch-run-settings", '{"inlineSettings": [{"runSettingId": "a"}]}')
    assert result.exit_code == 2 and "runlog: error: missing --default-run-setting (a JSON object" in result.stderr
    assert not ledger_path.exists()


@pytest.mark.parametrize("members", [{"parameters": "file://missing.json"}, {"parameters": "{not json"},
                                     {"tags": "novalue"}, {"runGroupId": "file://missing.txt"}])
def test_request_arguments_read_from_text_are_named_as_boto3_names_them(tmp_path, members):
    """A Python caller may pass the aws CLI's text forms (file://, JSON, shorthand) too: a bad
    one is named by its keyword argument, never by the command line's option."""
    from runlog.errors import UsageError
    from runlog.startrun import build_request, flag_for

    (member,) = members
    with pytest.raises(UsageError) as raised:
        build_request(dict(members), cwd=tmp_path)
    assert member in str(raised.value) and flag_for(member) not in str(raised.value)
    with pytest.raises(UsageError) as raised:  # the command line's spelling, when asked for
        build_request(dict(members), cwd=tmp_path, spell=flag_for)
    assert flag_for(member) in str(raised.value)
