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


class Records:
    """A PROV document as plain records, with the methods of prov.model.ProvDocument that
    runlog.export.prov uses and the same meaning: names are resolved against a real (empty)
    ProvDocument's namespaces, times are parsed and attribute values coerced as the prov
    package does, and the text written (prov_json_text, provn_text) is the prov package's for
    the same statements. A cohort's ~20 records a member cost the prov package's record
    objects (their validation, hashing and per-write escaping) most of an export's time."""

    def __init__(self) -> None:
        from prov.constants import PROV_ATTRIBUTE_LITERALS, PROV_ATTRIBUTE_QNAMES
        from prov.identifier import QualifiedName
        from prov.model import PROV_REC_CLS, ProvDocument, parse_xsd_datetime

        self.names = ProvDocument()
        self._formal_names = {kind: cls.FORMAL_ATTRIBUTES for kind, cls in PROV_REC_CLS.items()}
        self._qnames, self._literals = PROV_ATTRIBUTE_QNAMES, PROV_ATTRIBUTE_LITERALS
        self._qualified, self._parse_time = QualifiedName, parse_xsd_datetime
        # (type, identifier or None, formal [(name, value or None)], extra [(name, value)])
        self.records: list[tuple[Any, Any, list, list]] = []
        self._resolved: dict[Any, Any] = {}

    def add_namespace(self, prefix: str, uri: str):
        return self.names.add_namespace(prefix, uri)

    def _name(self, value):
        if isinstance(value, _Ref):
            return value.identifier
        found = self._resolved.get(value)
        if found is None:
            found = self._resolved[value] = self.names.mandatory_valid_qname(value)
        return found

    def _new(self, kind, identifier, formal_values: tuple, attributes) -> _Ref:
        formal: list[tuple[Any, Any]] = []
        for name, value in zip(self._formal_names[kind], formal_values, strict=False):
            if value is None:
                formal.append((name, None))
            elif name in self._qnames:
                formal.append((name, self._name(value)))
            elif name in self._literals:
                moment = self._parse_time(value) if isinstance(value, str) else value
                if not isinstance(moment, datetime.datetime):
                    raise ValueError(f"{value!r} is no time for {name}")
                formal.append((name, moment))
            else:
                raise ValueError(f"unexpected formal attribute {name}")
        extra = []
        for key, value in (attributes or {}).items():
            if value is None:
                continue
            if isinstance(value, _Ref):
                value = value.identifier
            elif isinstance(value, self._qualified):
                value = self.names.valid_qualified_name(value)
            elif not isinstance(value, (str, int)) or isinstance(value, bool):
                raise ValueError(f"unexpected PROV attribute value {value!r}")
            extra.append((self._name(key), value))
        ident = self._name(identifier) if identifier else None
        self.records.append((kind, ident, formal, extra))
        return _Ref(ident)

    def activity(self, identifier, startTime=None, endTime=None, other_attributes=None):
        from prov.constants import PROV_ACTIVITY

        return self._new(PROV_ACTIVITY, identifier, (startTime, endTime), other_attributes)

    def entity(self, identifier, other_attributes=None):
        from prov.constants import PROV_ENTITY

        return self._new(PROV_ENTITY, identifier, (), other_attributes)

    def agent(self, identifier, other_attributes=None):
        from prov.constants import PROV_AGENT

        return self._new(PROV_AGENT, identifier, (), other_attributes)

    def used(self, activity, entity=None, time=None, identifier=None, other_attributes=None):
        from prov.constants import PROV_USAGE

        return self._new(PROV_USAGE, identifier, (activity, entity, time), other_attributes)

    def wasGeneratedBy(self, entity, activity=None, time=None, identifier=None, other_attributes=None):
        from prov.constants import PROV_GENERATION

        return self._new(PROV_GENERATION, identifier, (entity, activity, time), other_attributes)

    def wasAssociatedWith(self, activity, agent=None, plan=None, identifier=None, other_attributes=None):
        from prov.constants import PROV_ASSOCIATION

        return self._new(PROV_ASSOCIATION, identifier, (activity, agent, plan), other_attributes)

    def actedOnBehalfOf(self, delegate, responsible, activity=None, identifier=None, other_attributes=None):
        from prov.constants import PROV_DELEGATION

        return self._new(PROV_DELEGATION, identifier, (delegate, responsible, activity), other_attributes)

    def wasDerivedFrom(self, generatedEntity, usedEntity, activity=None, generation=None, usage=None,
                       identifier=None, other_attributes=None):
        from prov.constants import PROV_DERIVATION

        return self._new(PROV_DERIVATION, identifier, (generatedEntity, usedEntity, activity, generation, usage),
                         other_attributes)

    def wasInformedBy(self, informed, informant, identifier=None, other_attributes=None):
        from prov.constants import PROV_COMMUNICATION

        return self._new(PROV_COMMUNICATION, identifier, (informed, informant), other_attributes)

    def wasStartedBy(self, activity, trigger=None, starter=None, time=None, identifier=None, other_attributes=None):
        from prov.constants import PROV_START

        return self._new(PROV_START, identifier, (activity, trigger, starter, time), other_attributes)

    def specializationOf(self, specificEntity, generalEntity):
        from prov.constants import PROV_SPECIALIZATION

        return self._new(PROV_SPECIALIZATION, None, (specificEntity, generalEntity), None)

    def wasAttributedTo(self, entity, agent, identifier=None, other_attributes=None):
        from prov.constants import PROV_ATTRIBUTION

        return self._new(PROV_ATTRIBUTION, identifier, (entity, agent), other_attributes)


