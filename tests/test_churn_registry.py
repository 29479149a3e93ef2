"""The churn model registry on a local directory and on Blob Storage (Azurite): publish, champion/challenger,
run reports, conditional pointer updates."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from model_training.churn import evaluate, new_version, platt, publish_if_better, verified_export
from shared.churn.registry import RegistryConflict, RegistryError, blob_registry, local_registry
from tests.test_churn_training import trained_model


@pytest.fixture(params=["local", "blob"])
def registry(request, tmp_path):
    if request.param == "local":
        return local_registry(tmp_path / "models")
    return blob_registry(request.getfixturevalue("stack_settings"))


def worse_model(good):
    """A real, exportable model trained on shuffled labels: it has learnt nothing."""
    from sklearn.base import clone

    rng = np.random.default_rng(0)
    x = good.holdout_x
    estimator = clone(good.estimator).fit(x, rng.permutation(good.holdout_y))
    scores = platt(estimator.predict_proba(x)[:, 1], 1.0, 0.0)
    blob, info = verified_export(estimator, (1.0, 0.0), x, scores)
    card = {**good.card, "version": (version := new_version()), "metrics": evaluate(good.holdout_y, scores), "onnx": info}
    return dataclasses.replace(good, version=version, onnx=blob, card=card, estimator=estimator,
                               calibration=(1.0, 0.0), holdout_scores=scores)


def renamed(trained):
    version = new_version()
    return dataclasses.replace(trained, version=version, card={**trained.card, "version": version})


def test_champion_challenger_publishes_only_a_model_that_holds_up(registry):
    good = trained_model()
    first = publish_if_better(renamed(good), registry, tolerance=0.005)
    assert first["status"] == "published" and first["champion"] is None
    champion = registry.latest()[0]["version"]
    assert champion == first["challenger"]["version"]

    bad = worse_model(good)
    report = publish_if_better(bad, registry, tolerance=0.005)
    assert report["status"] == "kept_champion"
    assert report["champion"]["version"] == champion
    # the champion was scored on the challenger's holdout, not taken from its old card
    assert report["champion"]["holdout_roc_auc"] > report["challenger"]["roc_auc"] + 0.005
    assert registry.latest()[0]["version"] == champion

    equal = publish_if_better(renamed(good), registry, tolerance=0.005)
    assert equal["status"] == "published"  # as good as the champion: within tolerance
    assert registry.latest()[0]["version"] == equal["challenger"]["version"]

    # every run left its report, published or not
    for run in (first, report, equal):
        assert registry.read_run(run["run_id"])["status"] == run["status"]
    assert set(registry.versions()) == {first["challenger"]["version"], equal["challenger"]["version"]}


def test_published_version_round_trips_with_its_card(registry):
    trained = renamed(trained_model())
    registry.publish(trained.version, trained.onnx, trained.card, expected_latest=None)
    pointer, etag, blob, card = registry.load_latest()
    assert blob == trained.onnx and card["version"] == trained.version == pointer["version"]
    assert pointer["roc_auc"] == trained.card["metrics"]["roc_auc"] and pointer["model_etag"]
    assert registry.latest_etag() == etag


def test_pointer_moves_only_from_the_state_the_publisher_saw(registry):
    a, b = renamed(trained_model()), renamed(trained_model())
    registry.publish(a.version, a.onnx, a.card, expected_latest=None)
    seen = registry.latest_etag()
    with pytest.raises(RegistryConflict):
        registry.publish(b.version, b.onnx, b.card, expected_latest=None)  # someone published in between
    c = renamed(trained_model())
    with pytest.raises(RegistryConflict):
        registry.publish(c.version, c.onnx, c.card, expected_latest='"stale"')
    assert registry.latest()[0]["version"] == a.version and registry.latest_etag() == seen


def test_a_model_blob_changed_after_publishing_is_refused(registry):
    trained = renamed(trained_model())
    pointer = registry.publish(trained.version, trained.onnx, trained.card, expected_latest=None)
    registry.backend.write(f"churn/{trained.version}/model.onnx", b"tampered")
    with pytest.raises(RegistryError, match="changed after it was published"):
        registry.load(trained.version, model_etag=pointer["model_etag"])


def test_run_report_is_plain_json_in_the_registry(tmp_path):
    registry = local_registry(tmp_path)
    registry.write_run("r-1", {"status": "refused", "reason": "too small"})
    assert json.loads((tmp_path / "churn" / "runs" / "r-1.json").read_text())["reason"] == "too small"
    with pytest.raises(RegistryError):
        registry.write_run("../escape", {})


def _break_missing_model(root, registry, version):
    (root / "churn" / version / "model.onnx").unlink()


def _break_tampered_model(root, registry, version):
    registry.backend.write(f"churn/{version}/model.onnx", b"not an onnx model")


def _break_corrupt_pointer(root, registry, version):
    registry.backend.write("churn/latest", b"{not json")


@pytest.mark.parametrize("breaker", [_break_missing_model, _break_tampered_model, _break_corrupt_pointer])
def test_a_champion_that_cannot_be_loaded_is_replaced(tmp_path, breaker):
    """A champion the registry cannot load cannot serve either: like one trained on other features, it is
    replaced, instead of failing every publish (and every nightly run) for good."""
    registry = local_registry(tmp_path)
    champion = renamed(trained_model())
    registry.publish(champion.version, champion.onnx, champion.card, expected_latest=None)
    breaker(tmp_path, registry, champion.version)

    challenger = renamed(trained_model())
    report = publish_if_better(challenger, registry, tolerance=0.005)
    assert report["status"] == "published", report
    assert "incompatible" in report["champion"]
    assert registry.latest()[0]["version"] == challenger.version


def test_a_broken_champion_is_not_replaced_over_a_concurrent_publish(tmp_path):
    registry = local_registry(tmp_path)
    champion = renamed(trained_model())
    registry.publish(champion.version, champion.onnx, champion.card, expected_latest=None)
    registry.backend.write("churn/latest", b"{not json")
    other = renamed(trained_model())

    real_load_latest = registry.load_latest

    def unreadable_then_someone_publishes():
        try:
            return real_load_latest()
        finally:  # another run replaces the broken pointer after this one read it
            registry.publish(other.version, other.onnx, other.card, expected_latest=registry.latest_etag())

    registry.load_latest = unreadable_then_someone_publishes
    report = publish_if_better(renamed(trained_model()), registry, tolerance=0.005)
    assert report["status"] == "kept_champion" and "another run published first" in report["decision"]
    assert registry.latest()[0]["version"] == other.version


def test_an_unreachable_registry_fails_the_run_instead_of_skipping_the_gate(tmp_path):
    """Only unusable registry content makes a champion replaceable: a storage error is not a reason to publish
    without comparing."""
    registry = local_registry(tmp_path)
    champion = renamed(trained_model())
    registry.publish(champion.version, champion.onnx, champion.card, expected_latest=None)
    read = registry.backend.read

    def flaky_read(name):
        if name.endswith("model.onnx"):
            raise ConnectionError("storage unreachable")
        return read(name)

    registry.backend.read = flaky_read
    report = publish_if_better(renamed(trained_model()), registry, tolerance=0.005)
    assert report["status"] == "failed" and "unreachable" in report["reason"]
    assert registry.latest()[0]["version"] == champion.version


def test_corrupt_registry_json_is_a_registry_error(tmp_path):
    registry = local_registry(tmp_path)
    trained = renamed(trained_model())
    registry.publish(trained.version, trained.onnx, trained.card, expected_latest=None)
    registry.backend.write(f"churn/{trained.version}/card.json", b"[1, 2]")
    with pytest.raises(RegistryError, match="not a JSON object"):
        registry.load_latest()
    registry.backend.write("churn/latest", b'{"no": "version"}')
    with pytest.raises(RegistryError, match="names no version"):
        registry.latest()
