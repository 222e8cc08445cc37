/**
 * `ner-engine serve`: an HTTP server (fastify) over one engine.
 *
 *   POST /predict       {"inputs": "text" | ["text", ...], "parameters": {"aggregation_strategy": "simple"}}
 *                       -> HF Inference API token-classification answer: [{entity_group, score, word, start,
 *                       end}] for a string, one such list per text for an array (offsets in code points)
 *   GET  /health        {"status": "ok", "queued", "inFlight", "requests"} (texts waiting / being tagged, predict
 *                       requests received so far; 503 while shutting down)
 *   GET  /metadata      labels, entity types, encoder family, max length, head, device, batching settings
 *   GET  /openapi.json  the OpenAPI 3.1 description of all this
 *
 * Texts of concurrent requests are micro-batched into one engine call (micro-batch.ts); the engine's
 * native work runs off the event loop. Bad requests get 4xx with {"error": message} and change nothing:
 * not JSON or wrong types 400, a body over `bodyLimit` 413, a full queue 503 (with Retry-After).
 * `close()` stops taking requests, lets the ones in flight finish, then resolves.
 */
import Fastify, { type FastifyInstance, type FastifyReply } from "fastify";
import { NerEngineError } from "../errors.js";
import { MicroBatcher, OverloadedError, type MicroBatchOptions } from "./micro-batch.js";
import { openApiDocument } from "./openapi.js";
import { AGGREGATIONS, engineTagger, type Aggregation, type TextTagger } from "./text-tagger.js";
import type { Io, ServeCommand } from "./cli.js";
import type { Engine } from "./engine.js";

export interface ModelMetadata {
  model: string;
  /** The model's labels in id order (its training scheme). */
  labels: readonly string[];
  /** Entity types (labels without B-/I-/E-/S-). */
  entityTypes: string[];
  /** Encoder family: bert, distilbert, roberta, xlm-roberta. */
  encoder: string;
  /** Window length in sub-tokens (longer texts are tagged in overlapping windows). */
  maxLength: number;
  head: string;
  device: string;
  version?: string;
}

export interface ServerOptions extends MicroBatchOptions {
  metadata: ModelMetadata;
  /** Largest request body in bytes (default 1 MiB). */
  bodyLimit?: number;
  /** Most texts in one request (default 256). */
  maxInputs?: number;
  /** aggregation_strategy when a request gives none (default "simple", as the HF Inference API). */
  defaultAggregation?: Aggregation;
}

export interface NerServer {
  app: FastifyInstance;
  batcher: MicroBatcher;
  /** Starts listening; resolves with the address ("http://127.0.0.1:8080"). */
  listen(opts: { host?: string; port?: number }): Promise<string>;
  /** Graceful stop: new requests get 503, requests in flight finish, then the sockets close. */
  close(): Promise<void>;
}

class HttpError extends Error {
  constructor(readonly statusCode: number, message: string) {
    super(message);
  }
}

const PARAMETERS = ["aggregation_strategy"] as const;

