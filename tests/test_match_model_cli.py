"""`ucp match-model` fits the match model to a retailer's own files without labels; `ucp resolve --model` and
UCP_MATCH_MODEL (the deployed resolver: queue worker, HTTP paths) resolve with it; a model that does not load is a
clear error, never a silent fall back to the shipped model."""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from shared.cli import main
from shared.identity.config import MatchModelError
from shared.identity.engine import Resolver
from shared.identity.lanes import resolve_in_lanes
from shared.identity.matching import COMPARISON_NAMES, DEFAULT_MODEL_PATH, MatchModel
from shared.ingest import load_mapping_file
from shared.ingest.pipeline import iter_mapped
from shared.settings import get_settings
from shared.store import MemoryStore

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ROOT / "config" / "sources"
ALL_SOURCES = ("crm", "ecommerce", "loyalty", "pos")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """600 generated customers: about 1,280 customer records in four files (the fit's minimum is 1,000)."""
    from shared.generate import GeneratorConfig, generate

    out = tmp_path_factory.mktemp("gen") / "data"
    generate(out, GeneratorConfig(customers=600, seed=4), progress=False)
    return out


def inputs(data: Path, sources=ALL_SOURCES) -> list[str]:
    """INPUT:MAPPING for each source's customer file."""
    return [f"{next((data / 'landing' / s / 'customers').iterdir())}:{SOURCES / f'{s}.customers.json'}"
            for s in sources]


def run_cli(argv, capsys) -> tuple[int, str, str]:
    """main(argv) must return an exit code, not raise (a raise is a traceback for the user)."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit:
        raise
    except BaseException as err:  # noqa: BLE001
        pytest.fail(f"ucp {argv[0]} raised {type(err).__name__}: {err} (a traceback, not an error)")
    out, err = capsys.readouterr()
    return code, out, err


def assert_clear_error(code: int, err: str, *words: str) -> None:
    assert code == 2, f"exit code {code}, stderr {err!r}"
    assert "error:" in err and "Traceback" not in err
    for word in words:
        assert word in err, err


@pytest.fixture(scope="module")
def fit(data, tmp_path_factory) -> tuple[Path, dict]:
    """The model fitted to all four files, and the command's summary."""
    out = tmp_path_factory.mktemp("model") / "sub" / "model.json"  # a folder that does not exist yet
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["match-model", *inputs(data), "--out", str(out)])
    assert code == 0
    return out, json.loads(stdout.getvalue())


# --- ucp match-model ---------------------------------------------------------------------------------
def test_match_model_fits_a_model_to_the_files(fit, data):
    path, summary = fit
    model = MatchModel.load(path)
    shipped = MatchModel.default()
    assert model.version.startswith("fitted-") and model.version == summary["version"] != shipped.version
    assert model.params != shipped.params and model.lambdas != shipped.lambdas  # learned from these files
    # The summary: records, candidate pairs, where each comparison's m came from, seconds.
    assert summary["records"] >= 1000 and summary["candidate_pairs"] > 0 and summary["seconds"] > 0
    assert set(summary["m_source"]) == set(COMPARISON_NAMES)
    assert set(summary["m_source"].values()) <= {"identifiers", "sessions", "prior"}
    # Priors set for the records read, and the provenance: file names and counts, seed, when; no record values.
    assert model.population == summary["records"] == model.metadata["records"]
    meta = model.metadata
    files = [Path(spec.split(":")[0]).name for spec in inputs(data)]
    assert [i["file"] for i in meta["inputs"]] == files
    assert [i["mapping"] for i in meta["inputs"]] == [f"{s}.customers.json" for s in ALL_SOURCES]
    assert sum(i["records"] for i in meta["inputs"]) == meta["records_read"] >= meta["records"]
    assert meta["seed"] == 1 and meta["trained_at"] and meta["data"] == "fitted"
    text = json.dumps(meta)
    assert "@" not in text and str(data) not in text  # no email address, no local path


def test_the_deployments_blocked_values_are_left_out_of_the_fit(data, tmp_path, capsys):
    # A store's walk-in email, typed for customers who gave a first name only: blocked in the identity config,
    # the fit leaves it out as the resolver does, so those records have nothing usable (as the resolver sees them).
    walk_in = tmp_path / "walk_in.csv"
    walk_in.write_text("id,first,email\n" + "".join(f"w{i},Guest{i},walkin@mystore.co.uk\n" for i in range(40)))
    mapping = tmp_path / "till.customers.json"
    mapping.write_text(json.dumps({"source": "till", "entity": "customers", "format": "csv", "record_key": ["id"],
                                   "fields": {"given_name": "first", "email": "email"}}))
    config = json.loads((ROOT / "config" / "identity.json").read_text())
    config["protection"]["blocked_values"] = {"email": ["WalkIn@MyStore.co.uk"]}
    blocked = tmp_path / "identity.json"
    blocked.write_text(json.dumps(config))
    argv = ["match-model", *inputs(data), f"{walk_in}:{mapping}"]
    code, stdout, err = run_cli([*argv, "--out", tmp_path / "a.json"], capsys)
    assert code == 0, err
    plain = json.loads(stdout)
    code, stdout, err = run_cli([*argv, "--out", tmp_path / "b.json", "--identity-config", blocked], capsys)
    assert code == 0, err
    fitted = json.loads(stdout)
    assert fitted["unusable_records"] == plain["unusable_records"] + 40
    assert fitted["records"] == plain["records"] - 40


