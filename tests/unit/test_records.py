"""Records as people and API clients see them."""

from __future__ import annotations

from graphium.records.stack import StackRecord, StackStatus


def test_public_dump_leaves_out_the_resolved_spec() -> None:
    spec = {"name": "web", "containers": [{"name": "db", "environment": {"DB_PASSWORD": "s3cret"}}]}
    record = StackRecord(id="web", name="web", status=StackStatus.running, spec=spec, progress=100)
    public = record.public_dump()
    assert "spec" not in public and "s3cret" not in str(public)
    assert public["progress"] == 100 and public["status"] == "running"
    assert record.dump()["spec"] == spec  # the store keeps it: executors need the values
