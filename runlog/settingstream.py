"""A batch record's run settings read from its body a piece at a time (issue 14).

`runlog refresh BATCH` needs each member's own run setting. SQLite's json_each over the
record's body (27 MB at 100 000 runs) parses the whole body into memory first: 87 MiB at its
peak, for a copy of the settings that then waits on disk. Here the body is read in chunks
from the first setting on (its byte offset is in `batch_settings`, migration m009), each
setting is cut out where it lies by the json module (`raw_decode`: one value, its end) and
handed on with its digest and bucket (runlog/cohortindex.py), so that the caller can check
what was read against the record's index, bucket by bucket, before it is used. Memory: a
chunk and one setting. No SQL here (runlog/ledger.py reads the body and checks)."""

from __future__ import annotations

import codecs
import json
from collections.abc import Callable, Iterator

CHUNK = 1 << 20


class NotASettingsList(ValueError):
    """What was read is not a JSON list of run settings (objects with a text runSettingId)
    in canonical form from the offset given."""


def settings_from(read: Callable[[int], bytes], chunk: int = CHUNK) -> Iterator[tuple[str, str, int, str]]:
    """(runSettingId, the setting's JSON text as it lies in the body, its bucket, its digest)
    for each setting of the list whose first setting starts where `read` (bytes of the body,
    in order, b"" at its end) starts, up to the list's `]`. Raises NotASettingsList when the
    text is not such a list (a setting that is no object or has no text runSettingId, text
    between the settings other than one comma, no `]`)."""
    from runlog import cohortindex

    decoder = json.JSONDecoder()
    text_of = codecs.getincrementaldecoder("utf-8")()
    buffer, at, ended = "", 0, False

    def more() -> bool:
        nonlocal buffer, at, ended
        if ended:
            return False
        data = read(chunk)
        if not data:
            ended = True
            buffer = buffer[at:] + text_of.decode(b"", final=True)
        else:
            buffer = buffer[at:] + text_of.decode(data)
        at = 0
        return True

    more()
    while True:
        while True:  # one setting, read on until it is whole in the buffer
            try:
                value, end = decoder.raw_decode(buffer, at)
            except json.JSONDecodeError:
                if more():
                    continue
                raise NotASettingsList("a run setting that is not JSON") from None
            if end == len(buffer) and more():  # a number or text may go on in the next chunk
                continue
            break
        if type(value) is not dict or type(value.get("runSettingId")) is not str:
            raise NotASettingsList("a run setting that is no object with a text runSettingId")
        piece = buffer[at:end]
        setting_id = value["runSettingId"]
        try:
            data = piece.encode("utf-8")
            bucket = cohortindex.bucket_of(setting_id)
        except UnicodeEncodeError:  # a lone surrogate: in no canonical body
            raise NotASettingsList("a run setting that is not UTF-8") from None
        yield setting_id, piece, bucket, cohortindex.digest(data)
        at = end
        while at + 1 > len(buffer):
            if not more():
                raise NotASettingsList("the list of run settings does not end")
        if buffer[at] == "]":
            return
        if buffer[at] != ",":
            raise NotASettingsList("text between two run settings")
        at += 1
        while at + 1 > len(buffer):
            if not more():
                raise NotASettingsList("the list of run settings does not end")
