#!/usr/bin/env node
/*
 * ucp's Cosmos DB (SQL API) emulator for local runs and tests.
 *
 *   node devstack/cosmos-launcher.js --host 127.0.0.1 --port 8081 [--no-ssl] [--cert c.pem --key k.pem]
 *
 * It serves npm @vercel/cosmosdb-server 1.0.1 (an in-memory Cosmos DB; it starts empty) and patches, at run
 * time and without editing node_modules, the places where that package and the Python azure-cosmos SDK
 * disagree with real Cosmos DB (measured in /work/shared/dev-stack/NOTES.md, section 3):
 *
 *   1. keep-alive         upstream answers "connection: close", so every request paid a new TLS handshake
 *                         (60-120 ms per call from Python); connections are now reused.
 *   2. point reads        reading a missing item crashed with a TypeError (HTTP 500); now 404 NotFound, and the
 *                         item must belong to the partition named in the request.
 *   3. queries            a partition key sent with a query was ignored (items of every partition came back);
 *                         now the query runs over that partition only. Cross-partition queries still need the
 *                         enable-cross-partition header, like real Cosmos DB.
 *   4. query semantics    equality between different JSON types is undefined (not false), and ORDER BY keeps
 *                         items that lack the sort property, both as documented for real Cosmos DB.
 *   5. transactional      the SDK sends the batch's partition key in a header (upstream wanted it per
 *      batch              operation and failed); a failed batch is rolled back as a whole; Patch works inside.
 *   6. linear queries     the SQL engine built its FROM list with [...acc, x] per document (quadratic: 40k docs
 *                         took 16 s per query); it now appends in place.
 *   7. change feed        upstream returned everything once and then 304 forever; every write now gets a
 *                         sequence number and the feed serves what changed after a continuation, optionally
 *                         for one partition key (the SDK names it by its hashed EPK range).
 *   8. --no-ssl           the account advertised https locations even on a plain-HTTP port; it now advertises
 *                         the scheme it serves, so SDK endpoint discovery works.
 *
 *   9. patch predicates   upstream lower-cased patch filter predicates (c.Status = 'Active' never matched); they
 *                         are now evaluated as written.
 *
 * Not emulated (see docs/local-stack.md): OFFSET/LIMIT, GROUP BY, DISTINCT, LIKE, TTL, request units,
 * throttling, consistency levels.
 *
 * Prints one line "cosmos-launcher ready on <url>" when it accepts connections; exits 0 on SIGTERM/SIGINT.
 */
"use strict";

const fs = require("fs");
const path = require("path");

// ---------------------------------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------------------------------

const USAGE = "usage: node devstack/cosmos-launcher.js --host HOST --port PORT [--no-ssl] [--cert CERT.pem --key KEY.pem]";

function parseArgs(argv) {
  const opts = { host: "127.0.0.1", port: 8081, ssl: true, cert: null, key: null };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) fail(`${arg} needs a value`);
      i += 1;
      return argv[i];
    };
    if (arg === "--host") opts.host = value();
    else if (arg === "--port" || arg === "-p") opts.port = Number(value());
    else if (arg === "--no-ssl") opts.ssl = false;
    else if (arg === "--cert") opts.cert = value();
    else if (arg === "--key") opts.key = value();
    else if (arg === "--help" || arg === "-h") {
      console.log(USAGE);
      process.exit(0);
    } else fail(`unknown argument ${arg}`);
  }
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) fail("--port must be 0-65535");
  if (Boolean(opts.cert) !== Boolean(opts.key)) fail("--cert and --key go together");
  if (opts.cert && !opts.ssl) fail("--cert/--key make no sense with --no-ssl");
  return opts;
}

function fail(message) {
  console.error(`cosmos-launcher: ${message}\n${USAGE}`);
  process.exit(2);
}

// Optional fault injection and persistence for chaos runs (--data-file, --throttle-rate): devstack/cosmos-chaos.js.
const chaos = require("./cosmos-chaos.js");
const chaosArgs = chaos.takeOptions(process.argv.slice(2));
const options = parseArgs(chaosArgs.rest);

// ---------------------------------------------------------------------------------------------------------
// Loading the package. This file lives in devstack/, so plain require() would search devstack/node_modules
// first; resolve from the project root, and resolve the SQL engine from the server package itself so we patch
// the very module instance the server uses.
// ---------------------------------------------------------------------------------------------------------

const PROJECT_ROOT = path.resolve(__dirname, "..");
const SERVER_PKG = "@vercel/cosmosdb-server";

