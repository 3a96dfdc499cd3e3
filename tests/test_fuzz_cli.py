"""Property-based: generated option values thrown at every command never make an internal
error (exit 70) or a traceback. Values: text with control characters, lone surrogates (what
Python makes of argv bytes that are not UTF-8), huge and odd numbers, odd JSON, odd refs and
file:// paths. Each command gets a copy of a small real ledger (two completed runs) and the
emulator over HTTP; push and pull get moto's S3. `demo` and `emulator` are left out (they
serve or run a whole session); `--ledger` is fuzzed elsewhere.

Bounded for CI: a fixed number of examples per command, no per-example deadline (a submit
takes a variable fraction of a second), and no example database."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import string

import click
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runlog.cli import COMMANDS, cli

ROLE = "arn:aws:iam::123456789012:role/HealthOmicsServiceRole"
SHARED = ["submit", "--workflow-id", "1234567", "--workflow-owner-id", "123456789012", "--role-arn", ROLE,
          "--output-uri", "s3://your-bucket/results/", "--parameters", '{"param1": "value1", "param2": "value2"}']
BUCKET = "fuzz-team-bucket"
SKIPPED = {"demo", "emulator"}
# Arguments that make a command go deep (a valid request, a record) before fuzzed options
# override or add to them; each example starts from one of these or from nothing.
BASES = {
    "submit": [SHARED[1:]],
    "replay": [["@1"], ["@2", "--dry-run"]],
    "export": [["@1", "--license", "CC-BY-4.0", "-o", "exp-base"]],
    "diff": [["@1", "@2"]],
    "show": [["@1"]],
    "watch": [["@1"]],
    "refresh": [["--all"]],
    "push": [[f"s3://{BUCKET}/team/"]],
    "pull": [[f"s3://{BUCKET}/team/"]],
}
EXAMPLES = int(os.environ.get("RUNLOG_FUZZ_EXAMPLES", "25"))

# -- values ---------------------------------------------------------------------------------

# Everything a shell can pass: any character but NUL, control characters included.
plain_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)
# Bytes that are not UTF-8 arrive as U+DC80..U+DCFF (surrogateescape).
not_utf8 = st.builds(lambda a, s, b: a + s + b, plain_text,
                     st.text(st.characters(min_codepoint=0xDC80, max_codepoint=0xDCFF), min_size=1, max_size=3),
                     plain_text)
numbers = st.one_of(
    st.integers(min_value=-10**40, max_value=10**40).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["1e999", "-1e999", "NaN", "nan", "inf", "-0", "0x10", "1_000", "9" * 5000, "4.5",
                     "99999999999999999999", "-99999999999999999999", "", " ", "٣"]),
)
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(min_value=-10**30, max_value=10**30),
                      st.floats(allow_nan=False, allow_infinity=False), plain_text)
json_value = st.recursive(json_leaf, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                             st.dictionaries(plain_text, inner, max_size=4)),
                          max_leaves=12)
odd_json = st.one_of(
    json_value.map(lambda v: json.dumps(v, ensure_ascii=False)),
    st.sampled_from([
        '{"a": NaN}', '{"a": Infinity}', '{"a": 1e999}', '{"a": ' + "9" * 5000 + "}", '{"a": "\\ud800"}',
        '{"\\udc00": 1}', "[" * 5000 + "]" * 5000, '{"a":' + "[" * 100_000 + "]" * 100_000 + "}", "{", '{"a": 1,}',
        "null", "[]", "{}", '"x"', '{"tags": ["a"]}', '{"workflowId": 1}', '{"priority": "1"}', '{"parameters": []}',
        '{"a": "\\u0000"}', "\ufeff{}", '{"a":1,"a":2}',
    ]),
)
refs = st.one_of(
    st.sampled_from(["@1", "@2", "@0", "@-1", "@99999999999999999999999", "@9223372036854775808", "abcdef",
                     "1234567", "3282892", "arn:aws:omics:us-west-2:123456789012:run/1", "@", "-", "--", "",
                     "00000000-0000-4000-8000-000000000000"]),
    st.integers(min_value=0, max_value=10**30).map(lambda n: f"@{n}"),
    st.from_regex(r"[0-9a-f]{1,64}", fullmatch=True),
)
file_args = st.one_of(
    st.sampled_from(["file://", "file:///dev/null", "file:///dev/zero", "file://~nouser/x", "file:///etc",
                     "file://missing.json", "file://.", "file://bad.json", "file://deep.json", "file://nan.json",
                     "file://latin1.json"]),
    plain_text.map(lambda t: "file://" + t),
)
urls = st.one_of(
    st.sampled_from(["not a url", "http://[::1", "http://127.0.0.1:99999", "ftp://x", "http://", "http://:80",
                     "http://127.0.0.1:1", "http://a_b", "http://[::1]:1", "https://x\x1b[2J", "s3://x"]),
    plain_text.map(lambda t: "http://" + t),
)
regions = st.one_of(st.sampled_from(["bad region!", "us-west-2", "-x", "1", "x" * 100, "eu-west-1"]), plain_text)
anything = st.one_of(plain_text, numbers, odd_json, refs, file_args, urls, regions)

# Options whose value must stay within the test's sandbox (export --force replaces its target).
safe_name = st.text(st.sampled_from(string.ascii_letters + string.digits + " -_.\t\x1b€"), max_size=12)
SANDBOXED = {"-o": safe_name.map(lambda t: "exp-" + t)}
# Options that would make one example wait: given small values only.
BOUNDED = {"--interval": st.sampled_from(["0.01", "0", "-1", "1e999", "nan", "x"]),
           "--timeout": st.sampled_from(["0.2", "0", "-1", "1e999", "nan", "x"]),
           "--resolve-timeout": st.sampled_from(["0.2", "0", "-1", "1e999", "nan", "x", "0.05"])}
SPECIFIC = {
    "--parameters": st.one_of(odd_json, file_args, anything), "--cli-input-json": st.one_of(odd_json, file_args),
    "--tags": st.one_of(odd_json, file_args, plain_text, st.just("a=b,c"), st.just("=")),
    "--endpoint-url": urls, "--region": regions, "--priority": numbers, "--storage-capacity": numbers,
    "--jobs": numbers, "-n": numbers, "--port": numbers, "--set": st.one_of(
        plain_text, st.builds(lambda k, v: f"{k}={v}", st.sampled_from(["param1", "param1.x", "a[0]", "", "."]),
                              st.one_of(odd_json, numbers, plain_text))),
    "--same-as": refs, "--since": st.one_of(plain_text, st.sampled_from(["2026-11-01", "9999-99-99", "0000-01-01",
                                                                         "2026-11-01T09:00:00Z", "1e999"])),
    "--query": st.one_of(plain_text, st.sampled_from(["[[", "id", "`1`", "@", "a.b[0]"])),
}


def value_for(flag: str):
    if flag in SANDBOXED:
        return SANDBOXED[flag]
    if flag in BOUNDED:
        return BOUNDED[flag]
    return st.one_of(SPECIFIC[flag], anything) if flag in SPECIFIC else anything


def arguments_for(command: click.Command):
    """A strategy for one invocation: some options (flags bare, the rest with a value) and
    positional arguments, shuffled a little by hypothesis's choice of order."""
    options = [p for p in command.params if isinstance(p, click.Option) and not p.hidden]
    positionals = [p for p in command.params if isinstance(p, click.Argument)]

    focus = [p for p in options if p.opts[0] in SPECIFIC or p.opts[0] in BOUNDED] or options
    pick = st.one_of(st.sampled_from(focus), st.sampled_from(options)) if options else st.nothing()

    @st.composite
    def build(draw):
        base = draw(st.sampled_from([[], *BASES.get(command.name, [])]))
        chosen = draw(st.lists(pick, unique_by=lambda p: p.name, max_size=5)) if options else []
        args: list[str] = list(base)
        for option in chosen:
            flag = option.opts[0]
            if option.is_flag:
                args.append(flag)
            else:
                args += [flag, draw(value_for(flag))]
        for argument in positionals if not base else ():
            count = 1 if argument.nargs == 1 else draw(st.integers(min_value=0, max_value=2))
            if argument.nargs == 1 and not argument.required:
                count = draw(st.integers(min_value=0, max_value=1))
            for _ in range(count):
                args.append(draw(st.one_of(refs, anything) if argument.name != "remote" else
                                 st.one_of(st.just(f"s3://{BUCKET}/team/"), st.just("s3://"), anything)))
        if args and draw(st.integers(min_value=0, max_value=9)) == 0:  # now and then, bytes that are not UTF-8
            args[draw(st.integers(min_value=0, max_value=len(args) - 1))] = draw(not_utf8)
        if command.name == "watch" and "--timeout" not in args:
            args += ["--timeout", "0.5"]  # a fuzzed ref may name a run that never ends on a manual clock
        return args

    return build()