def test_population_and_seed(fit, data, tmp_path, capsys):
    path, summary = fit
    out = tmp_path / "m.json"
    code, stdout, err = run_cli(["match-model", *inputs(data), "--out", out, "--population", 100_000], capsys)
    assert code == 0, err
    model = MatchModel.load(out)
    assert model.population == json.loads(stdout)["population"] == 100_000
    # The same fit with its priors for a store of 100,000 records: a pair's prior odds fall as the store grows.
    expected = MatchModel.load(path).with_population(100_000)
    assert model.lambdas == pytest.approx(expected.lambdas, rel=1e-9)
    assert model.lambdas[0] < MatchModel.load(path).lambdas[0]
    code, _, err = run_cli(["match-model", *inputs(data), "--out", out, "--seed", 7], capsys)
    assert code == 0, err
    assert MatchModel.load(out).metadata["seed"] == 7


def test_too_few_records_are_refused_unless_forced(data, tmp_path, capsys):
    out = tmp_path / "m.json"
    one_file = inputs(data, ("pos",))  # about 430 records
    code, _, err = run_cli(["match-model", *one_file, "--out", out], capsys)
    assert_clear_error(code, err, "1,000", "--force")
    assert not out.exists()
    code, stdout, err = run_cli(["match-model", *one_file, "--out", out, "--force"], capsys)
    assert code == 0, err
    model = MatchModel.load(out)
    assert 10 <= model.population == json.loads(stdout)["records"] < 1000


@pytest.mark.parametrize("argv", [["--population", "1"], ["--out-is-a-folder"]])
def test_match_model_bad_arguments_are_clear_errors(argv, data, tmp_path, capsys):
    out = tmp_path if argv == ["--out-is-a-folder"] else tmp_path / "m.json"
    extra = [] if argv == ["--out-is-a-folder"] else argv
    code, _, err = run_cli(["match-model", *inputs(data, ("pos",)), "--out", out, "--force", *extra], capsys)
    assert_clear_error(code, err)


# --- ucp resolve --model -----------------------------------------------------------------------------
def test_resolve_with_a_fitted_model(fit, data, tmp_path, capsys):
    path, summary = fit
    merges = tmp_path / "merges.jsonl"
    code, _, err = run_cli(["resolve", *inputs(data), "--out", tmp_path / "ids.csv", "--merge-log", merges,
                            "--model", path, "--no-progress"], capsys)
    assert code == 0, err
    versions = {json.loads(line).get("model_version") for line in merges.read_text().splitlines()} - {None}
    assert versions == {summary["version"]}  # every link on score explains itself with the fitted model


def _bad_models(tmp_path: Path) -> dict[str, Path]:
    shipped = json.loads(DEFAULT_MODEL_PATH.read_text())
    levels = json.loads(json.dumps(shipped))
    levels["comparisons"]["phone"]["levels"] = ["null", "exact", "different"]
    short = json.loads(json.dumps(shipped))
    short["comparisons"]["email"]["match"] = short["comparisons"]["email"]["match"][:-1]
    names = {"missing": "none", "not JSON": "broken", "not a model": "list", "levels": "levels", "short": "short"}
    files = {case: tmp_path / f"{name}.json" for case, name in names.items()}
    files["not JSON"].write_text('{"version": ')
    files["not a model"].write_text("[1, 2]")
    files["levels"].write_text(json.dumps(levels))
    files["short"].write_text(json.dumps(short))
    return files


@pytest.mark.parametrize("case", ["missing", "not JSON", "not a model", "levels", "short"])
def test_resolve_with_a_model_that_does_not_load_is_a_clear_error(case, data, tmp_path, capsys):
    model = _bad_models(tmp_path)[case]
    out = tmp_path / "ids.csv"
    code, _, err = run_cli(["resolve", *inputs(data, ("pos",)), "--out", out, "--model", model, "--no-progress"],
                           capsys)
    assert_clear_error(code, err, "match model", model.name)
    assert not out.exists()  # refused before any work


# --- deployment: UCP_MATCH_MODEL ----------------------------------------------------------------------
@pytest.fixture
def match_model_env(monkeypatch):
    def use(value) -> None:
        monkeypatch.setenv("UCP_MATCH_MODEL", str(value))
        get_settings.cache_clear()

    yield use
    monkeypatch.delenv("UCP_MATCH_MODEL", raising=False)
    get_settings.cache_clear()


def test_the_match_model_setting_deploys_a_fitted_model(fit, data, match_model_env):
    path, summary = fit
    match_model_env(path)
    resolver = Resolver(MemoryStore())
    assert resolver.model.version == summary["version"]
    assert Resolver(MemoryStore()).model is resolver.model  # loaded once per process
    # The queue worker's path (resolve_in_lanes, no model given) links on score with it.
    records = []
    for spec in inputs(data):
        file, mapping = (Path(part) for part in spec.split(":"))
        with file.open("rb") as stream:
            records += [m.item for m in iter_mapped(stream, file.name, load_mapping_file(mapping)) if m.item]
    store = MemoryStore()
    resolve_in_lanes(store, records, settings=get_settings(), workers=1)
    merges = list(store.container("merges").query_items())
    assert {m.get("model_version") for m in merges} - {None} == {summary["version"]}


def test_a_match_model_setting_that_does_not_load_stops_the_resolver(tmp_path, match_model_env):
    for case, path in _bad_models(tmp_path).items():
        match_model_env(path)
        with pytest.raises(MatchModelError, match=f"match model {path}"):
            Resolver(MemoryStore())
    match_model_env("")
    assert Resolver(MemoryStore()).model is MatchModel.default()  # empty: the shipped model
