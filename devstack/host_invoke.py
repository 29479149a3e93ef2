"""Invoking user functions: arguments from bindings, sync or async, output bindings written after success.

Sync functions run on the calling thread (each trigger owns its threads); async functions all run on one event
loop thread, like the Python worker. Logs carry function names, invocation ids and durations, never payloads.
"""
from __future__ import annotations

import asyncio
import base64
import inspect
import json
import logging
import re
import threading
import time
import typing
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

import azure.functions as func
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.functions import _abc as func_abc

from .host_config import AppSettings, Connections, HostConfigError

log = logging.getLogger("devstack.host")

_BINDING_EXPR = re.compile(r"\{([^{}]+)\}")


class Out(func.Out):
    """The value a function sets on an output binding argument (func.Out[T])."""

    def __init__(self) -> None:
        self._value: Any = None

    def set(self, val: Any) -> None:
        self._value = val

    def get(self) -> Any:
        return self._value


class _TraceContext(func_abc.TraceContext):
    def __init__(self) -> None:
        self._parent = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-00"

    @property
    def trace_state(self) -> str:
        return ""

    @property
    def trace_parent(self) -> str:
        return self._parent

    @property
    def attributes(self) -> dict:
        return {}


class _RetryContext(func_abc.RetryContext):
    def __init__(self, retry_count: int, max_retry_count: int) -> None:
        self._count, self._max = retry_count, max_retry_count

    @property
    def retry_count(self) -> int:
        return self._count

    @property
    def max_retry_count(self) -> int:
        return self._max

    @property
    def exception(self):
        return None


class Context(func_abc.Context):
    """func.Context for functions that declare a `context` parameter."""

    _local = threading.local()

    def __init__(self, invocation_id: str, function_name: str, directory: str, retry: tuple[int, int]) -> None:
        self._id, self._name, self._dir = invocation_id, function_name, directory
        self._trace, self._retry = _TraceContext(), _RetryContext(*retry)

    @property
    def invocation_id(self) -> str:
        return self._id

    @property
    def thread_local_storage(self):
        return self._local

    @property
    def function_name(self) -> str:
        return self._name

    @property
    def function_directory(self) -> str:
        return self._dir

    @property
    def trace_context(self):
        return self._trace

    @property
    def retry_context(self):
        return self._retry


@dataclass
class Binding:
    """One binding of a function, from its function.json form, with %settings% already resolved."""

    type: str
    name: str
    direction: str
    attrs: dict[str, Any]

    @property
    def is_output(self) -> bool:
        return self.direction.upper() == "OUT"


@dataclass
class FunctionSpec:
    """What the host knows about one function: its bindings and the Python callable."""

    name: str
    trigger: Binding
    bindings: list[Binding]
    user_function: Callable
    directory: str
    error: str | None = None
    param_types: dict[str, Any] = field(default_factory=dict)

    @property
    def trigger_type(self) -> str:
        return self.trigger.type

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.user_function)

    @property
    def outputs(self) -> list[Binding]:
        return [b for b in self.bindings if b.is_output and b.type != "http"]


def load_spec(fn, settings: AppSettings, directory: str) -> FunctionSpec:
    """Turn an azure.functions Function into a FunctionSpec; a binding that cannot resolve marks it in error."""
    name = fn.get_function_name()
    user_function = fn.get_user_function()
    raw = json.loads(fn.get_function_json())["bindings"]
    error = None
    bindings = []
    for b in raw:
        attrs = dict(b)
        try:
            for key, value in b.items():
                if isinstance(value, str) and key not in ("type", "name", "direction"):
                    attrs[key] = settings.resolve(value, f"function {name}, binding '{b['name']}' {key}")
        except HostConfigError as err:
            error = str(err)
        bindings.append(Binding(b["type"], b["name"], b.get("direction", "IN"), attrs))
    trigger = next((b for b in bindings if b.type.endswith("Trigger")), None)
    if trigger is None:
        raise HostConfigError(f"function {name} has no trigger")
    try:
        hints = typing.get_type_hints(user_function)
    except Exception:  # unresolvable annotations: fall back to the defaults
        hints = {}
    params = inspect.signature(user_function).parameters
    missing = [b.name for b in bindings if b.name != "$return" and b.name not in params]
    if missing and error is None:
        error = f"function {name}: binding(s) {missing} have no parameter of that name"
    return FunctionSpec(name, trigger, bindings, user_function, directory, error,
                        {p: hints.get(p) for p in params})