# -- the world each command is tried in -----------------------------------------------------

@pytest.fixture
def world(aws_env, git_repo, tmp_path, monkeypatch, request):
    """A ledger with two completed runs (kept as a template), files for file:// arguments, and
    moto's S3 with a bucket when the command talks to S3."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    template = tmp_path / "template" / "ledger.db"
    runner = CliRunner()
    env = {"RUNLOG_LEDGER": str(template)}
    for name in ("fuzz-1", "fuzz-2"):
        result = runner.invoke(cli, [*SHARED, "--name", name], env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
    aws_env.advance(30 * 24 * 3600)
    assert runner.invoke(cli, ["refresh", "--all"], env=env).exit_code == 0
    (git_repo / "bad.json").write_text("{not json")
    (git_repo / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (git_repo / "nan.json").write_text('{"param1": NaN, "param2": "v"}')
    (git_repo / "latin1.json").write_bytes('{"param1": "caf\u00e9"}'.encode("latin-1"))
    if request.node.callspec.params["name"] in ("push", "pull"):
        s3 = request.getfixturevalue("s3_server")
        s3.create_bucket(Bucket=BUCKET)
    counter = itertools.count()

    def invoke(args: list[str]):
        here = tmp_path / f"example-{next(counter)}"
        shutil.copytree(template.parent, here)
        try:
            return CliRunner().invoke(cli, args, env={"RUNLOG_LEDGER": str(here / "ledger.db")})
        finally:  # each example starts without the outputs of the last, so a failure replays the same
            for made in git_repo.glob("exp-*"):
                shutil.rmtree(made) if made.is_dir() and not made.is_symlink() else made.unlink()

    return invoke


@pytest.mark.parametrize("name", sorted(set(COMMANDS) - SKIPPED))
def test_generated_option_values_never_crash(name, world):
    command = cli.get_command(click.Context(cli), name)

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=False,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                     HealthCheck.data_too_large])
    @given(args=arguments_for(command))
    def never_crashes(args):
        result = world([name, *args])
        if os.environ.get("FUZZ_TRACE"):  # a file to append each example's outcome to, for tuning
            with open(os.environ["FUZZ_TRACE"], "a") as trace:
                trace.write(f"{name} {result.exit_code} {result.output.strip().splitlines()[-1:]!a}\n")
        shown = f"runlog {name} {args!a}\nexit {result.exit_code}\n{result.output[-2000:]}"
        assert result.exit_code != 70, shown
        assert "internal error" not in result.output, shown
        if "--debug" not in args:  # the aws CLI's --debug after the subcommand asks for tracebacks
            assert "Traceback" not in result.output, shown
        # an exception escaping click (exit 1 with no message) is a crash too
        assert result.exception is None or isinstance(result.exception, SystemExit), (shown, result.exception)

    never_crashes()
