/*
 * Fault injection and persistence for the local Cosmos DB emulator (devstack/cosmos-launcher.js), used by the
 * chaos run (bench/chaos.py) and its test. Off unless one of its options is given:
 *
 *   --data-file PATH        keep the data across restarts: load PATH (if it exists) before the first request is
 *                           served, and write it back (atomically, tmp + rename) when the process exits after
 *                           SIGTERM/SIGINT. A SIGKILL loses what changed since the last start, like a crash of
 *                           an in-memory server. Databases, containers (with their _rid, partition key, indexing
 *                           policy) and documents (with _etag, _ts, _rid) come back byte-identical, so etags a
 *                           client holds stay valid. Not kept: user-defined functions, change feed continuations
 *                           (the feed restarts its numbering; documents keep their relative order).
 *   --throttle-rate R       answer 429 TooManyRequests (x-ms-retry-after-ms, substatus 3200) to a share R (0-1)
 *                           of document requests (reads, writes, queries, batches), as a provisioned-throughput
 *                           account does when it runs out of RU/s. The azure-cosmos SDK retries these itself.
 *   --throttle-retry-ms MS  the retry-after it advertises (default 10).
 *   --chaos-seed N          seed of the throttling draw (default 1), so a run can be repeated.
 *
 * GET /_chaos/stats answers {"document_requests", "throttled", "loaded_documents", "data_file"} (JSON), so a
 * harness can report how many requests were throttled.
 *
 * The launcher calls takeOptions(argv) before parsing its own arguments and install(server, options, hooks)
 * after creating its server and before listen().
 */
"use strict";

const fs = require("fs");
const path = require("path");

const SNAPSHOT_VERSION = 1;

function takeOptions(argv) {
  const options = { dataFile: null, throttleRate: 0, throttleRetryMs: 10, seed: 1 };
  const rest = [];
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) die(`${arg} needs a value`);
      i += 1;
      return argv[i];
    };
    if (arg === "--data-file") options.dataFile = path.resolve(value());
    else if (arg === "--throttle-rate") options.throttleRate = Number(value());
    else if (arg === "--throttle-retry-ms") options.throttleRetryMs = Number(value());
    else if (arg === "--chaos-seed") options.seed = Number(value());
    else rest.push(arg);
  }
  if (!(options.throttleRate >= 0 && options.throttleRate <= 1)) die("--throttle-rate must be between 0 and 1");
  if (!(Number.isInteger(options.throttleRetryMs) && options.throttleRetryMs >= 0)) die("--throttle-retry-ms must be an integer >= 0");
  if (!Number.isInteger(options.seed)) die("--chaos-seed must be an integer");
  return { options, rest };
}

function die(message) {
  console.error(`cosmos-chaos: ${message}\nchaos options: [--data-file PATH] [--throttle-rate 0..1] ` +
                "[--throttle-retry-ms MS] [--chaos-seed N]");
  process.exit(2);
}

// mulberry32: a small deterministic generator, so a seeded run throttles the same request numbers.
function generator(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------------------------------------------------
// Persistence
// ---------------------------------------------------------------------------------------------------------

function snapshot(account) {
  const values = (items) => [...items._data.values()].map((item) => item.read());
  return {
    version: SNAPSHOT_VERSION,
    databaseRidCount: account.databases._ridCount,
    databases: [...account.databases._data.values()].map((db) => ({
      data: db.read(),
      collectionRidCount: db.collections._ridCount,
      collections: [...db.collections._data.values()].map((coll) => ({
        data: coll.read(),
        documentRidCount: coll.documents._ridCount,
        // Map order is the order of the last write of each document: loading in it keeps the feed's order.
        documents: values(coll.documents),
      })),
    })),
  };
}

function save(account, file) {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(snapshot(account)));
  fs.renameSync(tmp, file);
}

function load(account, file) {
  const state = JSON.parse(fs.readFileSync(file, "utf8"));
  if (state.version !== SNAPSHOT_VERSION) throw new Error(`unsupported snapshot version ${state.version}`);
  let documents = 0;
  for (const db of state.databases) {
    account.databases._set(db.data);
    const database = account.database(db.data.id);
    for (const coll of db.collections) {
      database.collections._set(coll.data);
      const collection = database.collection(coll.data.id);
      for (const doc of coll.documents) collection.documents._set(doc);
      collection.documents._ridCount = coll.documentRidCount;
      documents += coll.documents.length;
    }
    database.collections._ridCount = db.collectionRidCount;
  }
  account.databases._ridCount = state.databaseRidCount;
  return documents;
}

// ---------------------------------------------------------------------------------------------------------
// Install
// ---------------------------------------------------------------------------------------------------------

function enabled(options) {
  return Boolean(options.dataFile) || options.throttleRate > 0;
}

function install(server, options, { accountModule }) {
  if (!enabled(options)) return;
  const stats = { document_requests: 0, throttled: 0, loaded_documents: 0, data_file: options.dataFile };
  let account = null;
  let loaded = false;

  // The server creates its account when it starts listening; remember it (for the snapshot).
  const UpstreamAccount = accountModule.default;
  accountModule.default = class RememberedAccount extends UpstreamAccount {
    constructor(...args) {
      super(...args);
      account = this; // eslint-disable-line consistent-this
    }
  };

  if (options.dataFile) {
    // Registered before listen(): runs after the server made its account and before any request is served.
    server.on("listening", () => {
      try {
        if (fs.existsSync(options.dataFile)) stats.loaded_documents = load(account, options.dataFile);
        loaded = true;
        console.log(`cosmos-chaos: loaded ${stats.loaded_documents} documents from ${options.dataFile}`);
      } catch (err) {
        console.error(`cosmos-chaos: cannot load ${options.dataFile}: ${err.message}`);
        process.exit(1); // never serve (nor overwrite) a partial copy of the data
      }
    });
    process.on("exit", () => {
      if (!account || !loaded) return;
      save(account, options.dataFile);
      console.log(`cosmos-chaos: saved the data to ${options.dataFile}`);
    });
  }

  const random = generator(options.seed);
  const handlers = server.listeners("request");
  server.removeAllListeners("request");
  server.on("request", (req, res) => {
    if (req.url === "/_chaos/stats") {
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify(stats));
      return;
    }
    if (/\/docs(\/|$|\?)/.test(req.url)) {
      stats.document_requests += 1;
      if (options.throttleRate > 0 && random() < options.throttleRate) {
        stats.throttled += 1;
        throttle(req, res, options.throttleRetryMs);
        return;
      }
    }
    for (const handler of handlers) handler.call(server, req, res);
  });
  process.on("exit", () => {
    if (options.throttleRate > 0) {
      console.log(`cosmos-chaos: throttled ${stats.throttled} of ${stats.document_requests} document requests`);
    }
  });
}

function throttle(req, res, retryMs) {
  const answer = () => {
    res.statusCode = 429;
    res.setHeader("content-type", "application/json");
    res.setHeader("x-ms-retry-after-ms", String(retryMs));
    res.setHeader("x-ms-substatus", "3200");
    res.setHeader("x-ms-request-charge", "0");
    res.setHeader("connection", "keep-alive");
    res.end(JSON.stringify({ code: "TooManyRequests", message: "Request rate is large. (injected by cosmos-chaos)" }));
  };
  // Read the body first so the keep-alive connection stays usable for the retry.
  req.on("end", answer);
  req.on("error", () => res.destroy());
  req.resume();
}

module.exports = { takeOptions, enabled, install };