def resolve_binding_data(template: str, data: dict[str, Any], where: str) -> str:
    """`{name}`-style binding expressions from trigger data, plus {rand-guid} and {DateTime} like the host."""
    lowered = {k.lower(): v for k, v in data.items()}

    def value(m: re.Match) -> str:
        key = m.group(1)
        if key.lower() == "rand-guid":
            return str(uuid.uuid4())
        if key.lower() == "datetime":
            return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H-%M-%SZ")
        found = lowered.get(key.lower())
        if found is None:
            raise HostConfigError(f"{where}: binding expression '{{{key}}}' has no value in the trigger data")
        return str(found)

    return _BINDING_EXPR.sub(value, template)


class InvocationFailed(Exception):
    """The function raised (or an output binding could not be written). The original is the __cause__."""


class Invoker:
    """Runs user functions and writes their output bindings."""

    def __init__(self, connections: Connections, message_encoding: str = "base64") -> None:
        self.connections = connections
        self.message_encoding = message_encoding
        self.on_enqueue: Callable[[str, str], None] = lambda connection, queue: None
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self._loop.run_forever, name="host-async", daemon=True)
        self._loop_thread.start()
        self._created: set[tuple[str, str, str]] = set()
        self._lock = threading.Lock()

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)

    def invoke(self, spec: FunctionSpec, trigger_value: Any, trigger_data: dict[str, Any], reason: str,
               retry: tuple[int, int] = (0, 0)) -> Any:
        """Call the function with its trigger value; returns its return value. Raises InvocationFailed."""
        invocation_id = str(uuid.uuid4())
        started = time.perf_counter()
        log.info("Executing 'Functions.%s' (Reason='%s', Id=%s)", spec.name, reason, invocation_id)
        try:
            kwargs, outs = self._arguments(spec, trigger_value, trigger_data, invocation_id, retry)
            result = self._call(spec, kwargs)
            self._write_outputs(spec, outs, result, trigger_data)
            named_http = [b.name for b in spec.bindings if b.type == "http" and b.name != "$return"]
            if named_http:
                result = outs[named_http[0]].get()
        except BaseException as err:
            ms = (time.perf_counter() - started) * 1000
            log.error("Executed 'Functions.%s' (Failed, Id=%s, Duration=%.0fms): %s%s", spec.name, invocation_id,
                      ms, type(err).__name__, _where(err))
            log.debug("Failure detail for %s", invocation_id, exc_info=err)
            raise InvocationFailed(f"{spec.name} failed: {type(err).__name__}") from err
        ms = (time.perf_counter() - started) * 1000
        log.info("Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%.0fms)", spec.name, invocation_id, ms)
        return result

    def _call(self, spec: FunctionSpec, kwargs: dict[str, Any]) -> Any:
        if spec.is_async:
            return asyncio.run_coroutine_threadsafe(spec.user_function(**kwargs), self._loop).result()
        result = spec.user_function(**kwargs)
        if inspect.isawaitable(result):
            return asyncio.run_coroutine_threadsafe(_await(result), self._loop).result()
        return result

    def _arguments(self, spec: FunctionSpec, trigger_value: Any, trigger_data: dict[str, Any],
                   invocation_id: str, retry: tuple[int, int]) -> tuple[dict[str, Any], dict[str, Out]]:
        kwargs: dict[str, Any] = {spec.trigger.name: trigger_value}
        outs: dict[str, Out] = {}
        for b in spec.bindings:
            if b is spec.trigger or b.name == "$return":
                continue
            if b.is_output:
                outs[b.name] = kwargs[b.name] = Out()
            elif b.type == "blob":
                kwargs[b.name] = self._read_input_blob(spec, b, trigger_data)
            else:
                raise HostConfigError(f"function {spec.name}: input binding type '{b.type}' is not supported "
                                      "by the local host")
        if "context" in spec.param_types and "context" not in kwargs:
            kwargs["context"] = Context(invocation_id, spec.name, spec.directory, retry)
        return kwargs, outs

    def _read_input_blob(self, spec: FunctionSpec, b: Binding, trigger_data: dict[str, Any]) -> Any:
        from .host_blob import blob_argument

        path = resolve_binding_data(b.attrs["path"], trigger_data, f"function {spec.name}, input '{b.name}'")
        container, _, name = path.partition("/")
        client = self.connections.get(b.attrs.get("connection")).blob_service.get_blob_client(container, name)
        try:
            props = client.get_blob_properties()
        except ResourceNotFoundError:
            return None
        return blob_argument(client, props, spec.param_types.get(b.name), container)

    def _write_outputs(self, spec: FunctionSpec, outs: dict[str, Out], result: Any, data: dict[str, Any]) -> None:
        for b in spec.outputs:
            value = result if b.name == "$return" else outs[b.name].get()
            if value is None:
                continue
            where = f"function {spec.name}, output '{b.name}'"
            if b.type == "queue":
                self._send_messages(b, value, where)
            elif b.type == "blob":
                self._upload_blob(b, value, data, where)
            else:
                raise HostConfigError(f"{where}: output binding type '{b.type}' is not supported by the local host")

    def _send_messages(self, b: Binding, value: Any, where: str) -> None:
        items = value if isinstance(value, (list, tuple)) else [value]
        queue_name = b.attrs["queueName"].lower()
        connection = self.connections.get(b.attrs.get("connection"))
        client = connection.queue(queue_name)
        self._ensure_created("queue", connection.name, queue_name, client.create_queue)
        for item in items:
            client.send_message(encode_message(item, where, self.message_encoding))
        self.on_enqueue(connection.name, queue_name)

    def _upload_blob(self, b: Binding, value: Any, data: dict[str, Any], where: str) -> None:
        if callable(getattr(value, "read", None)):
            value = value.read()
        if isinstance(value, str):
            value = value.encode("utf-8")
        if not isinstance(value, (bytes, bytearray)):
            raise TypeError(f"{where}: a blob output must be str, bytes or a file-like object, "
                            f"not {type(value).__name__}")
        path = resolve_binding_data(b.attrs["path"], data, where)
        container, _, name = path.partition("/")
        connection = self.connections.get(b.attrs.get("connection"))
        service = connection.blob_service
        self._ensure_created("container", connection.name, container, lambda: service.create_container(container))
        service.get_blob_client(container, name).upload_blob(bytes(value), overwrite=True)

    def _ensure_created(self, kind: str, connection: str, name: str, create: Callable[[], Any]) -> None:
        key = (kind, connection, name)
        if key in self._created:
            return
        try:
            create()
        except ResourceExistsError:
            pass
        with self._lock:
            self._created.add(key)


def encode_message(item: Any, where: str, encoding: str = "base64") -> str:
    """A queue output value as the host writes it: Base64 of the UTF-8 text (or of the bytes) by default."""
    if isinstance(item, func_abc.QueueMessage):
        item = item.get_body()
    if isinstance(item, str):
        item = item.encode("utf-8")
    if not isinstance(item, (bytes, bytearray)):
        raise TypeError(f"{where}: a queue message must be str, bytes or QueueMessage (or a list of them), "
                        f"not {type(item).__name__}")
    if encoding == "none":
        return bytes(item).decode("utf-8")
    return base64.b64encode(bytes(item)).decode("ascii")


async def _await(awaitable):
    return await awaitable


def _where(err: BaseException) -> str:
    """The innermost frame of a failure, so the log says where it failed without the (possibly PII) message."""
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return ""
    return f" at {tb.tb_frame.f_code.co_filename}:{tb.tb_lineno} in {tb.tb_frame.f_code.co_name}"
