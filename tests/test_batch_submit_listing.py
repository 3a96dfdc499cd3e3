"""submit-batch's input identities, listed in key ranges several at once (runlog.bulklist):
the same identities as one serial listing and as one HeadObject each; a listing that fails
midway, or a budget spent midway, leaves the keys not seen unresolved and says why; seen
from the CLI, an input bucket that cannot be listed is recorded as such and the batch is
still sent."""

from __future__ import annotations

import json
import time

import pytest

from runlog import bulklist
from runlog.ledger import Ledger
from runlog.resolve import s3_identity

BUCKET = "cohort-bucket"
ROLE = "arn:aws:iam::123456789012:role/HealthOmicsServiceRole"


def put(s3, keys: list[str]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    s3.create_bucket(Bucket=BUCKET)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda key: s3.put_object(Bucket=BUCKET, Key=key, Body=key.encode() * (len(key) % 7)), keys))


@pytest.fixture
def pages_of_100(monkeypatch):
    """moto's S3 answers 100 keys a ListObjectsV2 page (S3's is 1 000): listings of a few
    hundred objects take several pages."""
    monkeypatch.setenv("MOTO_S3_DEFAULT_MAX_KEYS", "100")


def uri(key: str) -> str:
    return f"s3://{BUCKET}/{key}"


def listings(s3) -> list[dict]:
    """The parameters of every ListObjectsV2 call the client makes from now on."""
    calls: list[dict] = []
    s3.meta.events.register("provide-client-params.s3.ListObjectsV2",
                            lambda params, **kwargs: calls.append(dict(params)))
    return calls


class ErrorBody:
    """A raw HTTP body for botocore's AWSResponse."""

    def __init__(self, body: bytes):
        self.body = body

    def stream(self, **kwargs):
        yield self.body


def refuse_pages(s3, when) -> None:
    """S3 answers 403 AccessDenied to the ListObjectsV2 requests whose URL `when` accepts (as
    a bucket policy denying part of a listing would), before they reach moto."""
    from botocore.awsrequest import AWSResponse

    body = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
            b"<Message>Access Denied</Message></Error>")

    def answer(request, **kwargs):
        if when(request.url):
            return AWSResponse(request.url, 403, {"Content-Type": "application/xml"}, ErrorBody(body))
        return None

    s3.meta.events.register("before-send.s3.ListObjectsV2", answer)


def test_ranges_listed_at_once_give_what_one_serial_listing_and_one_head_each_give(s3_server, pages_of_100):
    crams = [f"crams/S{i:05d}.cram" for i in range(1200)]
    put(s3_server, crams + [f"crams/S{i:05d}.crai" for i in range(0, 1200, 13)] + ["ref/g.fa", "ref/g.fa.fai",
                                                                                    "qc/a.txt", "qc/b.txt"])
    wanted = ([uri(k) for k in crams[::3]] + [uri("crams/S00100x.cram"), uri("crams/A.cram"), uri("crams/zz.cram")]
              + [uri("ref/g.fa"), uri("ref/g.fa.fai"), uri("ref/missing.fa"), uri("qc/a.txt"), f"s3://{BUCKET}/qc/"])
    deadline = time.monotonic() + 120
    calls = listings(s3_server)
    at_once = bulklist.bulk_s3_identities(s3_server, wanted, deadline=deadline, jobs=4, page=50)
    ranged = [call["Prefix"] for call in calls if call["Prefix"].startswith("crams/")
              and "ContinuationToken" not in call]  # a range's first page
    assert len(ranged) == 1 + 9  # one page of the whole directory (more follow), then 403 wanted keys in ranges of 50
    assert len([call for call in calls if "ContinuationToken" in call]) >= 1  # a range of two pages
    # but for the first page of the whole directory and the first and last ranges (crams/A.cram,
    # crams/zz.cram), each is listed under a
    # narrower prefix than the directory's
    assert ranged.count("crams/") <= 3 and all(p.startswith("crams/S0") for p in ranged if p != "crams/")
    serial = bulklist.bulk_s3_identities(s3_server, wanted, deadline=deadline, jobs=1, page=10 ** 6)
    assert at_once == serial
    assert list(at_once) == wanted
    missing = {uri("crams/S00100x.cram"), uri("crams/A.cram"), uri("crams/zz.cram"), uri("ref/missing.fa")}
    for name, identity in at_once.items():
        if name in missing:
            assert identity["error"]["code"] == "NotFound", name
        elif name.endswith("/"):
            assert identity["kind"] == "s3-prefix" and identity["objects"] == 2
        else:
            assert "error" not in identity and identity["etag"], name
    for name in wanted[:400:40] + [uri("ref/g.fa"), uri("qc/a.txt")]:
        head = s3_identity(s3_server, name)
        assert at_once[name] == {k: head[k] for k in ("kind", "etag", "size", "last_modified")}, name


def test_a_listing_that_fails_midway_leaves_the_keys_it_had_not_seen_unresolved(s3_server, pages_of_100):
    crams = [f"crams/S{i:05d}.cram" for i in range(250)]
    bams = [f"bams/S{i:05d}.bam" for i in range(120)]
    put(s3_server, crams + bams)
    wanted = [uri(k) for k in crams + bams]
    # the crams are one range of three pages; its second page is refused
    refuse_pages(s3_server, lambda url: "continuation-token" in url and "prefix=crams" in url)
    found = bulklist.bulk_s3_identities(s3_server, wanted, deadline=time.monotonic() + 120, jobs=4, page=3000)
    first_page = [uri(k) for k in crams[:100]]
    assert all("error" not in found[name] and found[name]["etag"] for name in first_page)
    for name in wanted[100:250]:
        assert found[name]["error"] == {"code": "AccessDenied", "message": "Access Denied"}, name
    assert all("error" not in found[uri(k)] for k in bams)  # another directory's listing is not affected


