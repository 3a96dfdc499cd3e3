"""Configuration precedence: .runlog.toml < user config < RUNLOG_* < flags."""

from __future__ import annotations

import os

import pytest

from runlog import config
from runlog.errors import UsageError
from runlog.ledger import Ledger


def test_precedence(tmp_path, monkeypatch, git):
    project = tmp_path / "proj"
    sub = project / "a" / "b"
    sub.mkdir(parents=True)
    git(project, "init", "-q")
    (project / ".runlog.toml").write_text('region = "eu-west-1"\nprofile = "team"\nrole_arn = "arn:team"\n'
                                          'ledger = "led/ger.db"\n[tags]\nproject = "wgs"\n')
    user = tmp_path / "home" / ".config" / "runlog"
    user.mkdir(parents=True)
    (user / "config.toml").write_text('profile = "mine"\nregion = "us-east-2"\n')
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
    monkeypatch.setenv("RUNLOG_REGION", "ap-southeast-2")
    cfg = config.load(cwd=sub, overrides={"role_arn": "arn:flag", "profile": None})
    assert cfg.get("region") == "ap-southeast-2" and cfg.sources["region"] == "RUNLOG_REGION"
    assert cfg.get("profile") == "mine"
    assert cfg.get("role_arn") == "arn:flag"
    assert cfg.get("tags") == {"project": "wgs"}
    assert cfg.ledger_path() == (project / "led" / "ger.db").resolve()


def test_default_ledger_locations(tmp_path, monkeypatch, git_repo):
    assert config.load(cwd=git_repo).ledger_path() == git_repo.resolve() / ".runlog" / "ledger.db"
    plain = tmp_path / "plain"
    plain.mkdir()
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert config.load(cwd=plain).ledger_path() == tmp_path / "data" / "runlog" / "ledger.db"


@pytest.mark.parametrize("text, message", [
    ('regoin = "x"', "unknown configuration key 'regoin'"),
    ("tags = 3", "'tags'"),
    ("region = [", "cannot parse"),
])
def test_bad_config_names_file_and_key(tmp_path, text, message):
    (tmp_path / ".runlog.toml").write_text(text)
    with pytest.raises(UsageError, match=message) as info:
        config.load(cwd=tmp_path)
    assert ".runlog.toml" in str(info.value)