function resolveFrom(base, id) {
  try {
    return require.resolve(id, { paths: [base] });
  } catch (err) {
    console.error(`cosmos-launcher: cannot find ${id} from ${base}: run 'npm ci' in ${PROJECT_ROOT}`);
    process.exit(3);
  }
}

const serverDir = path.dirname(resolveFrom(PROJECT_ROOT, `${SERVER_PKG}/package.json`));
const serverModule = (rel) => require(resolveFrom(serverDir, `./lib/${rel}`));
const queryModule = (rel) => require(resolveFrom(serverDir, `@zeit/cosmosdb-query/lib/${rel}`));

const readBody = serverModule("json").default;
const readItems = serverModule("handler/_read-items").default;
const isTrueHeader = serverModule("true-header").default;
const documentOps = serverModule("handler/_document-operations");
const patchOps = serverModule("handler/_patch-operations");
const Items = serverModule("account/items").default;
const sqlHelpers = queryModule("helpers");
const sqlAggregates = queryModule("aggregate-functions");
const sqlBuiltins = queryModule("builtin-functions");
const sqlTransformer = queryModule("transformer");
const sqlExecutor = queryModule("executor");
const sqlContinuation = queryModule("continuation-token");
const { SyntaxError: SqlSyntaxError } = require(resolveFrom(serverDir, "@zeit/cosmosdb-query"));

// ---------------------------------------------------------------------------------------------------------
// Small helpers shared by the patches
// ---------------------------------------------------------------------------------------------------------

const NOT_FOUND = { code: "NotFound", message: "Entity with the specified id does not exist in the system." };

function reply(res, status, body) {
  res.statusCode = status;
  return body;
}

// The partition key value of a request: the SDK sends a JSON array ('["a"]'); '[{}]' / '[]' mean "none".
function partitionKeyOf(req) {
  let raw = req.headers["x-ms-documentdb-partitionkey"];
  if (Array.isArray(raw)) [raw] = raw;
  if (!raw) return undefined;
  let parsed;
  try {
    parsed = JSON.parse(raw);
  } catch (err) {
    return undefined;
  }
  const value = Array.isArray(parsed) ? parsed[0] : parsed;
  if (value !== null && typeof value === "object") return undefined;
  return value;
}

// The partition key path of a collection as a list of property names (["owner"] for "/owner").
function partitionPath(collectionData) {
  const paths = ((collectionData && collectionData.partitionKey) || {}).paths || ["/id"];
  const parts = paths[0].slice(1).split("/");
  return parts.length === 1 && parts[0] === "_partitionKey" ? ["id"] : parts;
}

function valueAt(doc, keys) {
  let value = doc;
  for (const key of keys) {
    if (value === null || typeof value !== "object") return undefined;
    value = value[key];
  }
  return value;
}

function documentsOf(collection) {
  return [...collection.documents._data.values()].map((item) => item.read());
}

// Replace a handler module's export. Must run before the server's routes table is loaded, because that table
// captures the handler functions when it is built.
function replaceHandler(name, make) {
  const mod = serverModule(`handler/${name}`);
  mod.default = make(mod.default);
}

// ---------------------------------------------------------------------------------------------------------
// 2. Point reads: 404 for a missing item (upstream dereferenced undefined -> 500), and the partition must match.
// ---------------------------------------------------------------------------------------------------------

replaceHandler("read-document", () => (account, req, res, { dbId, collId, docId }) => {
  const collection = account.database(dbId).collection(collId);
  const collectionData = collection.read();
  if (!collectionData) return reply(res, 404, { ...NOT_FOUND });
  const pk = partitionKeyOf(req);
  const doc = collection.document(docId, pk === undefined ? docId : pk).read();
  // collection.document() falls back to looking the id up as a _rid, so check the id and partition too.
  if (!doc || doc.id !== docId) return reply(res, 404, { ...NOT_FOUND });
  if (pk !== undefined && valueAt(doc, partitionPath(collectionData)) !== pk) return reply(res, 404, { ...NOT_FOUND });
  return reply(res, 200, doc);
});

// If-Match: * means "any version" (MatchConditions.IfPresent); upstream compared it to the etag literally.
for (const name of ["replaceOperation", "deleteOperation", "upsertOperation"]) {
  const original = documentOps[name];
  documentOps[name] = (collection, input) =>
    original(collection, input.ifMatch === "*" ? { ...input, ifMatch: undefined } : input);
}

