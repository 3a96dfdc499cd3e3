"""How the command line words what the library says: the one place that knows which option
sets which argument and which command does what a Runlog method does.

Library messages (the exceptions of runlog.errors, and warnings) name what a Python caller
would change, in backticks: an argument or configuration key as `name` or `name=value`
(`region`, `force=True`, `check=False`), an action as a call of a runlog.Runlog method
(`recover()`, `refresh(['4207391'])`, `export('@1', runs_only=True)`), and a request member as boto3
names it (`defaultRunSetting`). The command line prints the same message with each of those
shown as its option or command (`--region`, `--force`, `--no-check`, `--default-run-setting`;
`runlog recover`, `runlog refresh 4207391`, `runlog export @1 --runs-only`); a name it does not know
is left as it is. (runlog.startrun's request checks are told how to spell members instead:
startrun.flag_for on the command line, startrun.member_name for Python.)"""

from __future__ import annotations

import re

# argument or configuration key -> the option that sets it
OPTIONS: dict[str, str] = {
    "batch": "--batch",
    "cli_input_json": "--cli-input-json",
    "endpoint_url": "--endpoint-url",
    "expect": "--expect",
    "license": "--license",
    "max_bytes": "--max-object-mib",
    "only": "--only",
    "path": "-o",
    "profile": "--profile",
    "region": "--region",
    "set": "--set",
    "settings_uri": "--settings-uri",
    "since": "--since",
    "tags": "--tags",
}

# (argument, value) -> the flag that gives it that value
FLAGS: dict[tuple[str, str], str] = {
    ("allow_drift", "True"): "--allow-drift",
    ("check", "False"): "--no-check",
    ("default_only", "True"): "--default-only",
    ("force", "True"): "--force",
    ("native", "True"): "--native",
    ("outputs", "True"): "--outputs",
    ("resolve", "False"): "--no-resolve",
    ("runs_only", "True"): "--runs-only",
    ("strict", "True"): "--strict",
}

# Runlog method -> the command (and options) that does the same
COMMANDS: dict[str, str] = {
    "abandon": "recover --abandon",
    "cancel": "cancel",
    "diff": "diff",
    "export": "export",
    "import_runs": "import",
    "log": "log",
    "pull": "pull",
    "push": "push",
    "recover": "recover",
    "refresh": "refresh",
    "replay": "replay",
    "show": "show",
    "verify": "verify",
    "watch": "watch",
}

_NAMED = re.compile(r"`([a-z_]+|[a-z]+(?:[A-Z][a-z0-9]*)+)(?:=([A-Za-z0-9_.]+))?`")
_MEMBER = re.compile(r"[a-z]+(?:[A-Z][a-z0-9]*)+")  # camelCase: a StartRun or StartRunBatch member
_CALLED = re.compile(r"`([a-z_]+)\(([^()`]*)\)`")
_ARGUMENT = re.compile(r"\s*(?:\[?'([^']*)'\]?|([a-z_]+)=([A-Za-z0-9_.]+))\s*")  # 'x', ['x'] or name=value


def command_line(message: str) -> str:
    """`message` as the command line prints it: the library's names of arguments and actions
    replaced by their options and commands."""
    if "`" not in message:
        return message
    return _NAMED.sub(_option, _CALLED.sub(_command, message))


def _option(match: re.Match[str]) -> str:
    name, value = match.group(1), match.group(2)
    if value is None and name in OPTIONS:
        return OPTIONS[name]
    if value is None and _MEMBER.fullmatch(name):
        from runlog.startrun import flag_for

        return flag_for(name)
    if value is not None and (name, value) in FLAGS:
        return FLAGS[(name, value)]
    if value is not None and name in OPTIONS:  # `only=failed`: the option given that value
        return f"`{OPTIONS[name]} {value}`"
    return match.group(0)


def _command(match: re.Match[str]) -> str:
    method, given = match.group(1), match.group(2)
    if method not in COMMANDS:
        return match.group(0)
    words = ["runlog", COMMANDS[method]]
    for part in filter(None, given.split(",")):
        argument = _ARGUMENT.fullmatch(part)
        if argument is None:
            return match.group(0)
        text, name, value = argument.groups()
        if text is not None:
            words.append(text)
        elif (name, value) in FLAGS:
            words.append(FLAGS[(name, value)])
        else:
            return match.group(0)
    return "`" + " ".join(words) + "`"
