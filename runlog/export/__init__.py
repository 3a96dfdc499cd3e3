"""Provenance exports: Workflow Run RO-Crate, BioCompute Object, W3C PROV, a methods bundle.

Every format is written from the same neutral view of a record (runlog.export.terms), and
every export is deterministic: the same records give byte-identical files."""

FORMATS = ("ro-crate", "bco", "prov-json", "prov-n", "methods")
