"""Bad input is exit 2 with one line naming the bad value, never exit 70 ("internal error"),
and nothing is sent or written: the CLI against the emulator over HTTP, real ledger files."""

from __future__ import annotations

import json

import pytest

from runlog.ledger import Ledger

ROLE = "arn:aws:iam::123456789012:role/HealthOmicsServiceRole"
BASE = ["submit", "--workflow-id", "1234567", "--workflow-owner-id", "123456789012", "--role-arn", ROLE,
        "--output-uri", "s3://your-bucket/results/"]
GOOD_PARAMETERS = '{"param1": "value1", "param2": "value2"}'
DEEP = '{"param1": ' + "[" * 100_000 + "]" * 100_000 + ', "param2": "v"}'


def start_runs(emulator) -> list[dict]:
    return [r for r in emulator.requests if r["operation"] == "StartRun"]


def attempts(ledger_path) -> int:
    if not ledger_path.exists():
        return 0
    with Ledger.open(ledger_path, create=False) as ledger:
        return ledger.conn.execute("SELECT count(*) FROM attempts").fetchone()[0]


def assert_refused(result, emulator, ledger_path, *words, attempts_before: int = 0):
    """Exit 2, exactly one line on stderr, naming `words`; no StartRun, no new attempt."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("runlog: error: "), result.stderr
    assert "internal error" not in lines[0] and "Traceback" not in result.output
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert start_runs(emulator) == []
    assert attempts(ledger_path) == attempts_before
    assert result.stdout == ""


BAD_PARAMETERS = [
    ('{"param1": 1e999, "param2": "v"}', ["parameter param1", "1e999", "range"]),
    ('{"param1": -1e400, "param2": "v"}', ["parameter param1", "range"]),
    ('{"param1": NaN, "param2": "v"}', ["parameter param1", "NaN"]),
    ('{"param1": [Infinity], "param2": "v"}', ["parameter param1[0]", "Infinity"]),
    ('{"param1": ' + "7" * 5000 + ', "param2": "v"}', ["parameter param1", "5000 digits", "as a string"]),
    ('{"param1": ' + "9" * 400 + ', "param2": "v"}', ["parameter param1", "400 digits"]),
    ('{"param1": "\\ud800", "param2": "v"}', ["parameter param1", "surrogate"]),
    ('{"param1": {"x\\udfff": 1}, "param2": "v"}', ["parameter param1.x\\udfff", "surrogate"]),
    (DEEP, ["nested deeper than 32 levels"]),
    ('{"param1": ' + "[" * 40 + "]" * 40 + ', "param2": "v"}', ["parameter param1[0]", "nested deeper than 32"]),
]


@pytest.mark.parametrize("text,words", BAD_PARAMETERS,
                         ids=["1e999", "-1e400", "NaN", "Infinity", "5000-digits", "400-digits", "surrogate",
                              "surrogate-key", "100000-deep", "40-deep"])
def test_bad_parameter_values_inline(text, words, aws_env, ledger_path, git_repo, run_cli):
    result = run_cli(*BASE, "--parameters", text)
    assert_refused(result, aws_env, ledger_path, "--parameters", *words)
    assert not ledger_path.exists()


@pytest.mark.parametrize("text,words", BAD_PARAMETERS,
                         ids=["1e999", "-1e400", "NaN", "Infinity", "5000-digits", "400-digits", "surrogate",
                              "surrogate-key", "100000-deep", "40-deep"])
def test_bad_parameter_values_in_a_file(text, words, aws_env, ledger_path, git_repo, run_cli):
    (git_repo / "bad.json").write_text(text, encoding="utf-8")
    result = run_cli(*BASE, "--parameters", "file://bad.json")
    assert_refused(result, aws_env, ledger_path, "--parameters file://bad.json", *words)
    assert not ledger_path.exists()


def test_bad_values_in_cli_input_json_and_tags(aws_env, ledger_path, git_repo, run_cli):
    request = f'{{"workflowId": "1234567", "roleArn": "{ROLE}", "outputUri": "s3://b/o/", "priority": 1e999}}'
    assert_refused(run_cli("submit", "--cli-input-json", request), aws_env, ledger_path,
                   "--cli-input-json", "priority", "range")
    assert_refused(run_cli(*BASE, "--parameters", GOOD_PARAMETERS, "--tags", '{"a": NaN}'),
                   aws_env, ledger_path, "--tags", "NaN")


def test_the_largest_accepted_values_are_sent(aws_env, ledger_path, git_repo, run_cli):
    """The limits refuse only what is beyond them: 32 levels and a 309-digit integer below
    float's range are sent and recorded unchanged."""
    nested = "[" * 31 + '"x"' + "]" * 31
    big = "1" * 309
    text = f'{{"param1": {nested}, "param2": {big}}}'
    result = run_cli(*BASE, "--parameters", text, "--no-check")
    assert result.exit_code == 0, result.output
    (sent,) = start_runs(aws_env)
    assert sent["params"]["parameters"]["param2"] == int(big)
    with Ledger.open(ledger_path, create=False) as ledger:
        (entry,) = ledger.entries()
    assert entry.record["request"]["parameters"] == json.loads(text)


