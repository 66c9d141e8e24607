// Stratus runtime client for Node.js: loads the handler named by _HANDLER
// from LAMBDA_TASK_ROOT and serves it through the Lambda Runtime API.
import http from "node:http";
import path from "node:path";
import fs from "node:fs";
import util from "node:util";
import { pathToFileURL } from "node:url";
import { createRequire, register } from "node:module";
import { Writable } from "node:stream";
import { finished } from "node:stream/promises";

// A pre-started sandbox waits here, Node.js and this client loaded, until
// the server gives it to a function: its environment arrives as JSON on
// descriptor 3 (its code is in place by then).
if (process.argv.includes("--warm")) {
  // What every start makes on first use is made now, while waiting: the
  // standard streams (a pipe each) and the HTTP client's machinery.
  void process.stdout, process.stderr;
  new http.Agent({ keepAlive: true }).destroy();
  // ... and the module loader's first dynamic import, and the code paths
  // of loading a handler, which V8 compiles on first use.
  await import("data:text/javascript,export default 0");
  fs.existsSync(pathToFileURL("/").pathname);
  JSON.stringify(JSON.parse('{"a":[1,"b"]}'));
  util.format("%s %j", "x", { a: 1 });
  fs.writeSync(3, "r"); // waiting
  const data = fs.readFileSync(3, "utf8");
  fs.closeSync(3);
  if (!data) process.exit(0); // never given to a function
  for (const k of Object.keys(process.env)) delete process.env[k];
  Object.assign(process.env, JSON.parse(data));
  process.chdir(process.env.LAMBDA_TASK_ROOT || "/");
  createRequire(import.meta.url)("node:module")._initPaths(); // NODE_PATH
}
const api = process.env.AWS_LAMBDA_RUNTIME_API;
const [apiHost, apiPort] = api.split(":");
// A multi-concurrency environment (AWS_LAMBDA_MAX_CONCURRENCY), as Lambda
// Managed Instances run Node.js: worker threads (AWS_LAMBDA_NODEJS_WORKER_COUNT,
// else one per CPU), each with its own init, each running as many /next
// loops as its share of the concurrency, so an async handler serves that
// many invocations at once on one thread.
// Their modules are loaded only in that mode: a cold start pays for none.
const maxConcurrency = Math.max(1, Number(process.env.AWS_LAMBDA_MAX_CONCURRENCY) || 1);
const threads = maxConcurrency > 1 ? await import("node:worker_threads") : { isMainThread: true };
const loops = threads.isMainThread ? 1 : threads.workerData.loops;
const agent = new http.Agent({ keepAlive: true, maxSockets: loops });
// The request id of the invocation whose code is running, for its log
// lines, where several run at once.
const invocation = maxConcurrency > 1 ? new (await import("node:async_hooks")).AsyncLocalStorage() : { getStore() {}, run: (_, f) => f() };
const base = "/2018-06-01/runtime";

function request(method, urlPath, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: apiHost, port: apiPort, path: urlPath, method, agent, headers },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    if (body !== undefined) req.end(body);
    else req.end();
  });
}

// The awslambda global of Lambda's Node.js runtime, for response streaming:
// a handler wrapped by streamifyResponse gets a writable stream and writes
// its answer to it as it goes.
const streaming = Symbol.for("aws.lambda.runtime.handler.streaming");
globalThis.awslambda = {
  streamifyResponse(handler) {
    handler[streaming] = "response";
    return handler;
  },
  HttpResponseStream: class HttpResponseStream {
    // A function URL's answer: the status and headers (JSON), eight zero
    // bytes, then the body.
    static from(stream, prelude) {
      stream.setContentType("application/vnd.awslambda.http-integration-response");
      stream.write(JSON.stringify(prelude ?? {}));
      stream.write(new Uint8Array(8));
      return stream;
    }
  },
};

