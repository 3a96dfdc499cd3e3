"""What was done for speed keeps what runlog reports true: diff's own walk reports what
DeepDiff reports, and DeepDiff is imported only when two lists differ."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import pytest
from deepdiff import DeepDiff

from recordfactory import make_record
from runlog import diff as rdiff
from runlog.ledger import Ledger


def _deepdiff_report(left: dict, right: dict) -> list[tuple]:
    """The report as runlog made it before: DeepDiff over the whole view."""
    found = []
    for report_type, items in DeepDiff(left, right, verbose_level=2, threshold_to_diff_deeper=0).tree.items():
        kind = rdiff._KINDS.get(report_type)
        if kind is None:
            continue
        for item in items:
            parts = item.path(output_format="list")
            found.append((parts[0], rdiff._json_path(parts[1:]), None if kind == "added" else item.t1,
                          None if kind == "removed" else item.t2, kind))
    return sorted(found, key=repr)


def _walk_report(left: dict, right: dict) -> list[tuple]:
    out: list = []
    rdiff._walk(left, right, [], out)
    return sorted(((c.section, c.path, c.old, c.new, c.kind) for c in out), key=repr)


_SCALARS = [None, True, False, 0, 1, 2, 1.0, 2.5, "", "a", "b", "true", "1"]


def _value(rng: random.Random, depth: int):
    roll = rng.random()
    if depth > 2 or roll < 0.55:
        return rng.choice(_SCALARS)
    if roll < 0.8:
        return {rng.choice("abcde"): _value(rng, depth + 1) for _ in range(rng.randint(0, 4))}
    return [_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]


def _mutate(rng: random.Random, value):
    if isinstance(value, dict) and value and rng.random() < 0.8:
        out = dict(value)
        key = rng.choice(sorted(out))
        action = rng.random()
        if action < 0.25:
            del out[key]
        elif action < 0.45:
            out[rng.choice("fgh")] = _value(rng, 2)
        else:
            out[key] = _mutate(rng, out[key])
        return out
    if isinstance(value, list) and value and rng.random() < 0.8:
        out = list(value)
        index = rng.randrange(len(out))
        action = rng.random()
        if action < 0.3:
            del out[index]
        elif action < 0.5:
            out.insert(index, _value(rng, 2))
        else:
            out[index] = _mutate(rng, out[index])
        return out
    return _value(rng, 1)


@pytest.mark.parametrize("seed", range(4))
def test_diff_walk_reports_exactly_what_deepdiff_reports(seed):
    rng = random.Random(seed)
    compared = 0
    for _ in range(400):
        left = {section: {k: _value(rng, 1) for k in "abcd" if rng.random() < 0.7} for section in ("p", "q")}
        right = json.loads(json.dumps(left))
        for _ in range(rng.randint(0, 3)):
            right["p" if rng.random() < 0.7 else "q"] = _mutate(rng, right["p"])
        assert _walk_report(left, right) == _deepdiff_report(left, right), (left, right)
        compared += 1
    assert compared == 400


def test_diff_walk_type_changes_that_python_equality_hides():
    left = {"p": {"flag": True, "n": 1, "x": [1, 2]}}
    right = {"p": {"flag": 1, "n": 1.0, "x": [True, 2]}}
    found = _walk_report(left, right)
    assert ("p", "flag", True, 1, "type_changed") in found
    assert ("p", "n", 1, 1.0, "type_changed") in found
    assert found == _deepdiff_report(left, right)


def _diff_imports(ledger_path, tmp_path) -> tuple[list[str], dict]:
    code = (
        "import sys, runpy, io, contextlib\n"
        f"sys.argv = ['runlog', '--ledger', {str(ledger_path)!r}, 'diff', '@2', '@1', '--json']\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        "    try:\n        runpy.run_module('runlog', run_name='__main__')\n"
        "    except SystemExit:\n        pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('deepdiff', 'numpy', 'pydantic')))\n"
        "print(out.getvalue().replace(chr(10), ' '))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    imported, report = done.stdout.splitlines()[-2:]
    return eval(imported), json.loads(report)  # a list of module names printed by repr


def _ledger(path, first: dict, second: dict) -> None:
    with Ledger.open(path) as ledger:
        for params in (first, second):
            ledger.add_record(make_record(parameters=params))


def test_runlog_diff_without_list_changes_never_imports_deepdiff(tmp_path):
    path = tmp_path / "ledger.db"
    _ledger(path, {"sample": "NA12878", "reads": ["a.fq", "b.fq"]}, {"sample": "NA12879", "reads": ["a.fq", "b.fq"]})
    imported, report = _diff_imports(path, tmp_path)
    assert imported == []
    assert [(c["path"], c["old"], c["new"]) for c in report["changes"]] == [("sample", "NA12878", "NA12879")]


def test_runlog_diff_of_changed_lists_uses_deepdiff_without_numpy(tmp_path):
    path = tmp_path / "ledger.db"
    _ledger(path, {"reads": ["a.fq", "b.fq"]}, {"reads": ["a.fq", "c.fq", "b.fq"]})
    imported, report = _diff_imports(path, tmp_path)
    assert "deepdiff" in imported and "numpy" not in imported
    assert [(c["path"], c["kind"], c["new"]) for c in report["changes"]] == [("reads[1]", "added", "c.fq")]


# --- the git capture asks git itself; gitpython (a test dependency) is the reference ---------------

def _gitpython_view(path):
    """commit, branch and remote as the capture read them through gitpython before."""
    import git

    from runlog.gitcapture import strip_credentials

    repo = git.Repo(path, search_parent_directories=True)
    try:
        commit = repo.head.commit.hexsha
    except ValueError:
        commit = None
    branch = None if repo.head.is_detached else repo.head.reference.name
    remotes = {r.name: r for r in repo.remotes}
    chosen = remotes.get("origin") or next(iter(remotes.values()), None)
    url = None
    if chosen is not None:
        try:
            url = next(iter(chosen.urls), None)
        except Exception:
            url = None
    return {"commit": commit, "branch": branch, "remote": strip_credentials(url)}


def _captured(path):
    from runlog.gitcapture import capture

    found = capture(path)
    return {k: found.get(k) for k in ("commit", "branch", "remote")}, found


def test_git_capture_agrees_with_gitpython_on_branches_remotes_and_heads(git_repo, git, tmp_path):
    sub = git_repo / "pipelines" / "rna"
    sub.mkdir(parents=True)
    ours, found = _captured(sub)
    assert ours == _gitpython_view(sub)
    assert ours["remote"] == "https://github.com/lab/analysis.git"  # the password is never recorded
    assert found["workdir"] == "pipelines/rna" and found["state"] == "clean"

    git(git_repo, "checkout", "-q", "-b", "feature/faster-qc")
    git(git_repo, "remote", "add", "aaa-first", "git@example.org:lab/mirror.git")
    git(git_repo, "config", "url.https://git.example.org/.insteadOf", "gx:")
    git(git_repo, "remote", "set-url", "origin", "gx:lab/analysis.git")
    ours, _ = _captured(git_repo)
    assert ours == _gitpython_view(git_repo)
    assert ours["branch"] == "feature/faster-qc" and ours["remote"] == "https://git.example.org/lab/analysis.git"

    git(git_repo, "remote", "remove", "origin")  # no origin: the first remote configured
    git(git_repo, "remote", "add", "zzz-last", "https://example.org/z.git")
    ours, _ = _captured(git_repo)
    assert ours == _gitpython_view(git_repo) and ours["remote"] == "git@example.org:lab/mirror.git"

    git(git_repo, "checkout", "-q", "--detach")
    ours, found = _captured(git_repo)
    assert ours == _gitpython_view(git_repo) and ours["branch"] is None and found["commit"]

    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q", "-b", "trunk")
    ours, found = _captured(empty)
    assert ours == _gitpython_view(empty) == {"commit": None, "branch": "trunk", "remote": None}
    assert found["state"] == "dirty"  # no commit yet: nothing to point at


def test_git_capture_outside_a_repository_and_without_git(tmp_path, monkeypatch):
    from runlog.gitcapture import capture

    outside = tmp_path / "not-a-repo"
    outside.mkdir()
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    assert capture(outside) == {"state": "none", "reason": "not inside a git repository"}
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    assert capture(outside) == {"state": "none", "reason": "git is not installed"}


def test_submit_does_not_import_gitpython(aws_env, ledger_path, git_repo, tmp_path):
    from helpers import SEED_1

    code = (
        "import sys, runpy\n"
        f"sys.argv = ['runlog', *{[str(a) for a in SEED_1]!r}]\n"
        "try:\n    runpy.run_module('runlog', run_name='__main__')\n"
        "except SystemExit as exc:\n    print('EXIT', exc.code)\n"
        "print('IMPORTED', sorted(m for m in sys.modules if m.split('.')[0] in ('git', 'gitdb', 'boto3')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=git_repo,
                          env={**os.environ, "RUNLOG_NO_FORK": "1"})
    assert "EXIT 0" in done.stdout or "EXIT None" in done.stdout, done.stderr
    assert "IMPORTED []" in done.stdout
    with Ledger.open(ledger_path, create=False) as ledger:
        (entry,) = ledger.entries()
    assert entry.record["git"]["state"] == "clean" and entry.record["git"]["branch"] == "main"


# --- botocore data, trimmed and cached (runlog.modelcache) ---------------------------------------

def _botocore_file(relative: str) -> str:
    import botocore

    return os.path.join(os.path.dirname(botocore.__file__), "data", relative)


def _entries():
    from runlog.modelcache import cache_dir

    return sorted(cache_dir().glob("*.json")) if cache_dir().is_dir() else []


def test_cache_entry_is_written_private_and_used_again(tmp_path):
    from runlog import modelcache

    source = tmp_path / "source.json"
    source.write_text('{"a": 1}')
    built = []
    first = modelcache.cached(str(source), "test", lambda: built.append(1) or {"made": len(built)})
    second = modelcache.cached(str(source), "test", lambda: built.append(1) or {"made": len(built)})
    assert first == second == {"made": 1} and built == [1]
    (entry,) = _entries()
    assert entry.stat().st_mode & 0o777 == 0o600 and entry.parent.stat().st_mode & 0o777 == 0o700
    source.write_text('{"a": 2, "changed": true}')  # another file (size, time): another entry
    assert modelcache.cached(str(source), "test", lambda: {"made": "again"}) == {"made": "again"}
    assert len(_entries()) == 2


@pytest.mark.parametrize("how", ["group-writable", "world-writable", "symlink", "not json", "directory others write"])
def test_cache_refuses_entries_others_could_have_written(tmp_path, how):
    from runlog import modelcache

    source = tmp_path / "source.json"
    source.write_text("{}")
    modelcache.cached(str(source), "test", lambda: {"trusted": True})
    (entry,) = _entries()
    planted = json.loads(entry.read_text())
    planted["data"] = {"trusted": False, "planted": True}
    if how == "symlink":
        elsewhere = tmp_path / "elsewhere.json"
        elsewhere.write_text(json.dumps(planted))
        elsewhere.chmod(0o600)
        entry.unlink()
        entry.symlink_to(elsewhere)
    elif how == "not json":
        entry.write_bytes(b"\x80not json")
    else:
        entry.write_text(json.dumps(planted))
        if how == "group-writable":
            entry.chmod(0o620)
        elif how == "world-writable":
            entry.chmod(0o602)
        else:
            entry.parent.chmod(0o777)
    found = modelcache.cached(str(source), "test", lambda: {"trusted": True, "rebuilt": True})
    assert found == {"trusted": True, "rebuilt": True}
    if how == "not json":  # a damaged entry of our own is made again
        assert modelcache.cached(str(source), "test", lambda: {"unused": True}) == found


def _shape_view(shape, seen=None):
    seen = set() if seen is None else seen
    if shape is None:
        return None
    if shape.name in seen:
        return shape.name
    seen.add(shape.name)
    view = {"type": shape.type_name, "serialization": shape.serialization,
            "metadata": {k: v for k, v in shape.metadata.items() if k != "documentation"}}
    if shape.type_name == "structure":
        view["members"] = {name: _shape_view(member, seen) for name, member in shape.members.items()}
    elif shape.type_name == "list":
        view["member"] = _shape_view(shape.member, seen)
    elif shape.type_name == "map":
        view["key"], view["value"] = _shape_view(shape.key, seen), _shape_view(shape.value, seen)
    return view


def test_runlog_sessions_make_the_clients_plain_botocore_makes(monkeypatch):
    """Same endpoints, regions, signing and operation shapes for every service runlog calls,
    from the trimmed, cached data (second session: read from the cache) as from botocore's own."""
    import botocore.session

    from runlog import aws

    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    for _attempt in range(2):  # the second reads the cache the first wrote
        ours = aws.session(aws.AwsSettings())
        plain = botocore.session.Session()
        for service in (*aws.ENDPOINT_SERVICES, "ec2"):
            for region in ("eu-central-1", "us-east-1", "us-gov-west-1", "cn-north-1"):
                a, b = ours.client(service, region_name=region), plain.create_client(service, region_name=region)
                assert a.meta.endpoint_url == b.meta.endpoint_url, (service, region)
                assert a.meta.region_name == b.meta.region_name
                assert a.meta.partition == b.meta.partition
                assert a._request_signer._signing_name == b._request_signer._signing_name
                assert a.meta.service_model.metadata == b.meta.service_model.metadata
            model_a, model_b = a.meta.service_model, b.meta.service_model
            assert model_a.operation_names == model_b.operation_names
            if service in aws.UNDOCUMENTED:
                for name in model_b.operation_names:
                    op_a, op_b = model_a.operation_model(name), model_b.operation_model(name)
                    assert op_a.http == op_b.http and op_a.auth_type == op_b.auth_type
                    assert _shape_view(op_a.input_shape) == _shape_view(op_b.input_shape), name
                    assert _shape_view(op_a.output_shape) == _shape_view(op_b.output_shape), name
    sources = sorted(os.path.relpath(json.loads(e.read_text())["identity"]["source"],
                                     os.path.realpath(_botocore_file(""))) for e in _entries())
    assert [s.split(os.sep)[0] for s in sources] == ["endpoints.json", "s3", "sts"]
    assert all(e.stat().st_size < 300_000 for e in _entries())  # endpoints.json alone is 1.2 MB