def test_parameters_file_of_unknown_user(aws_env, ledger_path, git_repo, run_cli):
    result = run_cli(*BASE, "--parameters", "file://~runlog-no-such-user/x.json")
    assert_refused(result, aws_env, ledger_path, "~runlog-no-such-user", "no such user")


def test_parameters_file_too_large_is_not_read_whole(aws_env, ledger_path, git_repo, run_cli):
    result = run_cli(*BASE, "--parameters", "file:///dev/zero")
    assert_refused(result, aws_env, ledger_path, "file:///dev/zero", "larger than 16 MiB")


def test_argument_that_is_not_utf8(aws_env, ledger_path, git_repo, run_proc):
    """Bytes that are not UTF-8 reach Python as lone surrogates (surrogateescape); a real
    process gets them from argv."""
    result = run_proc(*BASE, "--parameters", '{"param1": "\udcff", "param2": "v"}')
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "not valid UTF-8" in lines[0] and "\\udcff" in lines[0], result.stderr
    result = run_proc(*BASE, "--parameters", GOOD_PARAMETERS, "--name", "run-\udce9")
    assert result.returncode == 2 and "not valid UTF-8" in result.stderr, result.stderr
    assert start_runs(aws_env) == [] and not ledger_path.exists()


@pytest.mark.parametrize("option,value,words", [
    ("--region", "bad region!", ["invalid AWS region 'bad region!'", "--region"]),
    ("--region", "-us-east-1", ["invalid AWS region"]),
    ("--endpoint-url", "not a url", ["invalid endpoint URL 'not a url'", "--endpoint-url"]),
    ("--endpoint-url", "http://[::1", ["invalid endpoint URL 'http://[::1'", "IPv6"]),
    ("--endpoint-url", "http://127.0.0.1:99999", ["invalid endpoint URL", "Port out of range"]),
    ("--endpoint-url", "ftp://127.0.0.1/", ["https:// or http://"]),
    ("--endpoint-url", "http://host\x1b[2J/", ["\\x1b[2J", "control characters"]),
], ids=["region-space", "region-dash", "url-words", "url-ipv6", "url-port", "url-scheme", "url-escape"])
def test_bad_region_or_endpoint(option, value, words, aws_env, ledger_path, git_repo, run_cli):
    result = run_cli(*BASE, "--parameters", GOOD_PARAMETERS, option, value)
    assert_refused(result, aws_env, ledger_path, *words)
    assert "\x1b" not in result.stderr
    assert not ledger_path.exists()


@pytest.mark.parametrize("variable,value,words", [
    ("AWS_DEFAULT_REGION", "bad region!", ["invalid AWS region 'bad region!'", "AWS_DEFAULT_REGION"]),
    ("AWS_ENDPOINT_URL_OMICS", "http://[::1", ["invalid endpoint URL", "AWS_ENDPOINT_URL"]),
])
def test_bad_region_or_endpoint_from_the_environment(variable, value, words, aws_env, ledger_path, git_repo,
                                                     run_cli, monkeypatch):
    monkeypatch.setenv(variable, value)
    assert_refused(run_cli(*BASE, "--parameters", GOOD_PARAMETERS), aws_env, ledger_path, *words)