// Patch filter predicates (patch_item(filter_predicate="FROM c WHERE c.Status = 'Active'")): upstream
// lower-cased the whole predicate, so property names and string literals with capitals never matched (412).
// Evaluate the predicate as written against the one document being patched, then let upstream patch it.
const { parsePartitionKey } = serverModule("utils/get-partition-from-header");
const upstreamPatch = patchOps.patchOperation;
patchOps.patchOperation = (collection, input) => {
  if (!input.condition) return upstreamPatch(collection, input);
  const unconditional = { ...input, condition: undefined };
  let doc;
  try {
    doc = collection.document(input.id, parsePartitionKey(input.partitionKey, input.id)).read();
  } catch (err) {
    doc = undefined;
  }
  if (!doc || doc.id !== input.id) return upstreamPatch(collection, unconditional); // upstream answers 404
  const condition = String(input.condition).trim();
  let sql = condition;
  if (/^from\s/i.test(condition)) sql = `SELECT * ${condition}`;
  else if (/^where\s/i.test(condition)) sql = `SELECT * FROM c ${condition}`;
  let holds;
  try {
    const items = collection.documents;
    holds = items._getQuery(sql).exec([doc], { udf: items._userDefinedFunctions() }).result.length > 0;
  } catch (err) {
    return { statusCode: 400, body: { code: "BadRequest", message: `invalid patch condition: ${err.message}` } };
  }
  if (!holds) {
    return { statusCode: 412, body: { code: "PreconditionFailed", message: "Condition specified in the patch request is not satisfied." } };
  }
  return upstreamPatch(collection, unconditional);
};

// ---------------------------------------------------------------------------------------------------------
// 3. Queries scoped to the partition key the client sends.
// ---------------------------------------------------------------------------------------------------------

const CROSS_PARTITION_REQUIRED =
  "Cross partition query is required but disabled. Please set x-ms-documentdb-query-enablecrosspartition to " +
  "true, specify x-ms-documentdb-partitionkey, or revise your query to avoid this exception.";

// Does every branch of the WHERE clause fix the partition key with "c.<path> = value"? (Upstream's check said yes
// for a WHERE without any equality at all.)
function pinsPartition(ast, collectionData) {
  const wanted = `/${partitionPath(collectionData).join("/")}`;
  const pathOf = (node) => (node && node.type === "scalar_member_expression"
    ? `${pathOf(node.object) || ""}/${node.property.name || node.property.value}` : null);
  // The sets of equality paths of each OR branch.
  const branches = (node) => {
    if (!node || node.type !== "scalar_binary_expression") return [[]];
    if (node.operator === "=") return [[pathOf(node.left), pathOf(node.right)]];
    if (node.operator === "OR") return [...branches(node.left), ...branches(node.right)];
    if (node.operator === "AND") {
      const right = branches(node.right);
      return branches(node.left).flatMap((l) => right.map((r) => [...l, ...r]));
    }
    return [[]];
  };
  const where = ast.body && ast.body.where;
  return Boolean(where) && branches(where.condition).every((paths) => paths.includes(wanted));
}

function runQuery(collection, docs, body, { continuation, maxItemCount }) {
  const items = collection.documents;
  const compositeIndexes = ((collection.read().indexingPolicy || {}).compositeIndexes) || [];
  return items._getQuery(body.query).exec(docs, {
    parameters: body.parameters,
    udf: items._userDefinedFunctions(),
    maxItemCount,
    continuation,
    compositeIndexes,
  });
}

// A continuation token this server never issued is a 400, as on real Cosmos DB; upstream silently restarted
// from the first page when the header was not JSON.
function isOurContinuation(header) {
  try {
    const value = JSON.parse(header);
    return Boolean(value) && typeof value.token === "string" && value.token.startsWith("+RID:");
  } catch (err) {
    return false;
  }
}

replaceHandler("query-documents", () => (account, req, res, { dbId, collId }) => {
  const continuationHeader = req.headers["x-ms-continuation"];
  if (continuationHeader && !isOurContinuation(continuationHeader)) {
    return reply(res, 400, { code: "BadRequest", message: "Invalid continuation token" });
  }
  return readItems(req, res, "Documents", async (paging) => {
    const body = await readBody(req);
    if (!body.query) return reply(res, 400, { code: "BadRequest", message: "missing query" });
    const collection = account.database(dbId).collection(collId);
    const collectionData = collection.read();
    if (!collectionData) return null; // readItems answers 404
    const pk = partitionKeyOf(req);
    let docs = documentsOf(collection);
    if (pk !== undefined) {
      const keys = partitionPath(collectionData);
      docs = docs.filter((doc) => valueAt(doc, keys) === pk);
    } else if (!isTrueHeader(req, "x-ms-documentdb-query-enablecrosspartition") &&
               !pinsPartition(collection.documents._getQuery(body.query).ast, collectionData)) {
      return reply(res, 400, { code: "BadRequest", message: CROSS_PARTITION_REQUIRED });
    }
    try {
      return runQuery(collection, docs, body, paging);
    } catch (err) {
      if (err instanceof SqlSyntaxError) throw err; // readItems answers 400 with the parser message
      return reply(res, 400, { code: "BadRequest", message: err.message });
    }
  });
});