// responseStream posts the answer as a chunked body as it is written,
// with backpressure from the socket; an error after the first bytes goes
// in the trailers, as Lambda's runtimes send it.
function responseStream(id) {
  let resolveDone, rejectDone;
  const done = new Promise((res, rej) => {
    resolveDone = res;
    rejectDone = rej;
  });
  const req = http.request(
    {
      host: apiHost, port: apiPort, path: `${base}/invocation/${id}/response`, method: "POST", agent,
      headers: {
        "Lambda-Runtime-Function-Response-Mode": "streaming",
        "Transfer-Encoding": "chunked",
        Trailer: "Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body",
        "Content-Type": "application/octet-stream",
      },
    },
    (res) => {
      res.resume();
      res.on("end", () => resolveDone(res.statusCode));
      res.on("error", rejectDone);
    },
  );
  req.on("error", rejectDone);
  const stream = new Writable({
    write(chunk, _enc, cb) {
      if (req.write(chunk)) cb();
      else req.once("drain", () => cb());
    },
    final(cb) {
      req.end();
      cb();
    },
  });
  stream.setContentType = (ct) => {
    if (!req.headersSent) req.setHeader("Content-Type", ct);
  };
  const fail = (err) => {
    if (req.writableEnded) return;
    const doc = errorDoc(err);
    req.addTrailers({
      "Lambda-Runtime-Function-Error-Type": doc.errorType,
      "Lambda-Runtime-Function-Error-Body": Buffer.from(JSON.stringify(doc)).toString("base64"),
    });
    req.end();
  };
  return { stream, done, fail };
}

function errorDoc(err) {
  if (err instanceof Error) {
    return {
      errorType: err.name || "Error",
      errorMessage: err.message,
      trace: typeof err.stack === "string" ? err.stack.split("\n") : [],
    };
  }
  let message;
  try {
    message = typeof err === "string" ? err : JSON.stringify(err);
  } catch {
    message = String(err);
  }
  return { errorType: "string", errorMessage: message, trace: [] };
}

async function postError(urlPath, err, type) {
  const doc = errorDoc(err);
  const body = JSON.stringify(doc);
  await request("POST", urlPath, body, {
    "Content-Type": "application/json",
    "Content-Length": Buffer.byteLength(body),
    "Lambda-Runtime-Function-Error-Type": type || doc.errorType,
  });
}

// console output carries the request id and level, as Lambda's Node.js
// runtime writes it: tab-separated text, or with LoggingConfig's JSON
// format one JSON record a line, below AWS_LAMBDA_LOG_LEVEL dropped.
let currentRequestId;
const levelRank = { TRACE: 1, DEBUG: 2, INFO: 3, WARN: 4, ERROR: 5, FATAL: 6 };
function patchConsole() {
  const json = process.env.AWS_LAMBDA_LOG_FORMAT === "JSON";
  const min = json ? levelRank[(process.env.AWS_LAMBDA_LOG_LEVEL || "INFO").toUpperCase()] || 3 : 0;
  const levels = { log: "INFO", info: "INFO", warn: "WARN", error: "ERROR", debug: "DEBUG", trace: "TRACE", fatal: "FATAL" };
  for (const [name, level] of Object.entries(levels)) {
    if (levelRank[level] < min) {
      console[name] = () => {};
      continue;
    }
    console[name] = (...args) => {
      if (!json) {
        const msg = util.format(...args).replace(/\n/g, "\r");
        process.stdout.write(`${new Date().toISOString()}\t${invocation.getStore() ?? currentRequestId ?? "undefined"}\t${level}\t${msg}\n`);
        return;
      }
      const rec = { timestamp: new Date().toISOString(), level, requestId: invocation.getStore() ?? currentRequestId, message: util.format(...args) };
      const err = args.find((a) => a instanceof Error);
      if (err) {
        rec.errorType = err.name;
        rec.errorMessage = err.message;
        rec.stackTrace = String(err.stack || "").split("\n");
      }
      process.stdout.write(JSON.stringify(rec) + "\n");
    };
  }
}

// ES modules ignore NODE_PATH; Lambda's runtime resolves bare imports
// of the SDK and of layers' modules all the same. A resolve hook does so
// here: after the usual lookup fails, it looks in NODE_PATH's folders.
const esmHooks = `
let dirs = [];
export function initialize(d) { dirs = d.dirs; }
export async function resolve(specifier, context, next) {
  try {
    return await next(specifier, context);
  } catch (e) {
    if (e.code !== "ERR_MODULE_NOT_FOUND" || /^[./]|^[a-z]+:/.test(specifier)) throw e;
    for (const parentURL of dirs) {
      try {
        return await next(specifier, { ...context, parentURL });
      } catch {}
    }
    throw e;
  }
}`;

