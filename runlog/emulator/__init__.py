"""A local AWS HealthOmics emulator speaking the service's REST-JSON protocol, for tests
and demos: real boto3 and the real `aws omics` CLI work against it. See docs/emulator.md."""

from runlog.emulator.server import Emulator

__all__ = ["Emulator"]
