"""The create form's model picker: model directories in the stores of the given regions,
with their manifest; directories the API would refuse are left out."""

from __future__ import annotations

from pathlib import Path

from control_plane.endpoints.stores import available_models
from control_plane.settings import Settings
from tests.fixtures.models import fake_model


def test_models_of_the_given_regions_with_manifest_only(tmp_path: Path) -> None:
    settings = Settings(model_store_root=tmp_path)
    fake_model(tmp_path, "ca-qc-1", "chat", license="mit")
    fake_model(tmp_path, "se-north-1", "other")
    (tmp_path / "ca-qc-1" / "no-manifest").mkdir()
    (tmp_path / "ca-qc-1" / "no-manifest" / "config.pbtxt").write_text('name: "x"\n')
    broken = tmp_path / "ca-qc-1" / "bad-hash"
    broken.mkdir()
    (broken / "config.pbtxt").write_text('name: "bad"\n')
    (broken / "model.json").write_text('{"weights_sha256": "nope"}')

    found = available_models(settings, ["ca-qc-1", "us-east-1"])

    assert [(m.name, m.region, m.license) for m in found] == [("chat", "ca-qc-1", "mit")]
    assert found[0].uri == (tmp_path / "ca-qc-1" / "chat").resolve().as_uri()
    assert len(found[0].weights_sha256) == 64