def test_bad_region_for_other_aws_commands(aws_env, ledger_path, git_repo, run_cli):
    assert run_cli(*BASE, "--parameters", GOOD_PARAMETERS).exit_code == 0
    for args in (["refresh", "--all"], ["import"], ["watch", "@1", "--timeout", "1"], ["recover"]):
        result = run_cli(*args, "--region", "bad region!")
        if args == ["recover"]:  # nothing pending: recover has nothing to send anywhere
            assert result.exit_code == 0, result.output
            continue
        assert result.exit_code == 2, (args, result.output)
        assert result.stderr.strip().splitlines() == [result.stderr.strip()]
        assert "invalid AWS region 'bad region!'" in result.stderr, (args, result.stderr)


def test_show_at_a_huge_number(aws_env, ledger_path, git_repo, run_cli):
    assert run_cli(*BASE, "--parameters", GOOD_PARAMETERS).exit_code == 0
    for ref in ("@99999999999999999999999", "@9223372036854775808", "@9223372036854775807"):
        result = run_cli("show", ref)
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith(f"runlog: error: no record matches '{ref}'"), result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert run_cli("show", "@1").exit_code == 0
    assert attempts(ledger_path) == 1


def test_log_with_a_huge_count(aws_env, ledger_path, git_repo, run_cli):
    assert run_cli(*BASE, "--parameters", GOOD_PARAMETERS).exit_code == 0
    result = run_cli("log", "-n", "99999999999999999999")
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == (
        "runlog: error: -n 99999999999999999999: too large (at most 4611686018427387904; -n 0 lists all records)")
    assert result.stdout == ""
    assert run_cli("log", "-n", "4611686018427387904").exit_code == 0  # the largest accepted lists all


def test_debug_keeps_the_exit_code(aws_env, ledger_path, git_repo, run_proc):
    plain = run_proc(*BASE, "--parameters", '{"param1": NaN}')
    debug = run_proc("--debug", *BASE, "--parameters", '{"param1": NaN}')
    assert plain.returncode == debug.returncode == 2, (plain.stderr, debug.stderr)
    assert "Traceback" not in plain.stderr and "Traceback (most recent call last)" in debug.stderr
    assert "runlog.errors.UsageError" in debug.stderr
    # the last line is still the one-line error
    assert debug.stderr.strip().splitlines()[-1] == plain.stderr.strip()
    assert start_runs(aws_env) == [] and not ledger_path.exists()


def test_debug_keeps_the_exit_code_of_a_service_refusal(aws_env, ledger_path, git_repo, run_proc):
    """A rejection is exit 1 with --debug too (a missing workflow parameter, sent with --no-check)."""
    debug = run_proc("--debug", *BASE, "--parameters", '{"param1": "v"}', "--no-check")
    assert debug.returncode == 1, debug.stderr
    assert "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.strip().splitlines()[-1].startswith("runlog: error: StartRun failed: ValidationException")


# -- found by tests/test_fuzz_cli.py ------------------------------------------------------------

@pytest.mark.parametrize("value", ["NaN", "1e999", '"\\ud800"', "9" * 5000], ids=["NaN", "1e999", "surrogate",
                                                                                "5000-digits"])
def test_replay_set_refuses_what_json_arguments_refuse(value, aws_env, ledger_path, git_repo, run_cli):
    assert run_cli(*BASE, "--parameters", GOOD_PARAMETERS).exit_code == 0
    result = run_cli("replay", "@1", "--set", f"param1={value}")
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and "--set param1" in result.stderr
    assert len(start_runs(aws_env)) == 1 and attempts(ledger_path) == 1


def test_watch_with_a_huge_interval(aws_env, ledger_path, git_repo, run_cli):
    assert run_cli(*BASE, "--parameters", GOOD_PARAMETERS).exit_code == 0
    result = run_cli("watch", "@1", "--interval", "1e308")
    assert result.exit_code == 2, result.output
    assert "internal error" not in result.stderr


def test_a_nul_in_a_configured_ledger_path_is_one_line(git_repo, run_cli):
    (git_repo / ".runlog.toml").write_text('ledger = "a\\u0000b.db"\n')
    result = run_cli("log")
    assert result.exit_code == 2
    assert "contains a NUL character" in result.stderr and len(result.stderr.strip().splitlines()) == 1
