"""docs/local-host.md as a new user reads it: the app settings it lists are every `%NAME%` the app's bindings
read, and its in-process snippet runs as written without a local.settings.json (a fresh clone)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from .conftest import ROOT, app_functions

DOC = (ROOT / "docs" / "local-host.md").read_text(encoding="utf-8")


def binding_settings() -> set[str]:
    names = set()
    for f in app_functions().values():
        for binding in f.get_bindings():
            names |= set(re.findall(r"%([A-Za-z0-9_]+)%", json.dumps(binding.get_dict_repr(), default=str)))
    return names


def test_the_doc_lists_every_setting_the_bindings_read():
    para = next(p for p in DOC.split("\n\n") if p.startswith("The ucp app's bindings use"))
    assert set(re.findall(r"`%([A-Za-z0-9_]+)%`", para)) == binding_settings() >= {"UCP_LANDING_CONTAINER"}


def test_the_in_process_snippet_runs_in_a_fresh_clone(tmp_path):
    """As written, with no storage, Cosmos or UCP_* settings in the environment and no local.settings.json
    (a fresh clone has none; one a developer keeps is hidden from the host here)."""
    snippet = re.search(r"In-process use.*?```python\n(.*?)```", DOC, re.S).group(1)
    env = {k: v for k, v in os.environ.items()
           if k not in ("AzureWebJobsStorage", "COSMOS_ENDPOINT", "COSMOS_KEY") and not k.startswith("UCP_")}
    script = tmp_path / "snippet.py"
    script.write_text("import devstack.host_config\ndevstack.host_config._read_local_settings = lambda path: {}\n"
                      + snippet)
    run = subprocess.run([sys.executable, str(script)], cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.splitlines() == ["{'status': 'ok'}", "[]"]