class _Ref:
    """A record of Records, as the statements that follow refer to it."""

    __slots__ = ("identifier",)

    def __init__(self, identifier) -> None:
        self.identifier = identifier


ELEMENTS = ("prov:Activity", "prov:Entity", "prov:Agent")


def _prov_records(doc):
    """(type, identifier, formal, extra) of each record of a prov.model.ProvDocument."""
    for record in doc.get_records():
        formal_names = record.FORMAL_ATTRIBUTES
        yield (record.get_type(), record.identifier, list(record.formal_attributes),
               [(name, value) for name, value in record.attributes if name not in formal_names])


def prov_json_text(doc) -> str:
    """The PROV-JSON runlog writes: the prov package's encoding, keys sorted, indented by 2,
    ASCII (as `json.dumps(json.loads(doc.serialize(format="json")), indent=2, sort_keys=True)`)."""
    from prov.serializers.provjson import encode_json_document

    from runlog.export.jsontext import pretty

    if not isinstance(doc, Records):
        return pretty(encode_json_document(doc), ensure_ascii=True) + "\n"
    return pretty(_json_container(doc), ensure_ascii=True) + "\n"


def _json_container(doc: Records) -> dict:
    """prov.serializers.provjson.encode_json_container's dict for the records of `doc`."""
    from prov.constants import PROV_ATTRIBUTE_QNAMES, PROV_N_MAP
    from prov.serializers.provjson import encode_json_document, encode_json_representation

    if any(ns.prefix == "default" for ns in doc.names.get_registered_namespaces()) \
            or doc.names.get_default_namespace() is not None:
        raise ValueError("runlog's PROV writer does not write a default namespace")
    container: dict[str, Any] = {"prefix": encode_json_document(doc.names).get("prefix", {})}
    anonymous: dict[Any, str] = {}
    for kind, identifier, formal, extra in doc.records:
        record_json: dict[str, Any] = {}
        for name, value in formal:
            if value is None:
                continue
            record_json[str(name)] = str(value) if name in PROV_ATTRIBUTE_QNAMES else _datetime_text(value)
        for name, value in extra:
            encoded = encode_json_representation(value, str)
            key = str(name)
            if key in record_json:  # several values of one attribute: a list, in the order given
                previous = record_json[key]
                record_json[key] = (previous if isinstance(previous, list) else [previous]) + [encoded]
            else:
                record_json[key] = encoded
        if identifier is not None:
            ident = str(identifier)
        else:  # equal unidentified records share one blank node, as in the prov package
            same = (kind, tuple(formal), tuple(sorted((str(n), repr(v)) for n, v in extra)))
            ident = anonymous.get(same) or anonymous.setdefault(same, f"_:id{len(anonymous) + 1}")
        label = PROV_N_MAP[kind]
        group = container.setdefault(label, {})
        if ident not in group:
            group[ident] = record_json
        elif isinstance(group[ident], list):
            group[ident].append(record_json)
        else:
            group[ident] = [group[ident], record_json]
    if not container["prefix"]:
        del container["prefix"]
    return container


def provn_text(doc) -> str:
    """`doc.get_provn()`, the same text, each distinct name rendered once."""
    from prov.constants import PROV_N_MAP
    from prov.identifier import QualifiedName
    from prov.model import encoding_provn_value

    fast = isinstance(doc, Records)
    names = doc.names if fast else doc
    if names.get_default_namespace() is not None:
        if fast:
            raise ValueError("runlog's PROV writer does not write a default namespace")
        return doc.get_provn()
    if not fast and list(doc.bundles):
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
    for kind, identifier, formal, extra in (doc.records if fast else _prov_records(doc)):
        items = []
        relation_id = ""
        if identifier:
            text = bare_name(identifier)
            if str(kind) in ELEMENTS:
                items.append(text)
            else:
                relation_id = text + "; "
        for _, value in formal:
            if value is None:
                items.append("-")
            elif isinstance(value, datetime.datetime):
                items.append(_datetime_text(value))
            elif isinstance(value, QualifiedName):
                items.append(bare_name(value))
            else:
                items.append(str(value))
        if extra:
            items.append("[" + ", ".join(f"{bare_name(name)}={value_text(value)}" for name, value in extra) + "]")
        lines.append(f"{PROV_N_MAP[kind]}({relation_id}{', '.join(items)})")
    if any("xsi:" in line for line in lines):
        if fast:
            raise ValueError("runlog's PROV writer does not write xsi names")
        return doc.get_provn()  # the prov package decides whether to declare xsi
    header = ["document"] + [f"prefix {ns.prefix} <{ns.uri}>" for ns in names.get_registered_namespaces()]
    if len(header) > 1:
        header.append("")
    return "\n  ".join(header + lines) + "\n" + "endDocument"


def _datetime_text(value: datetime.datetime) -> str:
    """ISO 8601 with an xsd:dateTime-legal zone (prov's formal-attribute form of a time)."""
    offset = value.utcoffset()
    if offset is not None and (offset.total_seconds() % 60 or offset.microseconds):
        value = value.astimezone(datetime.UTC)
    return value.isoformat()