// ---------------------------------------------------------------------------------------------------------
// 4. Query semantics of real Cosmos DB.
// ---------------------------------------------------------------------------------------------------------

const TYPE_RANK = { undefined: 0, null: 1, boolean: 2, number: 3, string: 4, array: 5, object: 6 };

function jsonType(v) {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  return typeof v;
}

// Cosmos DB's ORDER BY order: undefined < null < false < true < numbers < strings < arrays < objects.
function compareValues(a, b) {
  if (a === b) return 0;
  const ta = jsonType(a);
  const tb = jsonType(b);
  if (ta !== tb) return TYPE_RANK[ta] < TYPE_RANK[tb] ? -1 : 1;
  if (ta === "object" || ta === "array") return 0;
  return a < b ? -1 : 1;
}

// "Equality between different types is undefined" (learn.microsoft.com .../query/equality-comparison-operators);
// upstream said false, so NOT (c.a = "x") or c.a != "x" matched numbers. notEqual builds on equal.
const upstreamEqual = sqlHelpers.equal;
sqlHelpers.equal = (a, b) => (jsonType(a) !== jsonType(b) ? undefined : upstreamEqual(a, b));

// ORDER BY on one property used to drop items without it; Cosmos DB returns them (first when ascending).
// Sort keys are computed once per row instead of once per comparison.
sqlHelpers.sort = (rows, getRid, compositeIndexes, ...orders) => {
  if (orders.length > 1 && compositeIndexes) {
    const served = compositeIndexes.some((index) => index.length === orders.length && index.every((entry, i) => {
      const [keys, desc] = orders[i];
      return entry.path === `/${keys.slice(1).join("/")}` && entry.order === (desc ? "descending" : "ascending");
    }));
    if (!served) {
      throw new Error("The order by query does not have a corresponding composite index that it can be served from.");
    }
  }
  const decorated = rows.map((row) => ({ row, keys: orders.map(([keys]) => valueAt(row, keys)), rid: getRid(row) }));
  decorated.sort((a, b) => {
    for (let i = 0; i < orders.length; i += 1) {
      const r = compareValues(a.keys[i], b.keys[i]);
      if (r !== 0) return orders[i][1] ? -r : r;
    }
    return compareValues(a.rid, b.rid); // the continuation token resumes by _rid, always ascending
  });
  return decorated.map((d) => d.row);
};

// A continuation token stores the sort values of the next item as JSON, where undefined became null, so a page
// boundary inside the "property missing" group skipped the rest of it. Keep undefined distinguishable.
const UNDEFINED_MARK = { $undefined: true };
const upstreamEncode = sqlContinuation.encode;
const upstreamDecode = sqlContinuation.decode;
sqlContinuation.encode = (token) =>
  upstreamEncode(token.RTD ? { ...token, RTD: token.RTD.map((v) => (v === undefined ? UNDEFINED_MARK : v)) } : token);
sqlContinuation.decode = (text) => {
  const token = upstreamDecode(text);
  if (token.RTD) {
    token.RTD = token.RTD.map((v) => (v && typeof v === "object" && v.$undefined === true ? undefined : v));
  }
  return token;
};

// Paging resumes at the first row at or after the token's sort values and _rid. Upstream compared arrays with
// "<" (never equal), so a page boundary on array-valued sort keys served the same page forever.
sqlHelpers.paginate = (rows, maxItemCount, continuation, getRid, ...orders) => {
  let token = null;
  let start = 0;
  if (continuation) {
    token = sqlContinuation.decode(continuation.token);
    let sameRidSeen = 0; // JOINs yield several rows per document: SRC counts those already served
    start = rows.findIndex(([, row]) => {
      if (token.RTD !== undefined) {
        for (let i = 0; i < orders.length; i += 1) {
          const [keys, desc] = orders[i];
          const r = compareValues(valueAt(row, keys), token.RTD[i]) * (desc ? -1 : 1);
          if (r !== 0) return r > 0;
        }
      }
      const rid = getRid(row);
      if (compareValues(rid, token.RID) < 0) return false;
      if (!token.SRC || rid !== token.RID || sameRidSeen === token.SRC) return true;
      sameRidSeen += 1;
      return false;
    });
    if (start < 0) start = rows.length;
  }
  let page = rows.slice(start);
  let next = null;
  if (maxItemCount > 0 && page.length > maxItemCount) {
    const [, following] = page[maxItemCount];
    const RID = getRid(following);
    let sameRid = 0; // rows of the following document already on this page
    for (let j = start + maxItemCount - 1; j >= 0 && getRid(rows[j][1]) === RID; j -= 1) sameRid += 1;
    next = {
      token: sqlContinuation.encode({
        RID,
        RT: (token ? token.RT : 0) + 1,
        SRC: sameRid,
        TRC: (token ? token.TRC : 0) + maxItemCount,
        RTD: orders.length ? orders.map(([keys]) => valueAt(following, keys)) : undefined,
      }),
      range: { min: "", max: "FF" },
    };
    page = page.slice(0, maxItemCount);
  }
  return { result: sqlHelpers.stripUndefined(page.map(([result]) => result)), continuation: next };
};

