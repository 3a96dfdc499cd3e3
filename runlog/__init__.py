"""runlog: a reproducible, auditable ledger of AWS HealthOmics workflow runs."""

__version__ = "0.1.0"
