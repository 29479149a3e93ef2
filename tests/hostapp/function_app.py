"""A small Functions app for the local host's tests (tests/test_host.py): one function per behaviour.

Queue, container and schedule names come from app settings (`%HOSTAPP_PREFIX%` etc.) so each test run uses its
own. ATTEMPTS counts invocations by tag when the host runs in the test process.
"""
import asyncio
import json
import os
import threading
import time
from collections import Counter
from datetime import datetime, timezone

import azure.functions as func
import azurefunctions.extensions.bindings.blob as blob_sdk

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
ATTEMPTS: Counter = Counter()
CONCURRENCY = {"running": 0, "peak": 0}
_lock = threading.Lock()
STORAGE = "AzureWebJobsStorage"


def _json(value, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(value), status_code=status, mimetype="application/json")


@app.route(route="echo/{id:int}", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
def echo(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"id": req.route_params["id"], "params": dict(req.params), "method": req.method,
                  "body": req.get_body().decode(), "header": req.headers.get("x-test")},
                 status=201 if req.method == "POST" else 200)


@app.route(route="items/{name}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def item_by_name(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(f"param:{req.route_params['name']}")


@app.route(route="items/special", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def item_special(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("literal")


@app.route(route="files/{*rest}", methods=["GET"])
def files(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(req.route_params.get("rest", ""), headers={"X-Rest": "yes"})


@app.route(route="adm", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
def admin_only(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("admin ok")


@app.route(route="boom", auth_level=func.AuthLevel.ANONYMOUS)
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("do-not-leak-this-detail")


@app.route(route="async/{name}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def async_hello(req: func.HttpRequest) -> func.HttpResponse:
    await asyncio.sleep(0.01)
    return func.HttpResponse(f"hello {req.route_params['name']}")


@app.route(route="enqueue", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@app.queue_output(arg_name="out", queue_name="%HOSTAPP_PREFIX%-enqueued", connection=STORAGE)
def enqueue(req: func.HttpRequest, out: func.Out[str]) -> func.HttpResponse:
    out.set(req.get_body().decode())
    return func.HttpResponse(status_code=202)


@app.route(route="outputs/{*name}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@app.blob_input(arg_name="stored", path="%HOSTAPP_PREFIX%-out/{name}", connection=STORAGE)
def read_output(req: func.HttpRequest, stored: bytes) -> func.HttpResponse:
    if stored is None:
        return func.HttpResponse(status_code=404)
    return func.HttpResponse(stored, mimetype="application/octet-stream")


@app.blob_trigger(arg_name="blob", path="%HOSTAPP_PREFIX%-in/{name}", connection=STORAGE,
                  source=func.BlobSource.EVENT_GRID)
@app.queue_output(arg_name="seen", queue_name="%HOSTAPP_PREFIX%-seen", connection=STORAGE)
@app.blob_output(arg_name="copy", path="%HOSTAPP_PREFIX%-out/{name}.len", connection=STORAGE)
def on_blob(blob: func.InputStream, seen: func.Out[str], copy: func.Out[str]) -> None:
    if "fail" in blob.name:
        ATTEMPTS[blob.name] += 1
        raise ValueError("this blob always fails")
    first = blob.read(3)
    data = first + blob.read()
    seen.set(json.dumps({"name": blob.name, "length": blob.length, "read": len(data), "uri": blob.uri,
                         "etag": blob.blob_properties.get("ETag"), "metadata": blob.metadata,
                         "content_type": blob.blob_properties.get("ContentType")}))
    copy.set(str(len(data)))


@app.blob_trigger(arg_name="client", path="%HOSTAPP_PREFIX%-sdk/{name}", connection=STORAGE,
                  source=func.BlobSource.EVENT_GRID)
@app.queue_output(arg_name="seen", queue_name="%HOSTAPP_PREFIX%-seen", connection=STORAGE)
def on_blob_sdk(client: blob_sdk.BlobClient, seen: func.Out[str]) -> None:
    """An SDK-type binding: a storage BlobClient for the blob, no content passed."""
    seen.set(json.dumps({"name": f"{client.container_name}/{client.blob_name}", "type": type(client).__module__,
                         "content": client.download_blob().readall().decode()}))


@app.queue_trigger(arg_name="msg", queue_name="%HOSTAPP_PREFIX%-work", connection=STORAGE)
@app.queue_output(arg_name="done", queue_name="%HOSTAPP_PREFIX%-done", connection=STORAGE)
def on_work(msg: func.QueueMessage, done: func.Out[str], context: func.Context) -> None:
    body = msg.get_json()
    ATTEMPTS[body["tag"]] += 1
    if body["action"] == "fail":
        raise RuntimeError("this message always fails")
    if body["action"] == "sleep":
        with _lock:
            CONCURRENCY["running"] += 1
            CONCURRENCY["peak"] = max(CONCURRENCY["peak"], CONCURRENCY["running"])
        try:
            time.sleep(body["seconds"])
        finally:
            with _lock:
                CONCURRENCY["running"] -= 1
    if body["action"] == "multi":
        done.set([json.dumps({"tag": body["tag"], "part": i}) for i in range(3)])
        return
    done.set(json.dumps({"tag": body["tag"], "dequeue_count": msg.dequeue_count, "id": msg.id, "pid": os.getpid(),
                         "invocation": context.invocation_id, "function": context.function_name}))


def _tick(timer: func.TimerRequest) -> str:
    return json.dumps({"at": datetime.now(timezone.utc).isoformat(), "past_due": timer.past_due})


@app.timer_trigger(arg_name="timer", schedule="%HOSTAPP_TICK%", run_on_startup=False, use_monitor=False)
@app.queue_output(arg_name="out", queue_name="%HOSTAPP_PREFIX%-ticks", connection=STORAGE)
def tick(timer: func.TimerRequest, out: func.Out[str]) -> None:
    out.set(_tick(timer))


@app.timer_trigger(arg_name="timer", schedule="0 0 0 1 1 *", run_on_startup=True, use_monitor=False)
@app.queue_output(arg_name="out", queue_name="%HOSTAPP_PREFIX%-startup", connection=STORAGE)
def on_startup(timer: func.TimerRequest, out: func.Out[str]) -> None:
    out.set(_tick(timer))


@app.timer_trigger(arg_name="timer", schedule="%HOSTAPP_MONITORED%", run_on_startup=False, use_monitor=True)
@app.queue_output(arg_name="out", queue_name="%HOSTAPP_PREFIX%-monitored", connection=STORAGE)
def monitored(timer: func.TimerRequest, out: func.Out[str]) -> None:
    out.set(_tick(timer))


@app.queue_trigger(arg_name="msg", queue_name="%HOSTAPP_NEVER_SET%", connection=STORAGE)
def misconfigured(msg: func.QueueMessage) -> None:
    """Its queue name does not resolve: the host lists it in error and runs the others (like the real host)."""
