"""The Cosmos DB emulator launcher (devstack/cosmos-launcher.js) speaks Cosmos DB to the raw azure-cosmos SDK:
the behaviours ucp relies on, each of which upstream @vercel/cosmosdb-server 1.0.1 gets wrong on its own."""
from __future__ import annotations

import http.client
import json
import re
import signal
import ssl
import subprocess
import time
import uuid
import warnings

import pytest
from azure.core import MatchConditions
from azure.cosmos import CosmosClient, PartitionKey, exceptions

from devstack.stack import COSMOS_LAUNCHER, ROOT
from shared.settings import COSMOS_EMULATOR_KEY

warnings.filterwarnings("ignore", message="Unverified HTTPS request")


@pytest.fixture(scope="module")
def database(local_stack):
    client = CosmosClient(local_stack.env["COSMOS_ENDPOINT"], COSMOS_EMULATOR_KEY)
    return client.create_database_if_not_exists("emulator-tests")


@pytest.fixture
def container(database):
    return database.create_container(f"c-{uuid.uuid4().hex[:8]}", partition_key=PartitionKey("/pk"))


def fill(container, n=6):
    for i in range(n):
        container.create_item({"id": f"i{i}", "pk": "a" if i % 2 else "b", "n": i})


def test_missing_read_is_404_not_500(container):
    fill(container, 2)
    with pytest.raises(exceptions.CosmosResourceNotFoundError) as err:
        container.read_item("nope", partition_key="a")
    assert err.value.status_code == 404
    with pytest.raises(exceptions.CosmosResourceNotFoundError):
        container.read_item("i1", partition_key="b")  # exists, but in partition "a"
    assert container.read_item("i1", partition_key="a")["n"] == 1


def test_query_with_partition_key_sees_only_that_partition(container):
    fill(container)
    rows = container.query_items("SELECT * FROM c WHERE c.n >= @n", parameters=[{"name": "@n", "value": 2}],
                                 partition_key="a")
    assert sorted(r["id"] for r in rows) == ["i3", "i5"]
    assert sorted(r["id"] for r in container.query_items("SELECT * FROM c", partition_key="b")) == ["i0", "i2", "i4"]
    assert list(container.query_items("SELECT VALUE COUNT(1) FROM c", partition_key="a")) == [3]
    assert len(list(container.query_items("SELECT * FROM c", enable_cross_partition_query=True))) == 6


def test_cross_partition_query_needs_the_flag_like_cosmos(container):
    fill(container)
    with pytest.raises(exceptions.CosmosHttpResponseError) as err:
        list(container.query_items("SELECT * FROM c WHERE c.n > 1"))
    assert err.value.status_code == 400 and "Cross partition query" in str(err.value)
    # A WHERE that pins the partition key is a single-partition query.
    assert [r["id"] for r in container.query_items("SELECT * FROM c WHERE c.pk = 'a' AND c.n = 1")] == ["i1"]


def test_query_paging_with_continuation(container):
    fill(container, 11)
    pager = container.query_items("SELECT * FROM c ORDER BY c.n DESC", enable_cross_partition_query=True,
                                  max_item_count=4).by_page()
    pages = [[r["n"] for r in page] for page in pager]
    assert pages == [[10, 9, 8, 7], [6, 5, 4, 3], [2, 1, 0]]


def test_query_semantics_follow_cosmos(container):
    container.create_item({"id": "num", "pk": "p", "v": 1, "tags": ["x", "y"]})
    container.create_item({"id": "str", "pk": "p", "v": "x", "tags": ["x"]})
    container.create_item({"id": "none", "pk": "p"})

    def run(sql):
        return sorted(r["id"] if isinstance(r, dict) and "id" in r else r for r in
                      container.query_items(sql, partition_key="p"))

    assert run("SELECT * FROM c WHERE c.v != 'x'") == []  # number vs string: undefined, not true
    assert run("SELECT * FROM c WHERE NOT (c.v = 'x')") == []
    assert run("SELECT * FROM c WHERE NOT (c.v = 'y')") == ["str"]
    ordered = [r["id"] for r in container.query_items("SELECT * FROM c ORDER BY c.v", partition_key="p")]
    assert ordered == ["none", "num", "str"]  # items without the property are kept, first
    # JOIN rows (the FROM rewrite to linear time must not change them)
    rows = list(container.query_items("SELECT c.id, t FROM c JOIN t IN c.tags WHERE t = 'x'", partition_key="p"))
    assert sorted((r["id"], r["t"]) for r in rows) == [("num", "x"), ("str", "x")]
    assert run("SELECT VALUE t FROM c JOIN t IN c.tags") == ["x", "x", "y"]