/** The request body, checked: texts, whether one string was sent, the strategy. */
export function parsePredictBody(body: unknown, opts: { maxInputs: number; defaultAggregation: Aggregation }): { texts: string[]; single: boolean; aggregation: Aggregation } {
  if (body === undefined || body === null || typeof body !== "object" || Array.isArray(body)) {
    throw new HttpError(400, `expected a JSON object {"inputs": "text" | ["text", ...], "parameters"?: {...}}, got ${kind(body)}`);
  }
  const b = body as Record<string, unknown>;
  const unknown = Object.keys(b).filter((k) => k !== "inputs" && k !== "parameters" && k !== "options");
  if (unknown.length) throw new HttpError(400, `unknown field "${unknown[0]}" (expected "inputs", "parameters")`);
  const inputs = b.inputs;
  let texts: string[];
  if (typeof inputs === "string") texts = [inputs];
  else if (Array.isArray(inputs)) {
    const bad = inputs.findIndex((t) => typeof t !== "string");
    if (bad >= 0) throw new HttpError(400, `"inputs"[${bad}] is ${kind(inputs[bad])}, expected a string`);
    texts = inputs as string[];
    if (texts.length === 0) throw new HttpError(400, `"inputs" is an empty array: give at least one text`);
    if (texts.length > opts.maxInputs) throw new HttpError(400, `"inputs" has ${texts.length} texts; at most ${opts.maxInputs} per request`);
  } else throw new HttpError(400, `"inputs" is ${kind(inputs)}, expected a string or an array of strings`);
  const empty = texts.findIndex((t) => t === "");
  if (empty >= 0) throw new HttpError(400, typeof inputs === "string" ? `"inputs" is an empty string` : `"inputs"[${empty}] is an empty string`);
  let aggregation = opts.defaultAggregation;
  if (b.parameters !== undefined) {
    const p = b.parameters;
    if (p === null || typeof p !== "object" || Array.isArray(p)) throw new HttpError(400, `"parameters" is ${kind(p)}, expected an object`);
    const params = p as Record<string, unknown>;
    const unknownParam = Object.keys(params).find((k) => !(PARAMETERS as readonly string[]).includes(k));
    if (unknownParam) throw new HttpError(400, `unknown parameter "${unknownParam}" (expected ${PARAMETERS.join(", ")})`);
    const a = params.aggregation_strategy;
    if (a !== undefined) {
      if (typeof a !== "string" || !(AGGREGATIONS as readonly string[]).includes(a)) {
        throw new HttpError(400, `"parameters.aggregation_strategy" must be one of ${AGGREGATIONS.join(", ")}; got ${typeof a === "string" ? JSON.stringify(a) : kind(a)}`);
      }
      aggregation = a as Aggregation;
    }
  }
  return { texts, single: typeof inputs === "string", aggregation };
}

function kind(x: unknown): string {
  if (x === undefined) return "missing";
  if (x === null) return "null";
  if (Array.isArray(x)) return "an array";
  return typeof x === "object" ? "an object" : `a ${typeof x}`;
}

