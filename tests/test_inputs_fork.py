"""A large cohort's inputs resolved by a forked copy of submit-batch (runlog/inputsfork.py):
the record and the warnings are the same as when one process resolves them; the child is
really forked (strace), its answer is the inline resolution's, a child that dies is replaced
by resolving here, and a submission refused meanwhile stops it and sends nothing."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import pytest

from helpers import COHORT_DEFAULT, cohort_setting
from runlog import inputsfork
from runlog.ledger import Ledger

BUCKET = "cohort-bucket"
URI = f"s3://{BUCKET}/cohort/settings.json"
SAMPLES = 4500  # about 590 KB of settings file: above inputsfork.FORK_FROM
PRESENT = 300  # the CRAMs put in S3; the others are absent (NotFound)


def sample(n: int) -> str:
    return f"S{n:06d}"


@pytest.fixture
def cohort(s3_emulator, s3_server):
    """The settings file of SAMPLES runs in moto's S3, the reference files and the first
    PRESENT CRAMs with it; returns the file's bytes."""
    s3_server.create_bucket(Bucket=BUCKET)
    body = json.dumps([cohort_setting(sample(n)) for n in range(SAMPLES)]).encode()
    assert len(body) >= inputsfork.FORK_FROM
    s3_server.put_object(Bucket=BUCKET, Key="cohort/settings.json", Body=body)
    keys = [uri[len(f"s3://{BUCKET}/"):] for uri in COHORT_DEFAULT["parameters"].values()]
    keys += [f"crams/{sample(n)}.cram" for n in range(PRESENT)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda key: s3_server.put_object(Bucket=BUCKET, Key=key, Body=key.encode()), keys))
    s3_emulator.batch_rate = 100
    return body


def submit(run_proc, cwd, *more, env=None, default=COHORT_DEFAULT):
    budget = () if "--resolve-timeout" in more else ("--resolve-timeout", "60")
    return run_proc("submit-batch", "--default-run-setting", json.dumps(default), "--batch-run-settings",
                    json.dumps({"s3UriSettings": URI}), *budget, *more, cwd=cwd, env=env)


def batches(ledger_path) -> list[dict]:
    with Ledger.open(ledger_path, create=False) as ledger:
        return [e.record for e in ledger.entries() if e.kind == "batch"]


