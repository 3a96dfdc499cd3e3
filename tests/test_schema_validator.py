"""The compiled record schema: shipped in the package, never loaded from a cache directory."""

from __future__ import annotations

import os
import sys

from runlog import record as rec


def test_the_fast_validator_is_compiled_in_memory_from_the_packaged_schema():
    """No generated module, no cache: the schema file shipped in the package is the only input."""
    import jsonschema_rs

    rec.fast_validator.cache_clear()
    assert isinstance(rec.fast_validator(), jsonschema_rs.Draft202012Validator)
    package = rec.SCHEMA_PATH.parent.parent
    assert not list(package.glob("_record_validator*")), "a generated validator is back in the package"
    assert rec.SCHEMA_PATH.read_bytes() == (package.parent / "schema" / "record.schema.json").read_bytes()


def test_timestamps_take_ascii_digits_only():
    """`\\d` in a pattern means any Unicode digit to Python's re (jsonschema) and ASCII digits to
    ECMA-262 regexes (jsonschema-rs): the schema spells [0-9], and both validators agree."""
    from recordfactory import make_record

    record = make_record()
    assert rec.is_valid(record) and rec._validator().is_valid(record)
    record["created"] = "\u0662\u0660\u0662\u0666-11-25T10:00:00Z"  # Arabic-Indic digits
    assert not rec.is_valid(record)
    assert not rec._validator().is_valid(record)


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
    key = rec.sha256_hex(rec.SCHEMA_PATH.read_bytes() + f"|fastjsonschema 2.21.2|{sys.implementation.cache_tag}".encode())
    for name in (f"record-schema-{key[:16]}.marshal", "record-schema.marshal", "validator.py"):
        (cache / name).write_bytes(marshal.dumps(payload))
    before = sorted(os.listdir(cache))
    result = run_proc("verify", env={"XDG_CACHE_HOME": str(tmp_path / "cache"), "RUNLOG_LEDGER": str(ledger_path)})
    assert result.returncode == 0, result.stderr
    assert not sentinel.exists()
    assert sorted(os.listdir(cache)) == before  # nothing written to the cache either
