"""runlog/settingstream.py and Ledger.file_run_settings (issue 14): a batch's run settings read
from its body a chunk at a time are the settings, byte for byte, wherever the chunks cut the
text; what is not a list of run settings is refused; and a ledger whose index of the settings
(batch_settings) does not match the body gets its settings the old way, the same."""

from __future__ import annotations

import io
import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import refreshed_cohort, tamper
from runlog import cohortindex
from runlog.ledger import Ledger
from runlog.settingstream import NotASettingsList, settings_from

_SETTING = st.fixed_dictionaries({"runSettingId": st.text(min_size=1, max_size=8)},
                                 optional={"name": st.text(max_size=20), "parameters": st.dictionaries(
                                     st.text(max_size=5), st.text(max_size=10) | st.integers() | st.floats(
                                         allow_nan=False, allow_infinity=False), max_size=3), "priority": st.integers()})


def _read(data: bytes):
    return io.BytesIO(data).read


@settings(max_examples=200, deadline=None)
@given(st.lists(_SETTING, min_size=1, max_size=8), st.sampled_from([1, 2, 3, 7, 64, 1 << 20]))
def test_each_setting_is_cut_out_as_it_lies_in_the_body_with_its_digest_and_bucket(listed, chunk):
    record = {"kind": "batch", "request": {"batchRunSettings": {"s3UriSettings": "s3://b/k"}},
              "batch": {"settings_file": {"content": listed}}}
    try:
        body = orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return
    ids = [s["runSettingId"] for s in listed]
    try:
        rows = cohortindex.setting_rows(record, body)
    except UnicodeEncodeError:
        rows = None
    if rows is None:  # lone surrogates: no index, and no canonical body either
        return
    spans = {run[0]: run for _, _, runs in rows for run in json.loads(runs)}
    start = min(run[3] for run in spans.values())
    found = list(settings_from(_read(body[start:] + b"}}}"), chunk))
    assert [row[0] for row in found] == ids[len(ids) - len(found):]  # from the first kept on
    last = {row[0]: row for row in found}
    assert set(last) == set(spans)
    for setting_id, (_, text, bucket, digest) in last.items():
        _, _, want_digest, at, length = spans[setting_id]
        assert text.encode("utf-8") == body[at:at + length] and digest == want_digest
        assert bucket == [b for b, _, runs in rows if setting_id in {r[0] for r in json.loads(runs)}][0]
        assert json.loads(text) == [s for s in listed if s["runSettingId"] == setting_id][-1]


@pytest.mark.parametrize("text", [b'{"runSettingId":"a"}', b'{"runSettingId":"a"},', b'{"runSettingId":"a"} ]',
                                  b'{"runSettingId":1}]', b'[1]]', b'"x"]', b'{"runSettingId":"a"};{}]',
                                  b'{"runSettingId":"a"', b'{"runSettingId":"\\ud800"}]'])
def test_what_is_not_a_list_of_run_settings_is_refused(text):
    with pytest.raises(NotASettingsList):
        list(settings_from(_read(text), 4))


def _settings_through_the_ledger(path, ids):
    with Ledger.open(path, create=False) as ledger:
        (address,) = [row[0] for row in ledger.conn.execute("SELECT address FROM records WHERE kind = 'batch'")]
        with ledger.file_run_settings(address) as lookup:
            found = lookup(ids)
            streamed = ledger.conn.execute("SELECT count(digest) FROM temp.runlog_file_run_settings").fetchone()[0]
    return found, streamed


def test_a_refresh_reads_the_settings_streamed_and_the_old_way_when_the_index_disagrees(
        s3_emulator, s3_server, ledger_path, git_repo, run_cli):
    samples = [f"S{i:03d}" for i in range(6)]
    refreshed_cohort(run_cli, s3_emulator, s3_server, samples)
    found, streamed = _settings_through_the_ledger(ledger_path, samples + ["nope"])
    assert streamed == len(samples)
    assert {k: json.loads(v) for k, v in found.items()} == {
        s: {"runSettingId": s, "name": f"align-{s}",
            "parameters": {"sample_name": s, "input_cram": f"s3://cohort-bucket/crams/{s}.cram"}} for s in samples}
    # an index whose offsets were moved by a byte: what is read is checked, refused, and read the old way
    # (the cohort is held by reference: its rows are its blob's, migration m013)
    tamper(ledger_path, "UPDATE blob_settings SET runs = (SELECT json_group_array(json_set(j.value, '$[3]', "
                        "json_extract(j.value, '$[3]') + 1)) FROM json_each(blob_settings.runs) j)")
    again, streamed = _settings_through_the_ledger(ledger_path, samples)
    assert streamed == 0 and again == {k: v for k, v in found.items()}