@pytest.mark.parametrize("workflow", ["1234567", "7777777"])
def test_forked_and_one_process_record_the_same(cohort, ledger_path, run_proc, tmp_path, workflow):
    """Outside a git repository (so that a warning of the git state follows the inputs'),
    the same cohort submitted twice: as runlog does, and with RUNLOG_NO_FORK set (one
    process). The records hold the same inputs and the same warnings in the same order, and
    stderr says the same. With a workflow the service does not know, a warning comes before
    the inputs' too, and the batch is refused (a rejected record, exit 1) both times."""
    here = tmp_path / "not-a-repo"
    here.mkdir()
    default = {**COHORT_DEFAULT, "workflowId": workflow}
    forked = submit(run_proc, here, default=default)
    inline = submit(run_proc, here, env={"RUNLOG_NO_FORK": "1"}, default=default)
    code = 0 if workflow == "1234567" else 1
    assert forked.returncode == code, forked.stderr
    assert inline.returncode == code, inline.stderr
    attempt = re.compile(r"attempt [0-9a-f]{12}")  # a refusal names its own attempt
    assert attempt.sub("attempt", forked.stderr) == attempt.sub("attempt", inline.stderr)
    assert bool(attempt.search(forked.stderr)) == (code == 1)
    assert f"{SAMPLES - PRESENT} input(s) not resolved" in forked.stderr
    first, second = batches(ledger_path)
    assert first["resolution"]["inputs"] == second["resolution"]["inputs"]
    assert first["warnings"] == second["warnings"]
    assert [w.split(":")[0] for w in first["warnings"]] == \
        ["workflow not resolved"] * (workflow != "1234567") + [f"{SAMPLES - PRESENT} input(s) not resolved",
                                                               "no git repository"]
    inputs = first["resolution"]["inputs"]
    assert len(inputs) == SAMPLES + 3
    assert inputs[f"s3://{BUCKET}/crams/{sample(0)}.cram"]["etag"]
    assert inputs[f"s3://{BUCKET}/crams/{sample(PRESENT)}.cram"]["error"]["code"] == "NotFound"
    verified = run_proc("verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_the_listing_is_sent_by_another_process(cohort, ledger_path, run_proc, tmp_path, git_repo):
    """strace of a submission: the ListObjectsV2 calls leave from a process other than the
    one that sends StartRunBatch."""
    trace = tmp_path / "trace"
    done = subprocess.run(["strace", "-f", "-s", "120", "-e", "trace=sendto", "-o", str(trace), sys.executable,
                           "-m", "runlog", "submit-batch", "--default-run-setting", json.dumps(COHORT_DEFAULT),
                           "--batch-run-settings", json.dumps({"s3UriSettings": URI})],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = trace.read_text().splitlines()
    listing = {line.split()[0] for line in lines if "list-type=2" in line}
    starting = {line.split()[0] for line in lines if "POST /runBatch" in line}
    assert listing and len(starting) == 1
    assert starting.isdisjoint(listing)


CHILD_SCRIPT = textwrap.dedent("""
    import json, os, signal, sys, time, zlib
    import boto3
    from runlog import batch, fastjson
    from runlog.blobs import Blob
    from runlog.inputsfork import InputsApart

    endpoint, uri = sys.argv[1], sys.argv[2]
    def s3():
        return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    body = s3().get_object(Bucket="cohort-bucket", Key="cohort/settings.json")["Body"].read()
    default = json.loads(sys.argv[3])
    runs = json.loads(body)
    out = {}

    apart = InputsApart(s3)
    apart.start(body, default, s3(), time.monotonic() + 60)
    out["started"] = apart.started
    answer = apart.answer()

    killed = InputsApart(s3)
    killed.start(body, default, s3(), time.monotonic() + 60)
    os.kill(killed.pending._pid, signal.SIGKILL)
    out["killed_answer"] = killed.answer()
    killed.settings = runs
    here = killed.resolve_here({})

    stopped = InputsApart(s3)
    stopped.start(body, default, s3(), time.monotonic() + 60)
    pid = stopped.pending._pid
    stopped.discard()
    try:
        os.waitpid(pid, os.WNOHANG)
        out["reaped"] = False
    except ChildProcessError:
        out["reaped"] = True

    # last: the inline resolution starts threads (no fork after it)
    inline = batch.input_identities(batch.settings_input_uris(default, runs), {"s3": s3()},
                                    deadline=time.monotonic() + 60)
    blob = Blob(fastjson.dumps(inline), items=len(inline))
    out["same_ref"] = answer["ref"] == blob.ref
    out["same_bytes"] = zlib.decompress(answer["packed"]) == blob.data
    out["here_same"] = here == inline
    out["warning"] = answer["warning"]
    out["problems"] = answer["problems"]
    print(json.dumps(out))
""")


def test_the_child_answers_what_one_process_finds(cohort, s3_server, tmp_path):
    """InputsApart in a process of its own (no thread running, as in the CLI): the child is
    forked, its blob is the inline resolution's, byte for byte; a child killed gives no
    answer and the inputs resolved here are the same; a child discarded is reaped."""
    script = tmp_path / "child.py"
    script.write_text(CHILD_SCRIPT)
    done = subprocess.run([sys.executable, str(script), s3_server.endpoint, URI, json.dumps(COHORT_DEFAULT)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out == {"started": True, "killed_answer": None, "reaped": True, "same_ref": True, "same_bytes": True,
                   "here_same": True, "problems": [], "warning": out["warning"]}
    assert out["warning"].startswith(f"{SAMPLES - PRESENT} input(s) not resolved: ")
    assert out["warning"].endswith("; recorded as such")


def test_a_refused_template_stops_the_child_and_sends_nothing(cohort, s3_server, s3_emulator, ledger_path,
                                                               run_proc, git_repo):
    """A run far into the file gives a parameter the workflow does not take: refused with
    its runSettingId named, while the child was resolving the inputs; nothing sent, nothing
    written, and the command ends without waiting for the child's listing."""
    runs = json.loads(cohort)
    runs[4000]["parameters"]["bogus"] = "1"
    s3_server.put_object(Bucket=BUCKET, Key="cohort/settings.json", Body=json.dumps(runs).encode())
    done = submit(run_proc, git_repo)
    assert done.returncode == 2, done.stderr
    assert sample(4000) in done.stderr and "bogus" in done.stderr
    assert not any(r["operation"] == "StartRunBatch" for r in s3_emulator.requests)
    assert not ledger_path.exists() or batches(ledger_path) == []



# -- what a process that ends at once need not do (runlog/lifetime.py) --------------------------------

def test_a_library_caller_gets_the_collector_back_and_keeps_nothing(cohort, ledger_path, git_repo):
    """Runlog.start_run_batch in this process (which goes on): the garbage collector is on
    again afterwards and the cohort is not held."""
    import gc

    import runlog
    from runlog import lifetime

    assert gc.isenabled()
    with runlog.Runlog(ledger_path) as rl:
        started = rl.start_run_batch(defaultRunSetting=COHORT_DEFAULT, batchRunSettings={"s3UriSettings": URI})
    assert started["id"]
    assert gc.isenabled()
    assert lifetime._kept == []


PROGRAM_END = textwrap.dedent("""
    import gc, sys
    from runlog import lifetime
    from runlog.cli import run
    seen = {}
    def report():  # an exit handler: runs before the program's end at once
        seen["collector"] = gc.isenabled()
        seen["kept"] = len(lifetime._kept)
        sys.stderr.write(repr(seen) + "\\n")
    import atexit
    atexit.register(report)
    sys.argv = ["runlog", *sys.argv[1:]]
    run()
""")


def test_the_program_leaves_the_collector_paused_and_holds_the_cohort(cohort, ledger_path, git_repo, tmp_path):
    """The runlog program (runlog.cli.run: the process ends when the command is done): after
    submit-batch, the collector is still paused and the cohort held, so that neither is
    walked nor freed object by object before the end."""
    script = tmp_path / "program.py"
    script.write_text(PROGRAM_END)
    done = subprocess.run([sys.executable, str(script), "submit-batch", "--default-run-setting",
                           json.dumps(COHORT_DEFAULT), "--batch-run-settings", json.dumps({"s3UriSettings": URI})],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["id"]
    assert "{'collector': False, 'kept': 1}" in done.stderr


def test_a_ledger_that_cannot_be_opened_shows_the_same_warnings_and_error(cohort, s3_emulator, run_proc, tmp_path,
                                                                        monkeypatch):
    """The ledger's place is under a file: the submission fails after the fork, before the
    child's answer is taken. stderr (the warnings found so far, then the error) and the exit
    status are those of one process; nothing is sent."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file")
    monkeypatch.setenv("RUNLOG_LEDGER", str(blocker / "ledger.db"))
    here = tmp_path / "not-a-repo"
    here.mkdir()
    forked = submit(run_proc, here)
    inline = submit(run_proc, here, env={"RUNLOG_NO_FORK": "1"})
    assert forked.returncode == inline.returncode != 0
    assert forked.stderr == inline.stderr
    assert "no git repository" in forked.stderr and "error" in forked.stderr
    assert not any(r["operation"] == "StartRunBatch" for r in s3_emulator.requests)


@pytest.mark.parametrize("env", [{}, {"RUNLOG_NO_FORK": "1"}])
def test_a_slow_caller_lookup_does_not_spend_the_inputs_budget(cohort, s3_emulator, ledger_path, run_proc, tmp_path,
                                                                 env):
    """GetCallerIdentity answers after 2.5 s, the resolve budget is 2 s: the inputs are
    resolved as one process resolves them beside the lookup (present ones with an ETag, the
    rest NotFound), with the fork and without; none is recorded as Timeout."""
    here = tmp_path / "not-a-repo"
    here.mkdir()
    s3_emulator.inject("latency", operation="GetCallerIdentity", seconds=2.5)
    done = submit(run_proc, here, "--resolve-timeout", "2", env=env)
    assert done.returncode == 0, done.stderr
    (record,) = batches(ledger_path)
    codes = [(identity.get("error") or {}).get("code", "resolved") for identity in record["resolution"]["inputs"].values()]
    assert codes.count("resolved") == PRESENT + 3 and codes.count("NotFound") == SAMPLES - PRESENT