# --- every command that opens the ledger asks for pending attempts ------------------------------

def test_pending_attempts_are_found_on_indexes_without_reading_every_intent(tmp_path):
    with Ledger.open(tmp_path / "l.db") as ledger:
        done = make_record(run_id="1000001")
        ledger.add_attempt({k: v for k, v in done.items() if k != "outcome"})
        ledger.complete({k: v for k, v in done.items() if k != "outcome"}, done["outcome"])
        waiting = [make_record(run_id=str(1000002 + i), name=f"waiting-{i}") for i in range(2)]
        for record in waiting:
            ledger.add_attempt({k: v for k, v in record.items() if k != "outcome"})
        for i in range(20):  # records without attempts (imported, pulled) are never pending
            ledger.add_record(make_record(run_id=str(2000000 + i)))
        found = ledger.pending()
        assert [i["request"]["requestId"] for i in found] == [r["request"]["requestId"] for r in waiting]
        plan = [row[-1] for row in ledger.conn.execute("EXPLAIN QUERY PLAN " + ledger._PENDING_SQL)]
        assert "SCAN a USING COVERING INDEX" in " ".join(plan), plan
        assert not [step for step in plan if step.strip() in ("SCAN a", "SCAN attempts")], plan


@pytest.mark.parametrize("text", [
    "2026-11-25T10:00:00Z", "2026-11-25T10:00:00.123Z", "2026-11-25T10:00:00.123456Z", "2026-11-25T10:00:00+02:00",
    "2026-11-25T10:00:00.5-05:30", "2026-11-25T23:59:59.999999+00:00", "Wed, 25 Nov 2026 10:00:00 GMT",
    "1700000000", "2026-11-25 10:00:00", "2026-11-25T10:00:00",
])
def test_runlogs_timestamp_parser_gives_what_botocores_gives(text):
    """Sessions runlog makes parse response timestamps with aws.parse_timestamp (fast for ISO
    8601): the same time, offset and ISO text as botocore's own parser."""
    from botocore.utils import parse_timestamp as botocores

    from runlog.aws import parse_timestamp

    ours, theirs = parse_timestamp(text), botocores(text)
    assert ours == theirs and ours.isoformat() == theirs.isoformat() and ours.utcoffset() == theirs.utcoffset()


def test_clients_from_runlogs_sessions_parse_timestamps_as_botocore(emulator):
    """A GetRun through a runlog session and through a plain botocore session: equal answers."""
    import botocore.session
    from botocore.config import Config

    from runlog import aws

    settings = aws.AwsSettings(region="us-west-2", endpoint_url=emulator.endpoint_url)
    ours = aws.client(settings, "omics")
    plain = botocore.session.get_session().create_client(
        "omics", region_name="us-west-2", endpoint_url=emulator.endpoint_url,
        aws_access_key_id="x", aws_secret_access_key="x", config=Config(inject_host_prefix=False))
    run = ours.list_runs()["items"][0]["id"]
    a, b = ours.get_run(id=run), plain.get_run(id=run)
    a.pop("ResponseMetadata"), b.pop("ResponseMetadata")
    assert a == b and any(hasattr(v, "isoformat") for v in a.values())
