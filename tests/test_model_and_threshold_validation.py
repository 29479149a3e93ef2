"""A match model file whose numbers scoring cannot use, and thresholds out of range, are refused at start with an
error naming the file (or setting) and the problem: before, priors that were no distribution, NaN term frequencies
or a zero tf_floor loaded, and two different people linked (or a score was NaN). The shipped model and one
`ucp match-model` fits still load; valid threshold pairs, including equal ones (no review band), still load."""
from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from shared.cli import main
from shared.identity.config import MatchModelError, load_match_model
from shared.identity.matching import DEFAULT_MODEL_PATH
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ROOT / "config" / "sources"
SHIPPED = json.loads(DEFAULT_MODEL_PATH.read_text())
NAN, INF = float("nan"), float("inf")


def _set(*path, value):
    """An edit of the shipped model: the value at this path (keys) replaced."""
    def edit(model: dict) -> None:
        target = model
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return edit


def _every_class(name: str, cls: str, value: list[float]):
    return _set("comparisons", name, cls, value=value)


GENDER = {"levels": ["null", "exact", "different"], "match": [0, 1, 0], "related": [0, 1, 0], "unrelated": [0, .5, .5]}
# case: (edit of the shipped model, words the error must hold)
BAD_MODELS = {
    "priors summing to 2.7": (_set("lambdas", value=[0.9, 0.9, 0.9]), ["lambdas", "sum to 2.7"]),
    "priors all zero": (_set("lambdas", value=[0.0, 0.0, 0.0]), ["lambdas", "sum to 0"]),
    "no unrelated class": (_set("lambdas", value=[1.0, 0.0, 0.0]), ["lambdas", "above 0"]),
    "no match class": (_set("lambdas", value=[0.0, 0.5, 0.5]), ["lambdas", "above 0"]),
    "levels summing to 6": (_every_class("given_name", "match", [0.0] + [1.0] * 6),
                            ["given_name", "match", "sum to 6"]),
    "levels all zero": (_every_class("phone", "unrelated", [0.0] * 4), ["phone", "unrelated", "sum to 0"]),
    "a level at zero": (_every_class("phone", "unrelated", [0.0, 0.0, 0.01, 0.99]), ["phone", "unrelated"]),
    "null level not zero": (_every_class("email", "related", [0.5, 0.2, 0.1, 0.1, 0.1]), ["email", "related"]),
    "levels summing to 0.999": (_every_class("phone", "match", [0.0, 0.9, 0.05, 0.049]), ["phone", "sum to 0.999"]),
    "classes reordered": (_set("classes", value=["unrelated", "related", "match"]), ["classes"]),
    "an extra comparison": (_set("comparisons", "gender", value=GENDER), ["comparison gender", "not one"]),
    "tf NaN": (_set("term_frequencies", "given_name", "john", value=NAN), ["term_frequencies.given_name.john", "nan"]),
    "tf inf": (_set("term_frequencies", "given_name", "john", value=INF), ["term_frequencies.given_name.john", "inf"]),
    "tf 50": (_set("term_frequencies", "family_name", "smith", value=50.0), ["term_frequencies.family_name.smith"]),
    "tf negative": (_set("term_frequencies", "family_name", "smith", value=-0.1), ["term_frequencies.family_name"]),
    "tf a string": (_set("term_frequencies", "given_name", "john", value="0.01"), ["term_frequencies.given_name"]),
    "tf shares over 1": (_set("term_frequencies", "given_name", value={"john": 0.7, "mary": 0.7}),
                         ["term_frequencies.given_name", "above 1"]),
    "tf a list": (_set("term_frequencies", value=[1, 2]), ["term_frequencies"]),
    "tf table a list": (_set("term_frequencies", "given_name", value=[1, 2]), ["term_frequencies.given_name"]),
    "tf of an unknown comparison": (_set("term_frequencies", "email", value={"x": 0.1}), ["term_frequencies.email"]),
    "tf_floor 0": (_set("tf_floor", value=0), ["tf_floor 0"]),
    "tf_floor NaN": (_set("tf_floor", value=NAN), ["tf_floor nan"]),
    "tf_floor 1e9": (_set("tf_floor", value=1e9), ["tf_floor"]),
    "tf_floor negative": (_set("tf_floor", value=-1e-5), ["tf_floor"]),
    "tf_floor null": (_set("tf_floor", value=None), ["tf_floor None"]),
    "tf_floor a string": (_set("tf_floor", value="x"), ["tf_floor 'x'"]),
    "tf_floor of 400 digits": (_set("tf_floor", value=10**400), ["tf_floor 1000"]),
    "metadata a list": (_set("metadata", value=[1]), ["metadata"]),
}


def _write(tmp_path: Path, case: str, edit) -> Path:
    model = copy.deepcopy(SHIPPED)
    edit(model)
    path = tmp_path / f"{case.replace(' ', '_')}.json"
    path.write_text(json.dumps(model))  # NaN and Infinity as Python's json writes them (and reads them back)
    return path


