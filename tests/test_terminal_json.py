"""JSON printed by runlog holds no character a terminal acts on: a bidi override or a C1
control from a tag, parameter or service answer is written as JSON's \\uNNNN escape, so the
output reads back as the same value."""

from __future__ import annotations

import json

from helpers import BASE, NF

SNEAKY = "safe\u202eexe.txt\u0085\u2028end"  # a right-to-left override, NEL, a line separator


def _clean(text: str) -> None:
    for char in ("\u202e", "\u0085", "\u2028"):
        assert char not in text, f"{char!r} printed as is"


def test_json_output_escapes_bidi_and_c1_characters_and_reads_back(aws_env, ledger_path, git_repo, run_cli):
    params = {**BASE, "protocol": SNEAKY}
    submitted = run_cli(*NF, "--parameters", json.dumps(params), "--tags", json.dumps({"note": SNEAKY}),
                        "--endpoint-url", aws_env.endpoint_url)
    assert submitted.exit_code == 0, submitted.output
    _clean(submitted.stdout)
    assert json.loads(submitted.stdout)["tags"] == {"note": SNEAKY}  # the same value, escaped
    shown = run_cli("show", "@1")
    assert shown.exit_code == 0, shown.output
    _clean(shown.stdout)
    assert "\\u202e" in shown.stdout
    for args in (("show", "@1", "--json"), ("log", "--json")):
        result = run_cli(*args)
        assert result.exit_code == 0, result.output
        _clean(result.stdout)
    record = json.loads(run_cli("show", "@1", "--json").stdout)
    assert SNEAKY in json.dumps(record, ensure_ascii=False)