@pytest.mark.parametrize("write", ["replace", "upsert", "delete"])
def test_stale_etag_is_412(container, write):
    stale = container.create_item({"id": "x", "pk": "a", "v": 1})["_etag"]
    fresh = container.upsert_item({"id": "x", "pk": "a", "v": 2})["_etag"]
    assert fresh != stale
    cond = {"etag": stale, "match_condition": MatchConditions.IfNotModified}
    with pytest.raises(exceptions.CosmosAccessConditionFailedError) as err:
        if write == "replace":
            container.replace_item("x", {"id": "x", "pk": "a", "v": 3}, **cond)
        elif write == "upsert":
            container.upsert_item({"id": "x", "pk": "a", "v": 3}, **cond)
        else:
            container.delete_item("x", partition_key="a", **cond)
    assert err.value.status_code == 412
    assert container.read_item("x", partition_key="a")["v"] == 2


def test_duplicate_create_is_409_per_partition(container):
    container.create_item({"id": "x", "pk": "a"})
    with pytest.raises(exceptions.CosmosResourceExistsError) as err:
        container.create_item({"id": "x", "pk": "a"})
    assert err.value.status_code == 409
    container.create_item({"id": "x", "pk": "b"})  # same id, other partition: a different item


def test_batch_with_partition_key_header_and_patch(container):
    fill(container)
    results = container.execute_item_batch([
        ("create", ({"id": "new", "pk": "a", "n": 100},)),
        ("upsert", ({"id": "i1", "pk": "a", "n": 11},)),
        ("patch", ("i3", [{"op": "incr", "path": "/n", "value": 10}, {"op": "add", "path": "/tag", "value": "t"}])),
        ("read", ("i5",)),
        ("delete", ("new",)),
    ], partition_key="a")
    assert [r["statusCode"] for r in results] == [201, 200, 200, 200, 204]
    assert container.read_item("i3", partition_key="a")["n"] == 13
    assert container.read_item("i3", partition_key="a")["tag"] == "t"
    assert results[3]["resourceBody"]["id"] == "i5"


def snapshot(container):
    return sorted((d["id"], d["pk"], d.get("n"), d["_etag"]) for d in container.read_all_items())


def test_failed_batch_leaves_nothing(container):
    fill(container)
    before = snapshot(container)
    with pytest.raises(exceptions.CosmosBatchOperationError) as err:
        container.execute_item_batch([
            ("create", ({"id": "new", "pk": "a"},)),
            ("replace", ("i1", {"id": "i1", "pk": "a", "n": -1})),
            ("patch", ("i3", [{"op": "set", "path": "/n", "value": -3}])),
            ("delete", ("i5",)),
            ("create", ({"id": "i1", "pk": "a"},)),  # 409: everything above must be undone
            ("upsert", ({"id": "later", "pk": "a"},)),
        ], partition_key="a")
    assert err.value.error_index == 4
    assert [r["statusCode"] for r in err.value.operation_responses] == [424, 424, 424, 424, 409, 424]
    assert snapshot(container) == before
    # and the container still works normally afterwards (ids and _rid bookkeeping restored)
    container.create_item({"id": "new", "pk": "a"})
    assert container.read_item("new", partition_key="a")["id"] == "new"


def test_failed_batch_on_stale_etag(container):
    fill(container)
    stale = container.read_item("i1", partition_key="a")["_etag"]
    container.upsert_item({"id": "i1", "pk": "a", "n": 50})
    before = snapshot(container)
    with pytest.raises(exceptions.CosmosBatchOperationError) as err:
        container.execute_item_batch([
            ("upsert", ({"id": "i3", "pk": "a", "n": 0},)),
            ("replace", ("i1", {"id": "i1", "pk": "a", "n": 0}), {"if_match_etag": stale}),
        ], partition_key="a")
    assert err.value.error_index == 1 and err.value.operation_responses[1]["statusCode"] == 412
    assert snapshot(container) == before