// ---------------------------------------------------------------------------------------------------------
// 6. Linear-time SQL execution.
// The transformer compiles FROM/JOIN into rows.reduce(($, doc) => [...$, {c: doc}], []), copying the accumulator
// once per document. Rewrite that array literal in the generated AST to ($.push({c: doc}), $): the accumulator
// is the fresh [] passed to that very reduce, so appending in place gives the same result in O(n).
// ---------------------------------------------------------------------------------------------------------

const identifier = (name) => ({ type: "Identifier", name });
const isAccumulator = (node) => node && node.type === "Identifier" && node.name === "$";

function appendInPlace(node) {
  if (node && node.type === "ArrayExpression" && node.elements.length > 1 &&
      node.elements[0] && node.elements[0].type === "SpreadElement" && isAccumulator(node.elements[0].argument)) {
    return {
      type: "SequenceExpression",
      expressions: [
        {
          type: "CallExpression",
          callee: { type: "MemberExpression", object: identifier("$"), property: identifier("push"), computed: false },
          arguments: node.elements.slice(1),
        },
        identifier("$"),
      ],
    };
  }
  if (node && node.type === "ConditionalExpression") {
    return { ...node, consequent: appendInPlace(node.consequent), alternate: appendInPlace(node.alternate) };
  }
  return node;
}

function isAccumulatingReduce(node) {
  if (node.type !== "CallExpression" || !node.callee || node.callee.type !== "MemberExpression") return false;
  const [reducer, initial] = node.arguments || [];
  return node.callee.property && node.callee.property.name === "reduce" &&
    reducer && reducer.type === "ArrowFunctionExpression" && isAccumulator(reducer.params[0]) &&
    initial && initial.type === "ArrayExpression" && initial.elements.length === 0;
}

function linearize(node) {
  if (Array.isArray(node)) return node.map(linearize);
  if (!node || typeof node !== "object") return node;
  const out = {};
  for (const [key, child] of Object.entries(node)) out[key] = linearize(child);
  if (isAccumulatingReduce(out)) {
    const [reducer, initial] = out.arguments;
    out.arguments = [{ ...reducer, body: appendInPlace(reducer.body) }, initial];
  }
  return out;
}

const upstreamTransform = sqlTransformer.default;
sqlTransformer.default = (ast) => linearize(upstreamTransform(ast));

// The executor compiled the generated code with new Function() on every request; compile each query once.
const compiled = new Map();
const MAX_COMPILED = 500;
sqlExecutor.default = (collection, { code, parameters, udf = {}, maxItemCount, continuation, compositeIndexes }) => {
  let execute = compiled.get(code);
  if (!execute) {
    // eslint-disable-next-line no-new-func
    execute = new Function(`"use strict";return (${code})`)();
    if (compiled.size >= MAX_COMPILED) compiled.delete(compiled.keys().next().value);
    compiled.set(code, execute);
  }
  const params = {};
  for (const { name, value } of parameters || []) params[name.slice(1)] = value;
  return execute(sqlAggregates, sqlBuiltins, collection, sqlHelpers, udf, params, maxItemCount, continuation,
    compositeIndexes);
};

// Results were cleaned of undefined with [...acc, v] per row, quadratic again in the result size.
sqlHelpers.stripUndefined = function stripUndefined(value) {
  if (Array.isArray(value)) {
    const out = [];
    for (const v of value) if (v !== undefined) out.push(stripUndefined(v));
    return out;
  }
  if (value && typeof value === "object") {
    const out = {};
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = stripUndefined(v);
    return out;
  }
  return value;
};

