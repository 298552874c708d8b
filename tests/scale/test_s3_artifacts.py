"""Artifacts and snapshots on S3: the whole ingest -> train -> serve path against a local S3 server.

No cloud is reachable here, so the S3 API is moto's server mode (what s3fs's own suite uses),
reached over real HTTP by s3fs; nothing in loopml knows it is not AWS.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def test_ingest_train_and_serve_with_artifacts_on_s3(tiny_project: Path, s3_endpoint: str) -> None:
    import s3fs
    from fastapi.testclient import TestClient

    from loopml.project import Project

    options = {"client_kwargs": {"endpoint_url": s3_endpoint}}
    s3fs.S3FileSystem(**options).mkdir("loopml-test")
    project_file = tiny_project / "loopml.yaml"
    config = yaml.safe_load(project_file.read_text())
    config["store"] = {"artifacts_url": "s3://loopml-test/fraud", "artifacts_options": options}
    project_file.write_text(yaml.safe_dump(config))

    project = Project.open(tiny_project)
    ingested = project.ingest()
    outcome = project.train()
    fs = s3fs.S3FileSystem(**options)
    keys = {k.removeprefix("loopml-test/fraud/") for k in fs.find("loopml-test/fraud")}
    assert ingested.dataset.uri in keys  # the data snapshot
    assert outcome.version.artifact_key in keys  # the model
    assert not [k for k in keys if ".tmp-" in k]  # every write completed its rename
    assert not (tiny_project / ".loopml" / "artifacts").exists()  # nothing fell back to local disk

    record = project.models.load().input_columns
    with TestClient(project.app()) as client:
        metadata = client.get("/v2/models/fraud").json()
        assert metadata["versions"] == [str(outcome.version.version)]
        assert [i["name"] for i in metadata["inputs"]] == list(record)
