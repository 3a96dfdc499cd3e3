"""The compiled record schema: shipped in the package, never loaded from a cache directory."""

from __future__ import annotations

import os
import sys

import fastjsonschema

from runlog import record as rec


def test_generated_validator_is_up_to_date():
    """runlog/_record_validator.py is generated from schema/record.schema.json; regenerate it
    with `python -m runlog.record` after editing the schema."""
    assert rec.generated_schema_digest() == rec.sha256_hex(rec.SCHEMA_PATH.read_bytes()), (
        "runlog/_record_validator.py is out of date with schema/record.schema.json: "
        "run `python -m runlog.record`")
    shipped = rec.GENERATED_VALIDATOR.read_text(encoding="utf-8")
    if f"# fastjsonschema: {fastjsonschema.VERSION}\n" in shipped:  # same generator: same text
        assert shipped == rec.generate_validator_source()


def test_validator_is_the_packaged_module():
    rec._fast_check.cache_clear()
    assert rec._fast_check().__module__ == "runlog._record_validator"


def test_malicious_cache_file_is_never_executed(tmp_path, ledger_path, run_proc):
    """Older versions exec'd $XDG_CACHE_HOME/runlog/record-schema-*.marshal, keyed by the schema's
    SHA-256: a code object planted under that name ran on every `runlog verify`."""
    import marshal

    from recordfactory import make_record
    from runlog.ledger import Ledger

    with Ledger.open(ledger_path) as ledger:
        ledger.add_record(make_record())
    sentinel = tmp_path / "pwned"
    payload = compile(f"open({str(sentinel)!r}, 'w').close()\ndef validate(data):\n    return data\n",
                      "<planted>", "exec")
    cache = tmp_path / "cache" / "runlog"
    cache.mkdir(parents=True)
    key = rec.sha256_hex(rec.SCHEMA_PATH.read_bytes()
                         + f"|fastjsonschema {fastjsonschema.VERSION}|{sys.implementation.cache_tag}".encode())
    for name in (f"record-schema-{key[:16]}.marshal", "record-schema.marshal", "validator.py"):
        (cache / name).write_bytes(marshal.dumps(payload))
    before = sorted(os.listdir(cache))
    result = run_proc("verify", env={"XDG_CACHE_HOME": str(tmp_path / "cache"), "RUNLOG_LEDGER": str(ledger_path)})
    assert result.returncode == 0, result.stderr
    assert not sentinel.exists()
    assert sorted(os.listdir(cache)) == before  # nothing written to the cache either