def test_a_budget_spent_midway_keeps_what_was_listed_and_says_timeout_for_the_rest(s3_server, pages_of_100):
    crams = [f"crams/S{i:05d}.cram" for i in range(250)]
    put(s3_server, crams + ["ref/g.fa"])
    wanted = [uri(k) for k in crams] + [uri("ref/g.fa")]
    started = time.monotonic()

    def slow(request, **kwargs):  # the second page answers after the budget is spent
        if "continuation-token" in request.url:
            time.sleep(max(0.0, started + 3.0 - time.monotonic()))

    s3_server.meta.events.register("before-send.s3.ListObjectsV2", slow)
    found = bulklist.bulk_s3_identities(s3_server, wanted, deadline=started + 2.0, jobs=2, page=3000)
    assert all("error" not in found[name] for name in wanted[:100])  # the first page, read in time
    assert {found[name]["error"]["code"] for name in wanted[100:250]} == {"Timeout"}
    assert "error" not in found[uri("ref/g.fa")]


# -- seen from the CLI ------------------------------------------------------------------------------

def test_inputs_in_a_bucket_that_cannot_be_listed_are_recorded_as_such_and_the_batch_is_sent(
        s3_server, s3_emulator, ledger_path, git_repo, run_cli):
    samples = [f"S{i:04d}" for i in range(450)]
    put(s3_server, [f"crams/{s}.cram" for s in samples[:300]] + ["ref/genome.dict", "ref/genome.fasta",
                                                                  "ref/genome.fasta.fai"])
    settings = [{"runSettingId": s, "parameters": {"sample_name": s, "input_cram": uri(f"crams/{s}.cram")}}
                for s in samples[:300]]
    settings += [{"runSettingId": s, "parameters": {"sample_name": s, "input_cram": f"s3://no-such-bucket/{s}.cram"}}
                 for s in samples[300:]]
    s3_server.put_object(Bucket=BUCKET, Key="cohort/settings.json", Body=json.dumps(settings).encode())
    default = {"workflowId": "1234567", "roleArn": ROLE, "outputUri": uri("out/"),
               "parameters": {"ref_dict": uri("ref/genome.dict"), "ref_fasta": uri("ref/genome.fasta"),
                              "ref_fasta_index": uri("ref/genome.fasta.fai")}}
    result = run_cli("submit-batch", "--default-run-setting", json.dumps(default), "--batch-run-settings",
                     json.dumps({"s3UriSettings": uri("cohort/settings.json")}), "--resolve-timeout", "60")
    assert result.exit_code == 0, result.output
    warning = [line for line in result.stderr.splitlines() if "not resolved" in line]
    assert len(warning) == 1
    assert "150 input(s) not resolved: s3://no-such-bucket/S0300.cram (NoSuchBucket)" in warning[0]
    assert "recorded as such" in warning[0]
    with Ledger.open(ledger_path, create=False) as ledger:
        (record,) = [e.record for e in ledger.entries() if e.kind == "batch"]
    inputs = record["resolution"]["inputs"]
    assert len(inputs) == 453
    assert {inputs[f"s3://no-such-bucket/{s}.cram"]["error"]["code"] for s in samples[300:]} == {"NoSuchBucket"}
    assert all(inputs[uri(f"crams/{s}.cram")]["etag"] for s in samples[:300])
    assert record["outcome"]["status"] == "submitted"
    assert run_cli("verify").exit_code == 0


@pytest.mark.parametrize("keys,size", [
    (["d/a1", "d/a2", "d/b"], 2), (["d/x"], 1000), ([f"d/{i:04d}" for i in range(2500)], 1000)])
def test_ranges_cover_every_key_once_under_a_prefix_they_all_share(keys, size):
    cut = bulklist.ranges("d/", keys, size)
    assert [k for _, _, chunk in cut for k in chunk] == keys
    for prefix, start_after, chunk in cut:
        assert all(k.startswith(prefix) and k > start_after for k in chunk)
        assert prefix.startswith("d/")


@pytest.mark.parametrize("present", [0, 40])
def test_a_directory_one_page_lists_whole_takes_one_call_and_no_ranges(s3_server, present):
    """A cohort whose inputs are not uploaded yet (or few of them): one ListObjectsV2 answers
    for all its keys (NotFound for those it does not hold), where ranges would make a call each."""
    crams = [f"crams/S{i:05d}.cram" for i in range(3000)]
    put(s3_server, crams[:present] + ["crams/other.txt"])
    calls = listings(s3_server)
    found = bulklist.bulk_s3_identities(s3_server, [uri(k) for k in crams], deadline=time.monotonic() + 120,
                                        page=1000)
    assert len(calls) == 1
    assert list(found) == [uri(k) for k in crams]
    for key in crams[:present]:
        assert found[uri(key)]["etag"] == s3_identity(s3_server, uri(key))["etag"]
    assert all(found[uri(key)]["error"]["code"] == "NotFound" for key in crams[present:])
