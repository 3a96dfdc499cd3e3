"""PROV-JSON and PROV-N text of a prov.model.ProvDocument, as the prov package writes them,
at a cohort's size.

The prov package writes PROV-N record by record, escaping every qualified name's local part
character by character each time the name is written: a member run's identifier is written
about ten times (its activity, each `used`, its association, the batch's relations), and for
a 10 000-member batch that escaping was most of the export's time. Here each distinct
qualified name (and value) is rendered once by the prov package's own methods and reused,
and the records are laid out exactly as `ProvRecord.get_provn` and `ProvBundle.get_provn`
lay them out; a document this module does not cover (bundles, a default namespace, `xsi:`
names) is written by the prov package itself. PROV-JSON is the prov package's own encoding of
the document (`encode_json_document`), pretty-printed once (runlog.export.jsontext) instead of
written, parsed and written again. tests/test_export_batch_scale.py checks both against the
prov package's text."""

from __future__ import annotations

import datetime
from typing import Any


def prov_json_text(doc) -> str:
    """The PROV-JSON runlog writes: the prov package's encoding, keys sorted, indented by 2,
    ASCII (as `json.dumps(json.loads(doc.serialize(format="json")), indent=2, sort_keys=True)`)."""
    from prov.serializers.provjson import encode_json_document

    from runlog.export.jsontext import pretty

    return pretty(encode_json_document(doc), ensure_ascii=True) + "\n"


def provn_text(doc) -> str:
    """`doc.get_provn()`, the same text, each distinct name rendered once."""
    from prov.constants import PROV_N_MAP
    from prov.identifier import QualifiedName
    from prov.model import encoding_provn_value

    if list(doc.bundles) or doc.get_default_namespace() is not None:
        return doc.get_provn()
    bare: dict[Any, str] = {}
    shown: dict[Any, str] = {}

    def bare_name(name) -> str:
        text = bare.get(name)
        if text is None:
            text = bare[name] = name.provn_bare_representation()
        return text

    def value_text(value) -> str:
        if isinstance(value, QualifiedName):
            text = shown.get(value)
            if text is None:
                text = shown[value] = value.provn_representation()
            return text
        try:
            return value.provn_representation()
        except AttributeError:
            return encoding_provn_value(value)

    lines = []
    for record in doc.get_records():
        formal_names = record.FORMAL_ATTRIBUTES
        items = []
        relation_id = ""
        if record.identifier:
            identifier = bare_name(record.identifier)
            if record.is_element():
                items.append(identifier)
            else:
                relation_id = identifier + "; "
        for _, value in record.formal_attributes:
            if value is None:
                items.append("-")
            elif isinstance(value, datetime.datetime):
                items.append(_datetime_text(value))
            elif isinstance(value, QualifiedName):
                items.append(bare_name(value))
            else:
                items.append(str(value))
        extra = [f"{bare_name(name)}={value_text(value)}" for name, value in record.attributes
                 if name not in formal_names]
        if extra:
            items.append("[" + ", ".join(extra) + "]")
        lines.append(f"{PROV_N_MAP[record.get_type()]}({relation_id}{', '.join(items)})")
    if any("xsi:" in line for line in lines):
        return doc.get_provn()  # the prov package decides whether to declare xsi
    header = ["document"] + [f"prefix {ns.prefix} <{ns.uri}>" for ns in doc.get_registered_namespaces()]
    if len(header) > 1:
        header.append("")
    return "\n  ".join(header + lines) + "\n" + "endDocument"


def _datetime_text(value: datetime.datetime) -> str:
    """ISO 8601 with an xsd:dateTime-legal zone (prov's formal-attribute form of a time)."""
    offset = value.utcoffset()
    if offset is not None and (offset.total_seconds() % 60 or offset.microseconds):
        value = value.astimezone(datetime.UTC)
    return value.isoformat()