def test_batch_rejects_documents_of_another_partition(container):
    with pytest.raises(exceptions.CosmosBatchOperationError):
        container.execute_item_batch([("create", ({"id": "x", "pk": "a"},)), ("create", ({"id": "y", "pk": "b"},))],
                                     partition_key="a")
    assert snapshot(container) == []


def drain(container, feed_pages, token=None):
    """All items of a change feed read, and the continuation to read on from. When nothing changed the SDK's
    pager has no token (it stops before unpacking an empty page); keep the previous one, or for a first read
    take the feed position from the last response."""
    items = [doc for page in feed_pages for doc in page]
    return items, feed_pages.continuation_token or token or container.client_connection.last_response_headers["etag"]


def test_change_feed_returns_new_writes_after_a_continuation(container):
    fill(container, 4)
    items, token = drain(container, container.query_items_change_feed(start_time="Beginning").by_page())
    assert sorted(d["id"] for d in items) == ["i0", "i1", "i2", "i3"]

    container.upsert_item({"id": "i2", "pk": "b", "n": 20})  # update
    container.create_item({"id": "i9", "pk": "a", "n": 9})  # insert
    container.delete_item("i0", partition_key="b")  # deletes are not in a latest-version feed
    items, token = drain(container, container.query_items_change_feed(continuation=token).by_page(), token)
    assert [(d["id"], d["n"]) for d in items] == [("i2", 20), ("i9", 9)]

    items, token = drain(container, container.query_items_change_feed(continuation=token).by_page(), token)
    assert items == []  # nothing new, and the continuation stays valid
    container.create_item({"id": "i10", "pk": "b"})
    items, _ = drain(container, container.query_items_change_feed(continuation=token).by_page(), token)
    assert [d["id"] for d in items] == ["i10"]


def test_change_feed_from_now_and_per_partition(container):
    fill(container, 4)
    items, token = drain(container, container.query_items_change_feed(start_time="Now").by_page())
    assert items == []
    container.create_item({"id": "n1", "pk": "a"})
    container.create_item({"id": "n2", "pk": "b"})
    items, _ = drain(container, container.query_items_change_feed(continuation=token).by_page(), token)
    assert [d["id"] for d in items] == ["n1", "n2"]
    only_b = [d["id"] for d in container.query_items_change_feed(start_time="Beginning", partition_key="b")]
    assert only_b == ["i0", "i2", "n2"]


def test_connections_are_kept_alive(local_stack):
    conn = http.client.HTTPSConnection("127.0.0.1", local_stack.cosmos_port, context=ssl._create_unverified_context())
    try:
        for _ in range(3):
            conn.request("GET", "/")
            response = conn.getresponse()
            body = json.loads(response.read())
            assert response.status == 200 and response.getheader("connection") == "keep-alive"
        first_socket = conn.sock
        conn.request("GET", "/")
        conn.getresponse().read()
        assert conn.sock is first_socket  # the same TLS connection served every request
    finally:
        conn.close()
    assert body["writableLocations"][0]["databaseAccountEndpoint"].startswith("https://")


