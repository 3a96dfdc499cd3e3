"""--parameters-uri: the S3 object is the run's parameters, so it is pinned like an input and
its content recorded: diff shows changes inside it, replay refuses when it changed."""

from __future__ import annotations

import json

from helpers import PARAMS_BUCKET as BUCKET
from helpers import PARAMS_URI_SUBMIT as BASE
from helpers import put_parameters as put
from helpers import records


def test_parameters_file_is_pinned_checked_diffed_and_guarded(aws_env, s3_server, ledger_path, git_repo, run_cli):
    s3_server.create_bucket(Bucket=BUCKET)
    s3_server.put_object(Bucket=BUCKET, Key="in/sample.txt", Body=b"reads")
    put(s3_server, {"param1": f"s3://{BUCKET}/in/sample.txt", "param2": "v1"})

    first = run_cli(*BASE)
    assert first.exit_code == 0, first.output
    (record,) = records(ledger_path)
    pinned = record["resolution"]["parameters_file"]
    assert pinned["content"] == {"param1": f"s3://{BUCKET}/in/sample.txt", "param2": "v1"}
    assert pinned["etag"] and pinned["size"] > 0 and len(pinned["sha256"]) == 64
    assert f"s3://{BUCKET}/in/sample.txt" in record["resolution"]["inputs"], "inputs inside the file are pinned"
    assert record["resolution"]["template_checked"] is True

    put(s3_server, {"param1": f"s3://{BUCKET}/in/sample.txt", "param2": "v2"})
    second = run_cli(*BASE)
    assert second.exit_code == 0, second.output
    diff = run_cli("diff", "@2", "@1", "--json")
    changes = json.dumps(json.loads(diff.stdout))
    assert "param2" in changes and "v1" in changes and "v2" in changes
    assert run_cli("diff", "@2", "@1", "--exit-code").exit_code == 1

    replay = run_cli("replay", "@2")
    assert replay.exit_code == 3, replay.output
    assert "parameters file" in replay.stderr

    put(s3_server, {"param1": "x", "param2": "y", "not_a_parameter": 1})
    bad = run_cli(*BASE)
    assert bad.exit_code == 2
    assert f"s3://{BUCKET}/run/params.json" in bad.stderr and "not_a_parameter" in bad.stderr


def test_parameters_and_parameters_uri_together_are_refused(aws_env, s3_server, ledger_path, git_repo, run_cli):
    s3_server.create_bucket(Bucket=BUCKET)
    put(s3_server, {"param1": "a", "param2": "b"})
    result = run_cli(*BASE, "--parameters", '{"param1": "a", "param2": "b"}')
    assert result.exit_code == 2, result.output
    assert "--parameters-uri" in result.stderr and "not both" in result.stderr
    assert not ledger_path.exists() or records(ledger_path) == []
    assert not [r for r in aws_env.requests if r["operation"] == "StartRun"]