// The hook costs a loader thread (tens of milliseconds, ~10 MB), so it is
// registered only once an import has failed without it.
function resolveFromNodePath() {
  const dirs = (process.env.NODE_PATH || "").split(":").filter(Boolean);
  if (!dirs.length || typeof register !== "function") return false;
  // A parent in the folder above each node_modules makes Node search it.
  const parents = dirs.map((d) => pathToFileURL(path.join(path.dirname(d), "_")).href);
  register("data:text/javascript," + encodeURIComponent(esmHooks), { data: { dirs: parents } });
  return true;
}

// Node.js 24 and later runtimes run only handlers that return a promise
// (or a value): one declaring a callback parameter fails at init.
function runtimeMajor() {
  const m = /nodejs(\d+)/.exec(process.env.AWS_EXECUTION_ENV || "");
  return m ? Number(m[1]) : 0;
}

async function loadHandler() {
  const handler = process.env._HANDLER || "";
  const root = process.env.LAMBDA_TASK_ROOT;
  const dot = handler.lastIndexOf(".");
  if (dot <= 0) {
    const e = new Error(`Bad handler ${handler}: expected file.export`);
    e.name = "Runtime.MalformedHandlerName";
    throw e;
  }
  const modPath = handler.slice(0, dot);
  const exportPath = handler.slice(dot + 1).split(".");
  let file;
  for (const ext of [".js", ".mjs", ".cjs"]) {
    const p = path.resolve(root, modPath + ext);
    if (fs.existsSync(p)) {
      file = p;
      break;
    }
  }
  if (!file) {
    const e = new Error(`Cannot find module '${modPath}'`);
    e.name = "Runtime.ImportModuleError";
    throw e;
  }
  let mod;
  try {
    if (file.endsWith(".cjs") || (file.endsWith(".js") && !isESM(file))) {
      mod = createRequire(path.join(root, "index.js"))(file);
    } else {
      const url = pathToFileURL(file).href;
      try {
        mod = await import(url);
      } catch (err) {
        // A failed import stays cached: the retry names the module anew.
        if (err?.code !== "ERR_MODULE_NOT_FOUND" || !resolveFromNodePath()) throw err;
        mod = await import(url + "?NODE_PATH");
      }
    }
  } catch (err) {
    // A module the handler's module needs is missing: as Lambda reports it.
    if (err && (err.code === "MODULE_NOT_FOUND" || err.code === "ERR_MODULE_NOT_FOUND")) {
      const e = new Error(`${err.name}: ${err.message}`);
      e.name = "Runtime.ImportModuleError";
      throw e;
    }
    throw err;
  }
  let fn = mod;
  for (const part of exportPath) fn = fn == null ? undefined : fn[part];
  if (fn === undefined && mod && mod.default) {
    fn = mod.default;
    for (const part of exportPath) fn = fn == null ? undefined : fn[part];
  }
  if (typeof fn !== "function") {
    const e = new Error(`${handler} is undefined or not exported`);
    e.name = "Runtime.HandlerNotFound";
    throw e;
  }
  if (runtimeMajor() >= 24 && !fn[streaming] && fn.length >= 3) {
    const e = new Error(
      `${handler} takes a callback (event, context, callback): callback-style handlers are not supported from Node.js 24 on. Make it an async function (event, context) that returns its result.`,
    );
    e.name = "Runtime.CallbackHandlerDeprecated";
    throw e;
  }
  return fn;
}

// A .js file is an ES module when the nearest package.json says "type": "module".
function isESM(file) {
  let dir = path.dirname(file);
  for (;;) {
    const pj = path.join(dir, "package.json");
    if (fs.existsSync(pj)) {
      try {
        return JSON.parse(fs.readFileSync(pj, "utf8")).type === "module";
      } catch {
        return false;
      }
    }
    const up = path.dirname(dir);
    if (up === dir) return false;
    dir = up;
  }
}

function makeContext(headers) {
  const deadline = Number(headers["lambda-runtime-deadline-ms"]);
  const ctx = {
    callbackWaitsForEmptyEventLoop: true,
    functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
    functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
    invokedFunctionArn: headers["lambda-runtime-invoked-function-arn"],
    memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    awsRequestId: headers["lambda-runtime-aws-request-id"],
    logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
  };
  if (headers["lambda-runtime-client-context"]) {
    try {
      ctx.clientContext = JSON.parse(headers["lambda-runtime-client-context"]);
    } catch {}
  }
  if (headers["lambda-runtime-cognito-identity"]) {
    try {
      ctx.identity = JSON.parse(headers["lambda-runtime-cognito-identity"]);
    } catch {}
  }
  return ctx;
}