@pytest.mark.parametrize("case", BAD_MODELS)
def test_a_model_with_numbers_scoring_cannot_use_is_refused_at_load(case, tmp_path):
    edit, words = BAD_MODELS[case]
    path = _write(tmp_path, case, edit)
    with pytest.raises(MatchModelError) as raised:
        load_match_model(path)
    message = str(raised.value)
    assert message.startswith(f"match model {path}: "), message
    for word in words:
        assert word in message, message


def test_the_shipped_model_loads_through_the_checks(tmp_path):
    assert load_match_model(DEFAULT_MODEL_PATH).version == SHIPPED["version"]
    # Optional parts absent still load: from_dict's defaults (no term frequencies, tf_floor 1e-5, no metadata).
    bare = {k: v for k, v in SHIPPED.items() if k not in ("term_frequencies", "tf_floor", "metadata", "classes")}
    path = tmp_path / "bare.json"
    path.write_text(json.dumps(bare))
    assert load_match_model(path).tf_floor == 1e-5
    # A related prior of 0 (data without households) and a term frequency of 0 (floored at tf_floor) are valid.
    edited = copy.deepcopy(SHIPPED)
    edited["lambdas"] = [SHIPPED["lambdas"][0], 0.0, 1.0 - SHIPPED["lambdas"][0]]
    edited["term_frequencies"]["given_name"]["john"] = 0.0
    path = tmp_path / "no_related.json"
    path.write_text(json.dumps(edited))
    assert load_match_model(path).lambdas[1] == 0.0


def test_a_model_ucp_match_model_fits_loads(tmp_path):
    from shared.generate import GeneratorConfig, generate

    data = tmp_path / "data"
    generate(data, GeneratorConfig(customers=600, seed=5), progress=False)
    inputs = [f"{next((data / 'landing' / s / 'customers').iterdir())}:{SOURCES / f'{s}.customers.json'}"
              for s in ("crm", "ecommerce", "loyalty", "pos")]
    for population in (None, 2_000_000):  # the priors rescaled for another store size too
        out = tmp_path / f"model_{population}.json"
        with contextlib.redirect_stdout(io.StringIO()):
            extra = ["--population", str(population)] if population else []
            assert main(["match-model", *inputs, "--out", str(out), *extra]) == 0
        model = load_match_model(out)
        assert model.version == json.loads(out.read_text())["version"]


# --- thresholds ---------------------------------------------------------------------------------------

@pytest.fixture
def thresholds(monkeypatch):
    def use(match: str | None, review: str | None) -> Settings:
        for name, value in (("UCP_MATCH_THRESHOLD", match), ("UCP_REVIEW_THRESHOLD", review)):
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        return Settings()
    return use


@pytest.mark.parametrize("match, review, field", [
    ("nan", "0.80", "match_threshold"), ("0.97", "nan", "review_threshold"), ("inf", "0.80", "match_threshold"),
    ("0.97", "-inf", "review_threshold"), ("1.5", "0.80", "match_threshold"), ("97", "80", "match_threshold"),
    ("0", "0", "match_threshold"), ("-1", "0.80", "match_threshold"), ("0.97", "0", "review_threshold"),
    ("0.97", "-0.5", "review_threshold"), (None, "0.99", "UCP_REVIEW_THRESHOLD 0.99 is above UCP_MATCH_THRESHOLD"),
    ("0.80", "0.97", "UCP_REVIEW_THRESHOLD 0.97 is above UCP_MATCH_THRESHOLD 0.8"),
])
def test_thresholds_out_of_range_are_refused(match, review, field, thresholds):
    with pytest.raises(ValidationError, match=field):
        thresholds(match, review)


@pytest.mark.parametrize("match, review", [(None, None), ("0.97", "0.80"), ("0.9", "0.9"), ("1", "0.5"),
                                           ("0.5", "0.01"), ("1", "1")])
def test_valid_thresholds_load(match, review, thresholds):
    settings = thresholds(match, review)
    assert 0 < settings.review_threshold <= settings.match_threshold <= 1
    if match is None:
        assert (settings.match_threshold, settings.review_threshold) == (0.97, 0.80)


def test_the_cli_reports_a_bad_threshold_as_an_error_before_any_work(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("UCP_MATCH_THRESHOLD", "0.80")
    monkeypatch.setenv("UCP_REVIEW_THRESHOLD", "0.97")
    from shared.settings import get_settings
    get_settings.cache_clear()
    try:
        data = tmp_path / "pos.csv"
        data.write_text("customer_no,first,last\nC1,John,Smith\n")
        out = tmp_path / "ids.csv"
        code = main(["resolve", f"{data}:{SOURCES / 'pos.customers.json'}", "--out", str(out), "--no-progress"])
        err = capsys.readouterr().err
        assert code == 2 and "UCP_REVIEW_THRESHOLD 0.97 is above UCP_MATCH_THRESHOLD" in err, err
        assert "Traceback" not in err and not out.exists()
    finally:
        monkeypatch.delenv("UCP_MATCH_THRESHOLD")
        monkeypatch.delenv("UCP_REVIEW_THRESHOLD")
        get_settings.cache_clear()