// ---------------------------------------------------------------------------------------------------------
// 7. Change feed (latest-version mode). Every write stamps the stored document with a global sequence number;
// a feed request returns the documents written after the continuation, oldest first. Deletes are not reported,
// exactly like Cosmos DB's latest-version change feed.
// ---------------------------------------------------------------------------------------------------------

let lastSequence = 0;
const sequenceOf = new WeakMap(); // stored document object -> sequence number of the write that stored it

const upstreamSet = Items.prototype._set;
Items.prototype._set = function stampSequence(data) {
  lastSequence += 1;
  sequenceOf.set(data, lastSequence);
  return upstreamSet.call(this, data);
};

// The SDK scopes a change feed to a partition key by its effective partition key (EPK) range, sent as
// x-ms-start-epk / x-ms-end-epk: the hex MurmurHash3-x64-128 of the key's binary encoding (hash v2; the same
// function as azure.cosmos.partition_key.PartitionKey._get_effective_partition_key_string).
const MASK64 = (1n << 64n) - 1n;
const rotl64 = (x, r) => ((x << BigInt(r)) | (x >> BigInt(64 - r))) & MASK64;
const mul64 = (a, b) => (a * b) & MASK64;
function fmix64(k) {
  let x = k ^ (k >> 33n);
  x = mul64(x, 0xff51afd7ed558ccdn);
  x ^= x >> 33n;
  x = mul64(x, 0xc4ceb9fe1a85ec53n);
  return x ^ (x >> 33n);
}

function murmurHash3x64(bytes) {
  const c1 = 0x87c37b91114253d5n;
  const c2 = 0x4cf5ad432745937fn;
  let h1 = 0n;
  let h2 = 0n;
  const blocks = bytes.length - (bytes.length % 16);
  const mixK1 = (k) => mul64(rotl64(mul64(k, c1), 31), c2);
  const mixK2 = (k) => mul64(rotl64(mul64(k, c2), 33), c1);
  for (let i = 0; i < blocks; i += 16) {
    h1 ^= mixK1(bytes.readBigUInt64LE(i));
    h1 = (mul64((rotl64(h1, 27) + h2) & MASK64, 5n) + 0x52dce729n) & MASK64;
    h2 ^= mixK2(bytes.readBigUInt64LE(i + 8));
    h2 = (mul64((rotl64(h2, 31) + h1) & MASK64, 5n) + 0x38495ab5n) & MASK64;
  }
  const tail = bytes.length - blocks;
  let k1 = 0n;
  let k2 = 0n;
  for (let j = tail - 1; j >= 8; j -= 1) k2 ^= BigInt(bytes[blocks + j]) << BigInt(8 * (j - 8));
  for (let j = Math.min(tail, 8) - 1; j >= 0; j -= 1) k1 ^= BigInt(bytes[blocks + j]) << BigInt(8 * j);
  if (tail > 8) h2 ^= mixK2(k2);
  if (tail > 0) h1 ^= mixK1(k1);
  const length = BigInt(bytes.length);
  h1 ^= length;
  h2 ^= length;
  h1 = (h1 + h2) & MASK64;
  h2 = (h2 + h1) & MASK64;
  h1 = fmix64(h1);
  h2 = fmix64(h2);
  h1 = (h1 + h2) & MASK64;
  h2 = (h2 + h1) & MASK64;
  return [h1, h2];
}

function effectivePartitionKey(value) {
  let bytes;
  if (value === true) bytes = Buffer.from([0x03]);
  else if (value === false) bytes = Buffer.from([0x02]);
  else if (value === null) bytes = Buffer.from([0x01]);
  else if (typeof value === "number") {
    bytes = Buffer.alloc(9);
    bytes[0] = 0x05;
    bytes.writeDoubleLE(value, 1);
  } else if (typeof value === "string") {
    bytes = Buffer.concat([Buffer.from([0x08]), Buffer.from(value, "utf8"), Buffer.from([0xff])]);
  } else bytes = Buffer.from([0x00]); // undefined
  const [low, high] = murmurHash3x64(bytes);
  // The 16 hash bytes big-endian (high word first), top two bits cleared so every key sorts below "FF".
  const hex = high.toString(16).padStart(16, "0") + low.toString(16).padStart(16, "0");
  return ((parseInt(hex.slice(0, 2), 16) & 0x3f).toString(16).padStart(2, "0") + hex.slice(2)).toUpperCase();
}

// A predicate for the EPK range of the request, or null when it names none (or the container is not hash v2).
function epkRangeFilter(req, collectionData, keys) {
  const start = req.headers["x-ms-start-epk"];
  const end = req.headers["x-ms-end-epk"];
  if (start === undefined || end === undefined) return null;
  if (((collectionData.partitionKey || {}).version || 1) !== 2) return null;
  return (doc) => {
    const epk = effectivePartitionKey(valueAt(doc, keys));
    return epk >= String(start).toUpperCase() && (end === "FF" || epk < String(end).toUpperCase());
  };
}

