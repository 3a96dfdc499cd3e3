"""Property-based: whatever JSON values a settings file's run settings carry in their
parameters (integers of any size, floats of every form, text of any code point, nested arrays
and objects), the cohort runlog records is the file's value exactly: `show B --json` gives it
back with every number of the same type and value (the canonical JSON of the two is the same
bytes), input URIs among them are resolved, its member records are made once its runs start,
and `verify` finds the ledger sound (the per-run digests, the blob, the record, the members
made from it). A
23-digit integer read as a float broke both before (tests/test_long_integers.py).

Bounded for CI: RUNLOG_FUZZ_EXAMPLES examples (default 12), no per-example deadline (a
submission takes a variable fraction of a second), no example database."""

from __future__ import annotations

import json
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import COHORT_DEFAULT, cohort_setting
from runlog import record as rec

EXAMPLES = int(os.environ.get("RUNLOG_FUZZ_EXAMPLES", "12"))
URI = "s3://cohort-bucket/cohort/settings.json"

scalars = st.one_of(
    st.integers(min_value=-(10 ** 30), max_value=10 ** 30),
    st.sampled_from([2 ** 63 - 1, 2 ** 63, 2 ** 64 - 1, 2 ** 64, -(2 ** 63) - 1, 10 ** 19]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e16, 1e-07, 5e-324, 1.7976931348623157e308, -0.0, 0.1, 1e22]),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=12),
    st.booleans(), st.none(),
    st.sampled_from(["s3://cohort-bucket/crams/S0.cram", "s3://cohort-bucket/crams/", "s3://no-such-bucket/k.bam",
                     "omics://123456789012.storage.us-west-2.amazonaws.com/5432/readSet/9876"]),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6)


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(values, min_size=1, max_size=4))
def test_a_cohort_is_recorded_as_the_file_holds_it(s3_emulator, s3_server, ledger_path, git_repo, run_cli, chosen):
    s3_server.create_bucket(Bucket="cohort-bucket")
    s3_emulator.batch_rate = 100
    settings_list = [cohort_setting(f"S{i}") for i in range(len(chosen))]
    for setting, value in zip(settings_list, chosen, strict=True):
        setting["parameters"]["sample_name"] = value
    body = json.dumps(settings_list, ensure_ascii=False).encode()
    s3_server.put_object(Bucket="cohort-bucket", Key="cohort/settings.json", Body=body)
    sent = run_cli("submit-batch", "--default-run-setting", json.dumps(COHORT_DEFAULT), "--batch-run-settings",
                   json.dumps({"s3UriSettings": URI}))
    assert sent.exit_code == 0, sent.output
    batch_id = json.loads(sent.stdout)["id"]
    s3_emulator.advance(200)  # its runs started: each member recorded with the settings it ran with
    refreshed = run_cli("refresh", batch_id)
    assert refreshed.exit_code == 0, refreshed.output
    shown = run_cli("show", batch_id, "--json")
    assert shown.exit_code == 0, shown.output
    content = json.loads(shown.stdout)["record"]["batch"]["settings_file"]["content"]
    assert rec.canonical_json(content) == rec.canonical_json(json.loads(body))
    verified = run_cli("verify")
    assert verified.exit_code == 0, verified.output
