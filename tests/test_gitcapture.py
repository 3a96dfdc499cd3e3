"""The git capture under hostile working trees, through `runlog submit` against the emulator:
symlinks are recorded as links and never followed, special files are never opened, and big
untracked trees are summarised within the capture's budgets, the record saying what was left out."""

from __future__ import annotations

import os
import time

import pytest

from helpers import SEED_1
from runlog.ledger import Ledger


def records(path):
    """Oldest first."""
    with Ledger.open(path, create=False) as ledger:
        return [e.record for e in reversed(ledger.entries())]


def submit(run_proc, repo, env=None, timeout=60):
    """A real `runlog submit` process (a hang fails the test at the timeout)."""
    result = run_proc(*SEED_1, cwd=repo, env=env, timeout=timeout)
    assert result.returncode == 0, result.stderr
    return result


def test_untracked_symlink_to_a_directory_is_a_link_not_a_crash(aws_env, ledger_path, git_repo, run_proc):
    os.symlink("/usr", git_repo / "data")
    submit(run_proc, git_repo)
    first = records(ledger_path)[-1]["git"]
    assert first["state"] == "dirty" and first["untracked"] == ["data"]
    # the link's target is what is recorded: pointing it elsewhere changes the digest
    (git_repo / "data").unlink()
    os.symlink("/etc", git_repo / "data")
    submit(run_proc, git_repo)
    assert records(ledger_path)[-1]["git"]["untracked_sha256"] != first["untracked_sha256"]


def test_symlinks_to_devices_and_nowhere_are_never_opened(aws_env, ledger_path, git_repo, run_proc):
    os.symlink("/dev/zero", git_repo / "z")
    os.symlink("/dev/urandom", git_repo / "r")
    os.symlink("does/not/exist", git_repo / "dangling")
    started = time.monotonic()
    submit(run_proc, git_repo, timeout=60)
    assert time.monotonic() - started < 30
    git = records(ledger_path)[0]["git"]
    assert git["untracked"] == ["dangling", "r", "z"] and len(git["untracked_sha256"]) == 64


def test_a_symlinked_untracked_file_is_not_hashed_through(aws_env, ledger_path, git_repo, run_proc, tmp_path):
    """The digest follows the link's target path, not the content behind it."""
    outside = tmp_path / "outside.txt"
    outside.write_text("one\n")
    os.symlink(outside, git_repo / "link.txt")
    submit(run_proc, git_repo)
    outside.write_text("two\n")
    submit(run_proc, git_repo)
    first, second = (r["git"]["untracked_sha256"] for r in records(ledger_path))
    assert first == second


def test_many_untracked_files_are_summarised_and_the_record_says_so(aws_env, ledger_path, git_repo, run_proc):
    scratch = git_repo / "scratch"
    scratch.mkdir()
    for index in range(1500):
        (scratch / f"{index:05d}.txt").write_text(f"{index}\n")
    result = submit(run_proc, git_repo)
    record = records(ledger_path)[0]
    assert len(record["git"]["untracked"]) == 1000 and record["git"]["untracked"][0] == "scratch/00000.txt"
    message = "git capture: 1500 untracked files; the record lists the first 1000 names, untracked_sha256 covers all"
    assert any(w.startswith(message) for w in record["warnings"])
    assert message in result.stderr
    (scratch / "01499.txt").write_text("changed\n")  # a file past the listed names still counts
    submit(run_proc, git_repo)
    assert records(ledger_path)[1]["git"]["untracked_sha256"] != record["git"]["untracked_sha256"]


def test_content_budgets_are_kept_and_reported(aws_env, ledger_path, git_repo, run_proc):
    for name in ("a.bin", "b.bin", "c.bin"):
        (git_repo / name).write_bytes(b"x" * 600)
    with open(git_repo / "huge.bin", "wb") as fh:  # sparse: 65 MiB on paper, nothing on disk
        fh.truncate(65 * 1024 * 1024)
    submit(run_proc, git_repo, env={"RUNLOG_GIT_MAX_BYTES": "1000"})
    warnings = records(ledger_path)[0]["warnings"]
    assert ("git capture: 2 untracked file(s) identified by name and size only: the 1000 bytes budget for "
            "hashing untracked content was used up") in warnings
    assert "git capture: 1 untracked file(s) over 64 MiB identified by name and size only" in warnings


def test_the_time_budget_ends_the_capture_and_the_record_says_so(aws_env, ledger_path, git_repo, run_proc):
    (git_repo / "notes.txt").write_text("scratch\n")
    submit(run_proc, git_repo, env={"RUNLOG_GIT_TIMEOUT": "0"})
    record = records(ledger_path)[0]
    assert record["git"]["state"] == "dirty"  # not known to be clean, so never claimed to be
    assert any("time budget ran out" in w for w in record["warnings"]), record["warnings"]


def test_bad_capture_budget_is_one_line_exit_2(aws_env, ledger_path, git_repo, run_proc):
    result = run_proc(*SEED_1, cwd=git_repo, env={"RUNLOG_GIT_TIMEOUT": "soon"})
    assert result.returncode == 2
    assert result.stderr.splitlines() == ["runlog: error: RUNLOG_GIT_TIMEOUT must be a number of seconds "
                                          "(0 or more), got 'soon'"]
    assert not ledger_path.exists()


def test_an_untracked_name_that_is_not_utf8_keeps_the_record_valid(aws_env, ledger_path, git_repo, run_proc):
    with open(os.path.join(os.fsencode(git_repo), b"caf\xe9.txt"), "wb") as fh:
        fh.write(b"latin-1 name\n")
    submit(run_proc, git_repo)
    assert records(ledger_path)[0]["git"]["untracked"] == ["caf\\xe9.txt"]
    assert run_proc("verify", cwd=git_repo).returncode == 0


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="giving the work tree away needs root")
def test_a_repository_git_refuses_is_recorded_as_unknown(aws_env, ledger_path, git_repo, run_proc):
    os.chown(git_repo, 65534, 65534)  # git: "detected dubious ownership in repository"
    try:
        result = submit(run_proc, git_repo)
    finally:
        os.chown(git_repo, os.geteuid(), os.getegid())
    git = records(ledger_path)[0]["git"]
    assert git["state"] == "unknown" and "dubious ownership" in git["reason"]
    assert "git refused the repository" in result.stderr


@pytest.mark.parametrize("remote, recorded", [
    ("https://lab:s3cret@[broken/analysis.git", "https://[broken/analysis.git"),  # Python's parser refuses it
    ("https://lab:s3cret@git.example.org:notaport/analysis.git", "https://git.example.org:notaport/analysis.git"),
    ("https://ghp_s3cret@github.com/lab/analysis.git?x=a@b", "https://github.com/lab/analysis.git?x=a@b"),
    ("ssh://git@git.example.org/lab/analysis.git", "ssh://git@git.example.org/lab/analysis.git"),  # a login
    ("ssh://git:s3cret@git.example.org/lab/analysis.git", "ssh://git.example.org/lab/analysis.git"),
])
def test_a_remote_url_loses_its_secret_even_when_it_is_no_valid_url(aws_env, ledger_path, git_repo, run_proc,
                                                                       remote, recorded):
    """The remote is whatever the repository's config says: a submit records it without the
    password or token, and a URL Python cannot parse does not stop the submit."""
    import subprocess

    subprocess.run(["git", "remote", "set-url", "origin", remote], cwd=git_repo, check=True)
    submit(run_proc, git_repo)
    (record,) = records(ledger_path)
    assert record["git"]["remote"] == recorded
    assert "s3cret" not in ledger_path.read_bytes().decode("utf-8", "replace")