def test_launcher_over_plain_http_and_clean_exit():
    proc = subprocess.Popen(["node", str(COSMOS_LAUNCHER), "--host", "127.0.0.1", "--port", "0", "--no-ssl"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        ready = re.fullmatch(r"cosmos-launcher ready on http://127\.0\.0\.1:(\d+)/", proc.stdout.readline().strip())
        assert ready and int(ready.group(1)) > 0
        port = int(ready.group(1))
        # endpoint discovery works over http because the account advertises http locations
        client = CosmosClient(f"http://127.0.0.1:{port}/", COSMOS_EMULATOR_KEY)
        c = client.create_database_if_not_exists("d").create_container_if_not_exists("c", PartitionKey("/pk"))
        c.upsert_item({"id": "x", "pk": "x"})
        assert c.read_item("x", partition_key="x")["id"] == "x"
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0 and time.monotonic() - started < 3
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("args, message", [
    (["--bogus"], "unknown argument --bogus"),
    (["--port", "99999"], "--port must be 0-65535"),
    (["--cert", "c.pem"], "--cert and --key go together"),
])
def test_launcher_rejects_bad_arguments(args, message):
    done = subprocess.run(["node", str(COSMOS_LAUNCHER), *args], cwd=ROOT, capture_output=True, text=True, timeout=20)
    assert done.returncode == 2 and message in done.stderr


# Queries whose results must not change under the launcher's engine patches (linear FROM/JOIN, compiled-query
# cache, sort and paging rewrites): each runs through the launcher and through the untouched upstream engine.
SAME_AS_UPSTREAM = [
    "SELECT * FROM c",
    "SELECT c.id, c.n FROM c WHERE c.n > 2 AND c.kind = 'x'",
    "SELECT c.id, t FROM c JOIN t IN c.tags",
    "SELECT c.id, t, u FROM c JOIN t IN c.tags JOIN u IN c.tags WHERE t != u",
    "SELECT VALUE c.id FROM c WHERE ARRAY_CONTAINS(c.tags, 'b')",
    "SELECT VALUE c.id FROM c WHERE EXISTS(SELECT VALUE t FROM t IN c.tags WHERE t = 'a')",
    "SELECT c.id, ARRAY(SELECT VALUE t FROM t IN c.tags WHERE t != 'a') AS rest FROM c",
    "SELECT VALUE COUNT(1) FROM c",
    "SELECT VALUE SUM(c.n) FROM c WHERE c.kind = 'y'",
    "SELECT TOP 3 c.id FROM c ORDER BY c.n DESC",
    "SELECT c.id FROM c WHERE c.label = '[...$, x]' OR STARTSWITH(c.label, '[...$')",
    "SELECT c.id, c.meta.deep.v AS v FROM c WHERE IS_DEFINED(c.meta.deep.v) ORDER BY c.id",
]

UPSTREAM_RUNNER = """
const path = require("path");
const root = process.argv[1];
const serverDir = path.dirname(require.resolve("@vercel/cosmosdb-server/package.json", { paths: [root] }));
const query = require(require.resolve("@zeit/cosmosdb-query", { paths: [serverDir] })).default;
const { docs, queries } = JSON.parse(require("fs").readFileSync(0, "utf8"));
console.log(JSON.stringify(queries.map((q) => query(q).exec(docs).result)));
"""


def test_query_results_match_the_upstream_engine(container):
    for i in range(40):
        container.create_item({"id": f"d{i:02d}", "pk": f"p{i % 3}", "n": i % 7, "kind": "xy"[i % 2],
                               "tags": ["a", "b", "c"][: i % 4], "label": ["[...$, x]", "[...$ok", "plain"][i % 3],
                               **({"meta": {"deep": {"v": i}}} if i % 5 == 0 else {})})
    docs = list(container.read_all_items())
    done = subprocess.run(["node", "-e", UPSTREAM_RUNNER, str(ROOT)], input=json.dumps(
        {"docs": docs, "queries": SAME_AS_UPSTREAM}), capture_output=True, text=True, timeout=60, check=True)
    upstream = json.loads(done.stdout)
    for sql, expected in zip(SAME_AS_UPSTREAM, upstream):
        got = list(container.query_items(sql, enable_cross_partition_query=True))
        if "ORDER BY" in sql:
            assert got == expected, sql
        else:
            key = lambda r: json.dumps(r, sort_keys=True)  # noqa: E731
            assert sorted(got, key=key) == sorted(expected, key=key), sql
        assert got, f"{sql} returned nothing: the comparison would prove nothing"


def test_patch_filter_predicates_keep_their_case(container):
    container.create_item({"id": "x", "pk": "a", "Status": "Active", "n": 1})
    patched = container.patch_item("x", partition_key="a", patch_operations=[{"op": "incr", "path": "/n", "value": 1}],
                                   filter_predicate="FROM c WHERE c.Status = 'Active'")
    assert patched["n"] == 2
    with pytest.raises(exceptions.CosmosAccessConditionFailedError):
        container.patch_item("x", partition_key="a", patch_operations=[{"op": "incr", "path": "/n", "value": 1}],
                             filter_predicate="FROM c WHERE c.Status = 'active'")
    with pytest.raises(exceptions.CosmosBatchOperationError) as err:
        container.execute_item_batch([
            ("upsert", ({"id": "y", "pk": "a"},)),
            ("patch", ("x", [{"op": "set", "path": "/n", "value": 0}]), {"filter_predicate": "FROM c WHERE c.n > 5"}),
        ], partition_key="a")
    assert err.value.operation_responses[1]["statusCode"] == 412
    assert container.read_item("x", partition_key="a")["n"] == 2
    with pytest.raises(exceptions.CosmosResourceNotFoundError):
        container.read_item("y", partition_key="a")