function changeFeed(account, req, res, { dbId, collId }) {
  const collection = account.database(dbId).collection(collId);
  const collectionData = collection.read();
  if (!collectionData) return reply(res, 404, { ...NOT_FOUND });
  // The generic response code turns any 200 with A-IM + If-None-Match into 304 and overwrites the etag: we
  // answer the feed ourselves, so take the header away from it.
  delete req.headers["a-im"];

  const continuation = String(req.headers["if-none-match"] || "").replace(/"/g, "");
  const modifiedSince = req.headers["if-modified-since"];
  let after = 0;
  let sinceTs = null;
  if (continuation === "*") after = lastSequence; // start "now"
  else if (continuation) after = Number.parseInt(continuation, 10) || 0;
  else if (modifiedSince) sinceTs = Math.floor(Date.parse(modifiedSince) / 1000);

  const pk = partitionKeyOf(req);
  const keys = partitionPath(collectionData);
  const maxItems = Number.parseInt(req.headers["x-ms-max-item-count"] || "-1", 10);
  let changed = documentsOf(collection)
    .filter((doc) => (sequenceOf.get(doc) || 0) > after)
    .filter((doc) => sinceTs === null || doc._ts >= sinceTs)
    .filter((doc) => pk === undefined || valueAt(doc, keys) === pk)
    .filter(epkRangeFilter(req, collectionData, keys) || (() => true))
    .sort((a, b) => sequenceOf.get(a) - sequenceOf.get(b));
  if (maxItems > 0) changed = changed.slice(0, maxItems);

  // The continuation is the sequence of the last document returned, or the position the client asked about.
  const next = changed.length ? sequenceOf.get(changed[changed.length - 1]) : Math.max(after, sinceTs === null ? after : lastSequence);
  res.setHeader("etag", `"${next}"`);
  if (!changed.length) return reply(res, 304, {});
  res.setHeader("x-ms-item-count", String(changed.length));
  return reply(res, 200, {
    _rid: collectionData._rid,
    Documents: changed.map((doc) => ({ ...doc, _lsn: sequenceOf.get(doc) })),
    _count: changed.length,
  });
}

replaceHandler("read-documents", (readAll) => (account, req, res, params) =>
  (req.headers["a-im"] ? changeFeed(account, req, res, params) : readAll(account, req, res, params)));

// ---------------------------------------------------------------------------------------------------------
// 5. Transactional batch: one partition (from the header), all or nothing, Patch supported.
// ---------------------------------------------------------------------------------------------------------

const MAX_BATCH_OPERATIONS = 100; // Cosmos DB's limit per transactional batch

// Records every set/delete on the given Maps so a failed batch can put them back exactly (cost O(operations),
// independent of the container size).
class UndoLog {
  constructor(maps) {
    this.entries = [];
    this.maps = maps;
    for (const map of maps) {
      const log = this.entries;
      map.set = function recordSet(key, value) {
        log.push([map, key, Map.prototype.has.call(map, key), Map.prototype.get.call(map, key)]);
        return Map.prototype.set.call(map, key, value);
      };
      map.delete = function recordDelete(key) {
        log.push([map, key, Map.prototype.has.call(map, key), Map.prototype.get.call(map, key)]);
        return Map.prototype.delete.call(map, key);
      };
    }
  }

  stop() {
    for (const map of this.maps) {
      delete map.set;
      delete map.delete;
    }
  }

  rollback() {
    for (let i = this.entries.length - 1; i >= 0; i -= 1) {
      const [map, key, existed, previous] = this.entries[i];
      if (existed) Map.prototype.set.call(map, key, previous);
      else Map.prototype.delete.call(map, key);
    }
  }
}

function runBatchOperation(collection, op) {
  switch (op.operationType) {
    case "Create": return documentOps.createOperation(collection, op);
    case "Upsert": return documentOps.upsertOperation(collection, op);
    case "Read": return documentOps.readOperation(collection, op);
    case "Replace": return documentOps.replaceOperation(collection, op);
    case "Delete": return documentOps.deleteOperation(collection, op);
    case "Patch": {
      // The SDK sends {"operations": [...], "condition": "FROM c WHERE ..."} as the resource body.
      const spec = op.resourceBody || {};
      return patchOps.patchOperation(collection, {
        id: op.id,
        partitionKey: op.partitionKey,
        ifMatch: op.ifMatch,
        operations: Array.isArray(spec) ? spec : spec.operations,
        condition: spec.condition,
      });
    }
    default: return { statusCode: 400, body: { code: "BadRequest", message: `unsupported operation ${op.operationType}` } };
  }
}

replaceHandler("batch-documents", () => async (account, req, res, { dbId, collId }) => {
  const body = await readBody(req);
  const collection = account.database(dbId).collection(collId);
  const collectionData = collection.read();
  if (!collectionData) return reply(res, 404, { ...NOT_FOUND });
  if (!Array.isArray(body) || body.length === 0) {
    return reply(res, 400, { code: "BadRequest", message: "a batch is a non-empty array of operations" });
  }
  if (body.length > MAX_BATCH_OPERATIONS) {
    return reply(res, 400, { code: "BadRequest", message: `a batch holds at most ${MAX_BATCH_OPERATIONS} operations` });
  }
  const header = req.headers["x-ms-documentdb-partitionkey"];
  const pk = partitionKeyOf(req);
  const keys = partitionPath(collectionData);
  // The only non-atomic mode is an explicit continue-on-error.
  const atomic = !isTrueHeader(req, "x-ms-cosmos-batch-continue-on-error");

  const documents = collection.documents;
  const ridCount = documents._ridCount;
  const undo = new UndoLog([documents._data, documents._index]);
  const results = [];
  let failedAt = -1;
  try {
    body.forEach((input, index) => {
      if (failedAt >= 0 && atomic) return;
      const op = { ...input, partitionKey: input.partitionKey === undefined ? header : input.partitionKey };
      const doc = op.resourceBody;
      let result;
      if (["Create", "Upsert", "Replace"].includes(op.operationType) && pk !== undefined &&
          valueAt(doc, keys) !== pk) {
        result = { statusCode: 400, body: { message: "the document's partition key differs from the batch's" } };
      } else {
        result = runBatchOperation(collection, op);
      }
      results[index] = result;
      if (result.statusCode >= 400 && failedAt < 0) failedAt = index;
    });
  } catch (err) {
    undo.stop();
    undo.rollback();
    documents._ridCount = ridCount;
    throw err;
  }
  undo.stop();
  if (failedAt >= 0 && atomic) {
    undo.rollback();
    documents._ridCount = ridCount;
    res.statusCode = 207; // multi-status: the failed operation carries its code, every other one 424
    return body.map((_, i) => ({ statusCode: i === failedAt ? results[i].statusCode : 424, requestCharge: 0 }));
  }
  return results.map((r) => (r.statusCode >= 400
    ? { statusCode: r.statusCode, requestCharge: 0 }
    : { statusCode: r.statusCode, requestCharge: 1, eTag: r.body && r.body._etag, resourceBody: r.body }));
});

// ---------------------------------------------------------------------------------------------------------
// 8. With --no-ssl, advertise http:// locations (upstream always said https://).
// ---------------------------------------------------------------------------------------------------------

if (!options.ssl) {
  replaceHandler("read-meta", (readMeta) => (...args) =>
    JSON.parse(JSON.stringify(readMeta(...args)).split("https://").join("http://")));
}

// ---------------------------------------------------------------------------------------------------------
// 1. The server, with keep-alive. The package entry (and with it the routes table) loads only now, after
// every handler above has been replaced.
// ---------------------------------------------------------------------------------------------------------

const { createHttpServer, createHttpsServer } = require(resolveFrom(PROJECT_ROOT, SERVER_PKG));

const serverOptions = { keepAlive: true };
if (options.cert) {
  serverOptions.cert = fs.readFileSync(options.cert);
  serverOptions.key = fs.readFileSync(options.key);
}
const server = (options.ssl ? createHttpsServer : createHttpServer)(serverOptions);
// Longer than the idle time of the Python SDK's connection pool, so the server never closes a connection the
// client is about to reuse; headersTimeout must exceed keepAliveTimeout.
server.keepAliveTimeout = 120000;
server.headersTimeout = 125000;
chaos.install(server, chaosArgs.options, { accountModule: serverModule("account") });

server.on("error", (err) => {
  console.error(`cosmos-launcher: ${err.code === "EADDRINUSE" ? `port ${options.port} is in use` : err.message}`);
  process.exit(1);
});

server.listen(options.port, options.host, () => {
  const { port } = server.address();
  console.log(`cosmos-launcher ready on ${options.ssl ? "https" : "http"}://${options.host}:${port}/`);
});

function shutdown() {
  server.close(() => process.exit(0));
  if (server.closeAllConnections) server.closeAllConnections();
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
