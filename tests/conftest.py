"""Shared fixtures. The local stack (Azurite + Cosmos emulator) starts once per test session, on free
ports, the first time a test asks for it, and stops at the end even when tests fail."""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from devstack.stack import LocalStack
from shared.settings import Settings, get_settings
from shared.store import MemoryStore

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="session")
def local_stack():
    stack = LocalStack()
    env = stack.start()
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    get_settings.cache_clear()
    try:
        yield stack
    finally:
        stack.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        get_settings.cache_clear()


def unique_suffix() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture
def stack_settings(local_stack) -> Settings:
    """Settings for the running stack with names no other test uses (containers, queues, Cosmos prefix)."""
    sfx = unique_suffix()
    base = Settings()
    names = {f: f"{getattr(base, f)}-{sfx}" for f in (
        "landing_container", "quarantine_container", "failed_container", "models_container",
        "exports_container", "claims_container", "config_container", "resolve_queue", "activity_queue")}
    return base.model_copy(update={**names, "container_prefix": f"t{sfx}-"})


def settings_env(settings: Settings) -> dict[str, str]:
    """Environment variables that reproduce these settings in a child process (e.g. the local host)."""
    return settings.to_env()


@pytest.fixture
def cosmos_store(stack_settings):
    from shared.store.cosmos import CosmosStore

    s = stack_settings
    store = CosmosStore(s.cosmos_endpoint, s.cosmos_key, s.cosmos_database, prefix=s.container_prefix)
    store.bootstrap()
    return store


@pytest.fixture(params=["memory", "cosmos"])
def store(request):
    """The same test runs on both backends: they honour one contract."""
    if request.param == "memory":
        return MemoryStore()
    return request.getfixturevalue("cosmos_store")


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


_APP_FUNCTIONS: dict | None = None


def app_functions() -> dict:
    """The real app's functions by name. app.get_functions() may run only once per app, so it is cached here."""
    global _APP_FUNCTIONS
    if _APP_FUNCTIONS is None:
        import function_app

        _APP_FUNCTIONS = {f.get_function_name(): f for f in function_app.app.get_functions()}
    return _APP_FUNCTIONS


@pytest.fixture(scope="session")
def functions_by_name() -> dict:
    return app_functions()


@pytest.fixture
def app_env(stack_settings, monkeypatch):
    """Point the app, which reads its settings from the environment, at this test's containers and queues."""
    for k, v in settings_env(stack_settings).items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    yield stack_settings
    get_settings.cache_clear()
