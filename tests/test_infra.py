"""infra/ cannot be deployed from here; these checks keep it consistent with what the app reads."""
from __future__ import annotations

import re
from pathlib import Path

from shared.settings import Settings
from shared.storage import blob_containers, queues
from shared.store.schema import CONTAINERS

ROOT = Path(__file__).resolve().parent.parent
MAIN = (ROOT / "infra" / "main.bicep").read_text()
LOCAL_MARKERS = ("127.0.0.1", "localhost", "devstoreaccount1")


def bicep_app_settings() -> dict[str, str]:
    return dict(re.findall(r"\{ name: '([^']+)', value: ([^}]+?) \}", MAIN))


def test_cosmos_containers_and_partition_keys_match_the_schema():
    declared = dict(re.findall(r"\{ name: '(\w+)', pk: '([^']+)' \}", MAIN))
    assert declared == CONTAINERS


def test_blob_containers_and_queues_exist():
    body = MAIN.split("var blobContainers = [", 1)[1].split("]", 1)[0]
    declared_containers = set(re.findall(r"'([\w-]+)'", body))
    declared_queues = set(re.findall(r"'([\w-]+)'", MAIN.split("var queues = [", 1)[1].split("]", 1)[0]))
    s = Settings()
    assert set(blob_containers(s)) <= declared_containers
    assert set(queues(s)) <= declared_queues


def test_data_files_expire_since_an_erase_cannot_rewrite_them():
    rule = MAIN.split("name: 'expire-data-files'", 1)[1].split("actions:", 1)
    prefixes = set(re.findall(r"'([\w-]+)/'", rule[0]))
    s = Settings()
    assert prefixes == {s.landing_container, s.quarantine_container, s.failed_container, s.claims_container,
                        s.exports_container}
    assert "delete: { daysAfterModificationGreaterThan: fileRetentionDays }" in rule[1]


def test_every_binding_expression_is_an_app_setting(functions_by_name):
    settings = bicep_app_settings()
    for fn in functions_by_name.values():
        for binding in fn.get_bindings():
            for value in binding.get_dict_repr().values():
                for name in re.findall(r"%([^%]+)%", str(value)):
                    assert name in settings, f"{fn.get_function_name()} uses %{name}% but the Bicep does not set it"


def test_settings_that_point_at_the_local_stack_are_overridden_with_identity():
    app = bicep_app_settings()
    aliases = {name: [a for a in (field.validation_alias.choices if field.validation_alias else [])]
               for name, field in Settings.model_fields.items()}
    defaults = Settings(COSMOS_ENDPOINT="https://127.0.0.1:8081/")
    for name, value in defaults.model_dump().items():
        if any(m in str(value) for m in LOCAL_MARKERS):
            env_names = aliases[name] + [f"UCP_{name.upper()}"]
            overridden = any(n in app for n in env_names)
            via_identity = name == "storage_connection" and "AzureWebJobsStorage__accountName" in app
            assert overridden or via_identity, f"setting {name} keeps its local default in Azure"
    # No secrets: identity everywhere.
    assert "COSMOS_KEY" not in app and "AccountKey" not in MAIN and "listKeys" not in MAIN
    assert "disableLocalAuth: true" in MAIN and "allowSharedKeyAccess: false" in MAIN


def test_azure_yaml_deploys_the_function_app():
    text = (ROOT / "azure.yaml").read_text()
    assert "host: function" in text and "infra/eventgrid.bicep" in text
    assert "functionName=Host.Functions.ingest_blob" in (ROOT / "infra" / "eventgrid.bicep").read_text()


def test_local_settings_example_sets_every_binding_setting_once(functions_by_name):
    """The file users copy to local.settings.json: valid JSON without a key set twice (the second silently wins),
    and every %SETTING% the bindings name."""
    import json

    def no_duplicates(pairs):
        keys = [k for k, _ in pairs]
        assert len(keys) == len(set(keys)), f"set twice: {sorted({k for k in keys if keys.count(k) > 1})}"
        return dict(pairs)

    values = json.loads((ROOT / "local.settings.example.json").read_text(), object_pairs_hook=no_duplicates)["Values"]
    named = {m for f in functions_by_name.values() for m in re.findall(r"%(\w+)%", f.get_function_json())}
    assert named and named <= set(values)


def test_no_app_setting_is_declared_twice():
    """Two entries with one name in siteConfig.appSettings: only one takes effect, silently, so a later edit of the
    other does nothing (or both are edited and drift apart)."""
    blocks = re.findall(r"appSettings:\s*\[(.*?)\n\s*\]", MAIN, flags=re.S)
    assert blocks, "no appSettings array found in infra/main.bicep"
    every: set[str] = set()
    for block in blocks:
        names = re.findall(r"\{\s*name:\s*'([^']+)'", block)
        twice = sorted({n for n in names if names.count(n) > 1})
        assert twice == [], f"app settings declared more than once: {twice}"
        every.update(names)
    assert set(bicep_app_settings()) <= every  # the parse above sees every setting