export function createServer(tagger: TextTagger, opts: ServerOptions): NerServer {
  const bodyLimit = opts.bodyLimit ?? 1 << 20;
  const maxInputs = opts.maxInputs ?? 256;
  const defaultAggregation = opts.defaultAggregation ?? "simple";
  const batcher = new MicroBatcher(tagger, opts);
  let closing = false;
  let requests = 0;
  const app = Fastify({ logger: false, bodyLimit, return503OnClosing: true, forceCloseConnections: "idle" });

  // Every body is read as JSON, whatever its content type (curl -d sends x-www-form-urlencoded).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", { parseAs: "string" }, (_req, body, done) => {
    try {
      done(null, JSON.parse(body as string));
    } catch (e) {
      done(new HttpError(400, `the request body is not JSON (${(e as Error).message})`), undefined);
    }
  });
  app.setErrorHandler((error: Error & { statusCode?: number; code?: string }, _req, reply) => {
    let status = typeof error.statusCode === "number" && error.statusCode >= 400 && error.statusCode < 600 ? error.statusCode : 500;
    let message = error.message;
    if (error.code === "FST_ERR_CTP_BODY_TOO_LARGE") message = `the request body is larger than ${bodyLimit} bytes`;
    else if (error instanceof NerEngineError && status === 500) status = 400;
    void reply.code(status).send({ error: message });
  });
  app.setNotFoundHandler((req, reply) => void reply.code(404).send({ error: `no route ${req.method} ${req.url.split("?")[0]} (see GET /openapi.json)` }));
  // While closing, answers end their connection, so that close() need not wait for keep-alive timeouts.
  app.addHook("onSend", async (_req, reply) => {
    if (closing) reply.header("connection", "close");
  });

  app.post("/predict", async (req, reply: FastifyReply) => {
    requests++;
    const { texts, single, aggregation } = parsePredictBody(req.body, { maxInputs, defaultAggregation });
    let results;
    try {
      results = await batcher.submit(texts, aggregation);
    } catch (e) {
      if (e instanceof OverloadedError) return reply.code(503).header("retry-after", "1").send({ error: e.message });
      throw e;
    }
    const failed = results.findIndex((r) => r instanceof Error);
    if (failed >= 0) {
      const err = results[failed] as Error;
      const status = err instanceof NerEngineError ? 400 : 500;
      return reply.code(status).send({ error: single ? err.message : `"inputs"[${failed}]: ${err.message}` });
    }
    return single ? results[0] : results;
  });
  app.get("/health", async () => ({ status: "ok", queued: batcher.queued, inFlight: batcher.inFlight, requests }));
  const metadata = {
    ...opts.metadata,
    batching: { maxBatch: batcher.maxBatch, windowMs: batcher.windowMs, maxQueue: batcher.maxQueue, callBatch: batcher.callBatch, maxInputs, bodyLimit },
    defaultAggregation,
    aggregations: AGGREGATIONS,
  };
  app.get("/metadata", async () => metadata);
  const openapi = openApiDocument({ version: opts.metadata.version ?? "0", maxInputs, bodyLimit, defaultAggregation });
  app.get("/openapi.json", async () => openapi);

  return {
    app,
    batcher,
    async listen({ host = "127.0.0.1", port = 8080 }) {
      await app.listen({ host, port });
      const address = app.server.address();
      const where = typeof address === "object" && address ? address : { address: host, port };
      const h = where.address.includes(":") ? `[${where.address}]` : where.address;
      return `http://${h}:${where.port}`;
    },
    async close() {
      closing = true;
      const closed = app.close();
      // Connections kept alive after their last answer would hold close() until their timeout.
      await batcher.idle();
      setImmediate(() => app.server.closeIdleConnections());
      await closed;
    },
  };
}

/** `ner-engine serve`: serves until SIGTERM / SIGINT, then answers what is in flight and returns 0 (a second signal exits at once). */
export async function runServeCommand(cmd: ServeCommand, io: Io, load: (dir: string, device: ServeCommand["device"]) => Promise<Engine>, version: string): Promise<number> {
  const engine = await load(cmd.model, cmd.device);
  const model = engine.model!;
  const metadata: ModelMetadata = {
    model: cmd.model,
    labels: engine.labels,
    entityTypes: [...new Set(engine.labels.filter((l) => l !== "O").map((l) => l.replace(/^[BIES]-/, "")))],
    encoder: model.spec.encoder.family,
    maxLength: model.spec.input.maxLength,
    head: model.spec.head.kind,
    device: engine.device,
    version,
  };
  const server = createServer(engineTagger(engine), { metadata, maxBatch: cmd.maxBatch, windowMs: cmd.batchWindowMs, maxQueue: cmd.maxQueue });
  let url: string;
  try {
    url = await server.listen({ host: cmd.host, port: cmd.port });
  } catch (e) {
    engine.dispose();
    const code = (e as NodeJS.ErrnoException).code;
    throw new NerEngineError(`cannot listen on ${cmd.host}:${cmd.port}${code ? ` (${code})` : ""}: ${(e as Error).message}`);
  }
  io.out.write(`listening on ${url} (model ${cmd.model}, ${engine.device}, batches of up to ${cmd.maxBatch}): POST /predict, GET /health, /metadata, /openapi.json\n`);
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    const stop = (s: NodeJS.Signals) => () => {
      process.once(s, () => process.exit(s === "SIGINT" ? 130 : 143));
      resolve(s);
    };
    process.once("SIGTERM", stop("SIGTERM"));
    process.once("SIGINT", stop("SIGINT"));
  });
  io.err.write(`${signal}: no new requests; answering those in flight (${signal} again to exit now)\n`);
  await server.close();
  engine.dispose();
  io.err.write("stopped\n");
  return 0;
}
