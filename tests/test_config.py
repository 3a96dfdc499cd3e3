"""Configuration precedence: .runlog.toml < user config < RUNLOG_* < flags."""

from __future__ import annotations

import pytest

from runlog import config
from runlog.errors import UsageError


def test_precedence(tmp_path, monkeypatch):
    project = tmp_path / "proj"
    sub = project / "a" / "b"
    sub.mkdir(parents=True)
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
