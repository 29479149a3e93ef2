"""Store wrappers that make one call of one container method go wrong: a worker dying, or another worker acting."""
from __future__ import annotations

from typing import Any, Callable


class Died(Exception):
    """A worker dying between two store writes (not one of the engine's retried conflicts)."""


WRITES = frozenset({"create_item", "replace_item", "upsert_item", "delete_item"})


class InterceptingStore:
    """Wraps a store: at the `nth` call (1-based) of `method` on container `name` for which `when(*args)` holds,
    runs `before()` first, then the call; or, without `before`, dies (raises Died) instead of running it. Only
    that one call is intercepted; the others run normally. `name` None: any container; `method` None: any write."""

    def __init__(self, store, name: str | None, method: str | None, *, nth: int = 1,
                 when: Callable[..., bool] | None = None, before: Callable[[], Any] | None = None):
        self._store, self._name, self._method, self._nth = store, name, method, nth
        self._when = when or (lambda *args, **kwargs: True)
        self._before = before
        self.calls = 0  # matching calls so far
        self.intercepted = False

    def container(self, name: str):
        inner = self._store.container(name)
        return _Container(inner, self) if self._name in (None, name) else inner

    def _intercept(self, *args, **kwargs) -> None:
        if self.intercepted or not self._when(*args, **kwargs):
            return
        self.calls += 1
        if self.calls != self._nth:
            return
        self.intercepted = True
        if self._before is None:
            raise Died(f"worker died at {self._name or 'any container'}.{self._method or 'any write'}")
        self._before()


class _Container:
    def __init__(self, inner, outer: InterceptingStore):
        self._inner, self._outer = inner, outer

    def __getattr__(self, attr: str):
        value = getattr(self._inner, attr)
        if attr not in ((self._outer._method,) if self._outer._method else WRITES):
            return value

        def call(*args, **kwargs):
            self._outer._intercept(*args, **kwargs)
            return value(*args, **kwargs)

        return call


def crashing(store, name: str | None, method: str | None, *, nth: int = 1, when=None) -> InterceptingStore:
    """The store, with the worker dying at that call (None: at the nth write of any container, or of any kind)."""
    return InterceptingStore(store, name, method, nth=nth, when=when)


def hooked(store, name: str, method: str, *, nth: int = 1, hook: Callable[[], Any], when=None) -> InterceptingStore:
    """The store, with `hook()` (another worker acting) run just before that call."""
    return InterceptingStore(store, name, method, nth=nth, when=when, before=hook)