def test_env_tags_forms(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNLOG_TAGS", "a=1,b=2")
    assert config.load(cwd=tmp_path).get("tags") == {"a": "1", "b": "2"}
    monkeypatch.setenv("RUNLOG_TAGS", '{"c": "3"}')
    assert config.load(cwd=tmp_path).get("tags") == {"c": "3"}


# --- where .runlog.toml is read from, and which files are refused (docs/reliability.md) ----------

ROLE = "arn:aws:iam::123456789012:role/omics-workflow-role"
PLANTED = ('output_uri = "s3://someone-elses-bucket/take/"\nendpoint_url = "http://127.0.0.1:9"\n'
           'ledger = "planted.db"\nremote = "s3://someone-elses-bucket/ledger"\nrole_arn = "arn:aws:iam::1:role/x"\n')


def test_a_config_in_a_parent_directory_redirects_nothing(aws_env, git_repo, tmp_path, run_cli):
    """A .runlog.toml above the repository (a shared parent directory) is not read: it cannot
    choose the output location, the endpoint, the ledger or the team remote."""
    (tmp_path / ".runlog.toml").write_text(PLANTED)  # tmp_path is the repository's parent
    args = ("submit", "--workflow-id", "1234567", "--parameters", "file://workflow-inputs.json")
    missing = run_cli(*args, "--role-arn", ROLE)
    assert missing.exit_code == 2 and "--output-uri" in missing.stderr
    result = run_cli(*args, "--role-arn", ROLE, "--output-uri", "s3://mine/runs/")
    assert result.exit_code == 0, result.output
    ledger = git_repo / ".runlog" / "ledger.db"
    with Ledger.open(ledger, create=False) as opened:
        (record,) = [e.record for e in opened.entries()]
    assert record["request"]["outputUri"] == "s3://mine/runs/"
    assert record["aws"]["endpoint_url"] == aws_env.endpoint_url
    assert not (tmp_path / "planted.db").exists()
    push = run_cli("push")
    assert push.exit_code == 2 and "no remote" in push.stderr


def test_a_subdirectory_reads_the_repository_root_config_only(git_repo, tmp_path):
    sub = git_repo / "pipelines" / "wgs"
    sub.mkdir(parents=True)
    (git_repo / ".runlog.toml").write_text('region = "eu-west-1"\n')
    (sub / ".runlog.toml").write_text('region = "ap-south-1"\n')  # not the root: ignored
    (tmp_path / ".runlog.toml").write_text('profile = "planted"\n')
    cfg = config.load(cwd=sub)
    assert cfg.get("region") == "eu-west-1" and cfg.get("profile") is None
    assert cfg.sources["region"] == str(git_repo.resolve() / ".runlog.toml")


def test_outside_a_repository_only_the_current_directory_counts(tmp_path):
    here = tmp_path / "work" / "here"
    here.mkdir(parents=True)
    (tmp_path / "work" / ".runlog.toml").write_text('region = "eu-west-1"\n')
    assert config.load(cwd=here).get("region") is None
    (here / ".runlog.toml").write_text('region = "eu-west-2"\n')
    assert config.load(cwd=here).get("region") == "eu-west-2"


def test_the_configured_repository_chooses_the_project_file(git_repo, tmp_path, monkeypatch):
    (git_repo / ".runlog.toml").write_text('region = "eu-west-1"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.setenv("RUNLOG_GIT_REPO", str(git_repo / "pipelines"))
    assert config.load(cwd=elsewhere).get("region") == "eu-west-1"


@pytest.mark.parametrize("mode, fix", [(0o666, "chmod o-w"), (0o646, "chmod o-w"), (0o664, "chmod g-w")])
def test_a_config_others_can_write_is_refused(git_repo, run_cli, mode, fix, monkeypatch):
    if mode & 0o020:  # group-writable is fine through your own private group: use a shared one
        import grp

        shared = next((g for g in grp.getgrall() if g.gr_gid != os.getegid() and g.gr_name != "root"), None)
        if shared is None or os.geteuid() != 0 and shared.gr_gid not in os.getgroups():
            pytest.skip("no group to give the file to")
    path = git_repo / ".runlog.toml"
    path.write_text('region = "eu-west-1"\n')
    if mode & 0o020:
        os.chown(path, -1, shared.gr_gid)
    os.chmod(path, mode)
    result = run_cli("log")
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("runlog: error: refusing ") and str(path) in line and fix in line


def test_the_user_config_is_checked_too(tmp_path, run_cli, monkeypatch):
    user = config.user_config_path()
    user.parent.mkdir(parents=True)
    user.write_text('region = "eu-west-1"\n')
    os.chmod(user, 0o666)
    monkeypatch.chdir(tmp_path)
    result = run_cli("log")
    assert result.exit_code == 2 and f"refusing {user}" in result.stderr and "chmod o-w" in result.stderr


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="making a file another user's needs root")
def test_a_config_owned_by_another_user_is_refused(git_repo, run_cli):
    path = git_repo / ".runlog.toml"
    path.write_text('endpoint_url = "http://127.0.0.1:9"\n')
    os.chown(path, 65534, 65534)
    result = run_cli("log")
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert f"refusing {path}" in line and "not by you" in line and "chown" in line


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="making a file another user's needs root")
def test_a_stranger_git_directory_does_not_make_a_repository(tmp_path, monkeypatch):
    """A `.git` planted in a shared directory by another user does not make that directory
    the analysis repository: neither its .runlog.toml nor a ledger there is used."""
    shared = tmp_path / "shared"
    (shared / ".git").mkdir(parents=True)
    os.chown(shared / ".git", 65534, 65534)
    here = shared / "mine"
    here.mkdir()
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert config.load(cwd=here).ledger_path() == tmp_path / "data" / "runlog" / "ledger.db"


def test_a_config_that_is_not_utf8_is_one_line_exit_2(git_repo, run_proc):
    (git_repo / ".runlog.toml").write_bytes(b'region = "eu-west-1"\n# caf\xe9\n')
    result = run_proc("log", cwd=git_repo)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [f"runlog: error: cannot read {git_repo / '.runlog.toml'}: not UTF-8 text "
                                          "(byte 0xe9 on line 2); save it as UTF-8"]



def test_runlog_tags_merge_per_key_with_the_config_files(aws_env, ledger_path, git_repo, run_cli, monkeypatch):
    """RUNLOG_TAGS adds to the project's tags per key, as --tags does, instead of replacing them."""
    import json

    from helpers import SEED_2, records

    (git_repo / ".runlog.toml").write_text('[tags]\nproject = "wgs"\nowner = "lab"\n')
    monkeypatch.setenv("RUNLOG_TAGS", "owner=alice,cohort=c1")
    result = run_cli(*SEED_2, "--tags", "cohort=c2")
    assert result.exit_code == 0, result.output
    (record,) = records(ledger_path)
    tags = {k: v for k, v in record["request"]["tags"].items() if not k.startswith("runlog:")}
    assert tags == {"project": "wgs", "owner": "alice", "cohort": "c2"}
    assert json.loads(result.stdout)["id"]


def test_configured_endpoints_ignored_as_botocore_ignores_them(monkeypatch):
    """AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true: botocore uses AWS's own endpoint despite
    AWS_ENDPOINT_URL, so runlog records none and keeps host prefixes on, with a session or
    without one."""
    import botocore.session

    from runlog import aws

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    assert aws.custom_endpoint("omics") == "http://127.0.0.1:4566"
    monkeypatch.setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")
    session = aws.Session(botocore.session.Session())
    assert aws.configured_endpoint(session, "omics") is None  # botocore's answer
    assert aws.custom_endpoint("omics") is None and aws.custom_endpoint("omics", sess=session) is None
    assert aws.custom_endpoint("omics", "http://127.0.0.1:9") == "http://127.0.0.1:9"  # a flag is still taken
