/** The OpenAPI 3.1 description that `ner-engine serve` gives at GET /openapi.json. */
import { AGGREGATIONS, type Aggregation } from "./text-tagger.js";

export function openApiDocument(o: { version: string; maxInputs: number; bodyLimit: number; defaultAggregation: Aggregation }): Record<string, unknown> {
  const error = { $ref: "#/components/schemas/Error" };
  const errorResponse = (description: string) => ({ description, content: { "application/json": { schema: error } } });
  const entityList = { type: "array", items: { $ref: "#/components/schemas/Entity" } };
  return {
    openapi: "3.1.0",
    info: {
      title: "ner-engine",
      version: o.version,
      description: "Named entity recognition with a saved ner-engine model, in the HF Inference API's token-classification shape. Requests of concurrent clients are batched into one model call.",
    },
    paths: {
      "/predict": {
        post: {
          summary: "Tag one text or several",
          requestBody: {
            required: true,
            description: `JSON, at most ${o.bodyLimit} bytes (any content type is read as JSON).`,
            content: { "application/json": { schema: { $ref: "#/components/schemas/PredictRequest" } } },
          },
          responses: {
            200: {
              description: "For a string input, its entities; for an array, one list of entities per text, in order.",
              content: { "application/json": { schema: { oneOf: [entityList, { type: "array", items: entityList }] } } },
            },
            400: errorResponse("Not JSON, wrong types, empty or too many inputs, an unknown parameter, or a text the model refuses"),
            413: errorResponse(`The body is larger than ${o.bodyLimit} bytes`),
            503: errorResponse("Overloaded (too many texts waiting; retry after the Retry-After seconds) or shutting down"),
          },
        },
      },
      "/health": {
        get: {
          summary: "Liveness; the texts waiting and being tagged, and the predict requests received so far",
          responses: {
            200: { description: "Serving", content: { "application/json": { schema: { type: "object", properties: { status: { const: "ok" }, queued: { type: "integer" }, inFlight: { type: "integer" }, requests: { type: "integer" } } } } } },
            503: errorResponse("Shutting down"),
          },
        },
      },
      "/metadata": {
        get: {
          summary: "The model (labels, entity types, encoder family, max length, head, device) and the batching settings",
          responses: { 200: { description: "Metadata", content: { "application/json": { schema: { $ref: "#/components/schemas/Metadata" } } } } },
        },
      },
      "/openapi.json": { get: { summary: "This document", responses: { 200: { description: "OpenAPI 3.1", content: { "application/json": {} } } } } },
    },
    components: {
      schemas: {
        PredictRequest: {
          type: "object",
          required: ["inputs"],
          additionalProperties: false,
          properties: {
            inputs: {
              oneOf: [
                { type: "string", minLength: 1 },
                { type: "array", minItems: 1, maxItems: o.maxInputs, items: { type: "string", minLength: 1 } },
              ],
            },
            parameters: {
              type: "object",
              additionalProperties: false,
              properties: {
                aggregation_strategy: {
                  enum: [...AGGREGATIONS],
                  default: o.defaultAggregation,
                  description: "HF TokenClassificationPipeline's: none (one entry per sub-token, field entity and index), simple, first, average, max (entity groups, field entity_group)",
                },
              },
            },
            options: { type: "object", description: "Accepted and ignored (HF Inference API options such as wait_for_model)" },
          },
        },
        Entity: {
          type: "object",
          required: ["score", "word", "start", "end"],
          properties: {
            entity_group: { type: "string", description: "Entity type (aggregation other than none)" },
            entity: { type: "string", description: "Label of the sub-token (aggregation none)" },
            index: { type: "integer", description: "Sub-token position (aggregation none)" },
            score: { type: "number" },
            word: { type: "string" },
            start: { type: ["integer", "null"], description: "Start offset in Unicode code points (Python str index)" },
            end: { type: ["integer", "null"], description: "End offset (exclusive) in Unicode code points" },
          },
        },
        Metadata: {
          type: "object",
          properties: {
            model: { type: "string" },
            labels: { type: "array", items: { type: "string" } },
            entityTypes: { type: "array", items: { type: "string" } },
            encoder: { type: "string" },
            maxLength: { type: "integer" },
            head: { type: "string" },
            device: { type: "string" },
            version: { type: "string" },
            batching: { type: "object" },
            defaultAggregation: { type: "string" },
            aggregations: { type: "array", items: { type: "string" } },
          },
        },
        Error: { type: "object", required: ["error"], properties: { error: { type: "string" } } },
      },
    },
  };
}