// Runs the handler in either style: a returned promise, or the callback.
function runHandler(fn, event, context) {
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (err, value) => {
      if (settled) return;
      settled = true;
      if (err !== undefined && err !== null) reject(err);
      else resolve(value);
    };
    context.done = settle;
    context.succeed = (v) => settle(null, v);
    context.fail = (e) => settle(e ?? new Error("handled"));
    try {
      const out = fn(event, context, settle);
      if (out && typeof out.then === "function") out.then((v) => settle(null, v), (e) => settle(e ?? new Error("rejected")));
      else if (fn.length < 3) settle(null, out);
    } catch (e) {
      settle(e);
    }
  });
}

async function init() {
  patchConsole();
  try {
    return await loadHandler();
  } catch (e) {
    console.error(e && e.stack ? e.stack : String(e));
    await postError(`${base}/init/error`, e, e && e.name);
    process.exit(1);
  }
}

async function main() {
  if (threads.isMainThread && maxConcurrency > 1) return supervise();
  const fn = await init();
  // A synchronous handler holds its thread: one invocation at a time.
  const n = loops > 1 && (fn.constructor.name === "AsyncFunction" || fn.length >= 3 || fn[streaming]) ? loops : 1;
  await Promise.all(Array.from({ length: n }, () => serve(fn)));
}

// supervise runs the workers of a multi-concurrency environment; one that
// fails ends the environment, as a crash, so its invocations fail.
async function supervise() {
  const os = await import("node:os");
  const workerCount = Math.max(1, Math.min(maxConcurrency, Number(process.env.AWS_LAMBDA_NODEJS_WORKER_COUNT) || os.availableParallelism()));
  const base = Math.floor(maxConcurrency / workerCount);
  for (let i = 0; i < workerCount; i++) {
    const w = new threads.Worker(new URL(import.meta.url), { workerData: { loops: base + (i < maxConcurrency % workerCount ? 1 : 0) } });
    w.on("error", (e) => {
      console.error(e && e.stack ? e.stack : String(e));
      process.exit(1);
    });
    w.on("exit", (code) => process.exit(code || 1));
  }
}

async function serve(fn) {
  for (;;) {
    const next = await request("GET", `${base}/invocation/next`);
    if (next.status !== 200) throw new Error(`runtime api /next answered ${next.status}`);
    const id = next.headers["lambda-runtime-aws-request-id"];
    if (loops === 1) currentRequestId = id;
    await invocation.run(id, () => invoke(fn, id, next));
  }
}

async function invoke(fn, id, next) {
  if (next.headers["lambda-runtime-trace-id"]) process.env._X_AMZN_TRACE_ID = next.headers["lambda-runtime-trace-id"];
  let event;
  try {
    event = next.body.length ? JSON.parse(next.body.toString("utf8")) : {};
  } catch (e) {
    await postError(`${base}/invocation/${id}/error`, e, "Runtime.UnmarshalError");
    return;
  }
  const context = makeContext(next.headers);
  if (fn[streaming]) {
    const { stream, done, fail } = responseStream(id);
    try {
      await fn(event, stream, context);
      if (!stream.writableEnded) stream.end();
      await finished(stream);
    } catch (e) {
      console.error(`Invoke Error \t${JSON.stringify(errorDoc(e))}`);
      fail(e);
    }
    await done.catch(() => {});
    return;
  }
  try {
    const result = await runHandler(fn, event, context);
    const body = result === undefined ? "null" : JSON.stringify(result);
    await request("POST", `${base}/invocation/${id}/response`, body, {
      "Content-Type": "application/json",
      "Content-Length": Buffer.byteLength(body),
    });
  } catch (e) {
    const doc = errorDoc(e);
    console.error(`Invoke Error \t${JSON.stringify(doc)}`);
    await postError(`${base}/invocation/${id}/error`, e);
  }
}

process.on("uncaughtException", (e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(129);
});
process.on("unhandledRejection", (e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(128);
});

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
