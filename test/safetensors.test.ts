import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { FIXTURE_SETS, fixtureTitle, has } from "./helpers/shared.js";
import { NerEngineError } from "../src/errors.js";
import {
  DTYPE_SIZE,
  parseSafetensors,
  readSafetensorsFile,
  serializeSafetensors,
  toFloat32,
  writeFileAtomic,
  type TensorView,
} from "../src/model/safetensors.js";


const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "ner-safetensors-test-"));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

/** Builds raw safetensors bytes from a header (object or literal text) and a data buffer size. */
function rawFile(header: unknown, dataBytes: number, headerLenOverride?: bigint): Uint8Array {
  const text = typeof header === "string" ? header : JSON.stringify(header);
  const h = Buffer.from(text, "utf8");
  const out = Buffer.alloc(8 + h.length + dataBytes);
  out.writeBigUInt64LE(headerLenOverride ?? BigInt(h.length), 0);
  h.copy(out, 8);
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

function expectError(fn: () => unknown, ...fragments: (string | RegExp)[]): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(NerEngineError);
  const msg = (caught as Error).message;
  for (const f of fragments) {
    if (typeof f === "string") expect(msg).toContain(f);
    else expect(msg).toMatch(f);
  }
}

// On the committed small fixture (test/fixtures) and on ../shared's.
for (const set of FIXTURE_SETS) {
  const TINY = path.join(set.dir, "tiny-bert-ner");
  describe.skipIf(!has(TINY))(fixtureTitle("parseSafetensors on the tiny-bert-ner fixture", set, "tiny-bert-ner"), () => {
    let config: any;
    let parsed: ReturnType<typeof readSafetensorsFile>;
    beforeAll(() => {
      config = JSON.parse(fs.readFileSync(path.join(TINY, "config.json"), "utf8"));
      parsed = readSafetensorsFile(path.join(TINY, "model.safetensors"));
    });

    it("finds every tensor with shapes matching config.json", () => {
      const { tensors, metadata } = parsed;
      const h = config.hidden_size;
      expect(metadata).toEqual({ format: "pt" });
      expect(tensors.size).toBe(5 + 16 * config.num_hidden_layers + 2);
      expect(tensors.get("bert.embeddings.word_embeddings.weight")?.shape).toEqual([config.vocab_size, h]);
      expect(tensors.get("bert.embeddings.position_embeddings.weight")?.shape).toEqual([config.max_position_embeddings, h]);
      expect(tensors.get("bert.embeddings.token_type_embeddings.weight")?.shape).toEqual([config.type_vocab_size, h]);
      expect(tensors.get("bert.encoder.layer.1.intermediate.dense.weight")?.shape).toEqual([config.intermediate_size, h]);
      expect(tensors.get("bert.encoder.layer.1.output.dense.weight")?.shape).toEqual([h, config.intermediate_size]);
      expect(tensors.get("classifier.weight")?.shape).toEqual([Object.keys(config.id2label).length, h]);
      for (const t of tensors.values()) expect(t.dtype).toBe("F32");
    });

    it("returns views into the file bytes, and zero-copy aligned float32 arrays", () => {
      const t = parsed.tensors.get("bert.embeddings.LayerNorm.weight") as TensorView;
      expect(t.data.buffer).toBe(parsed.bytes.buffer);
      const f = toFloat32(t);
      expect(f.buffer).toBe(parsed.bytes.buffer);
      expect(f.length).toBe(config.hidden_size);
      expect(f.every((x) => Number.isFinite(x))).toBe(true);
    });

    it("re-serialises the fixture with identical tensor bytes", () => {
      const tensors = [...parsed.tensors.values()];
      const again = parseSafetensors(new Uint8Array(serializeSafetensors(tensors)), "reserialised");
      expect([...again.tensors.keys()].sort()).toEqual([...parsed.tensors.keys()].sort());
      for (const t of tensors) {
        const u = again.tensors.get(t.name) as TensorView;
        expect(u.shape).toEqual(t.shape);
        expect(Buffer.from(u.data).equals(Buffer.from(t.data))).toBe(true);
      }
    });
  });
}

describe("serializeSafetensors round trip", () => {
  it("is bitwise exact for every dtype, with a padded header and default metadata", () => {
    const f32 = new Float32Array([1.5, -0, NaN, Infinity, 3.4e38, 1e-45]);
    const i64 = new BigInt64Array([-1n, 9007199254740993n]);
    const f16 = new Uint16Array([0x3c00, 0xc000, 0x7bff]);
    const f64 = new Float64Array([Math.PI]);
    const u8 = new Uint8Array([0, 1, 255]);
    const bytes = serializeSafetensors(
      [
        { name: "z.f32", dtype: "F32", shape: [2, 3], data: f32 },
        { name: "a.i64", dtype: "I64", shape: [2], data: i64 },
        { name: "m.f16", dtype: "F16", shape: [3], data: f16 },
        { name: "b.f64", dtype: "F64", shape: [], data: f64 },
        { name: "c.u8", dtype: "U8", shape: [3], data: u8 },
        { name: "d.bool", dtype: "BOOL", shape: [0, 4], data: new Uint8Array(0) },
      ],
      { note: "hi" },
    );
    const headerLen = Number(bytes.readBigUInt64LE(0));
    expect(headerLen % 8).toBe(0);
    const view = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const { tensors, metadata } = parseSafetensors(view, "roundtrip");
    expect(metadata).toEqual({ format: "pt", note: "hi" });
    const same = (name: string, src: ArrayBufferView) => {
      const t = tensors.get(name) as TensorView;
      expect(Buffer.from(t.data).equals(Buffer.from(src.buffer, src.byteOffset, src.byteLength))).toBe(true);
      return t;
    };
    expect(same("z.f32", f32).shape).toEqual([2, 3]);
    same("a.i64", i64);
    same("m.f16", f16);
    expect(same("b.f64", f64).shape).toEqual([]);
    same("c.u8", u8);
    expect(same("d.bool", new Uint8Array(0)).shape).toEqual([0, 4]);
    expect(Array.from(toFloat32(tensors.get("z.f32") as TensorView))).toEqual(Array.from(f32));
    expect(toFloat32(tensors.get("b.f64") as TensorView)[0]).toBe(Math.fround(Math.PI));
    // Widest dtypes are laid out first, so every tensor starts aligned to its element size.
    for (const t of tensors.values()) {
      expect(t.data.buffer).toBe(bytes.buffer);
      expect((t.data.byteOffset - bytes.byteOffset) % DTYPE_SIZE[t.dtype]).toBe(0);
    }
  });

  it("refuses mislabelled or mis-sized data and duplicate names", () => {
    expectError(() => serializeSafetensors([{ name: "x", dtype: "F32", shape: [3], data: new Float32Array(2) }]), "x", "needs 12");
    expectError(() => serializeSafetensors([{ name: "x", dtype: "F16", shape: [2], data: new Float32Array(1) }]), "cannot be written as F16");
    const t = { name: "x", dtype: "U8" as const, shape: [1], data: new Uint8Array(1) };
    expectError(() => serializeSafetensors([t, t]), "duplicate");
  });
});

describe("toFloat32 conversions", () => {
  const view = (dtype: TensorView["dtype"], data: Uint8Array, n: number): TensorView => ({ name: "t", dtype, shape: [n], data });

  it("converts F16 exactly, including subnormals, infinities and NaN", () => {
    const bits = new Uint16Array([0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x8000, 0x7c00, 0xfc00, 0x7e00, 0x3555]);
    const f = toFloat32(view("F16", new Uint8Array(bits.buffer), bits.length));
    expect(Array.from(f.slice(0, 4))).toEqual([1, -2, 0.5, 65504]);
    expect(f[4]).toBe(2 ** -24);
    expect(Object.is(f[5], -0)).toBe(true);
    expect(f[6]).toBe(Infinity);
    expect(f[7]).toBe(-Infinity);
    expect(f[8]).toBeNaN();
    expect(f[9]).toBe(0.333251953125);
  });

  it("converts BF16 by widening the bits", () => {
    const bits = new Uint16Array([0x3f80, 0xc000, 0x4049, 0x0000, 0xff80, 0x7f7f]);
    const f = toFloat32(view("BF16", new Uint8Array(bits.buffer), bits.length));
    expect(Array.from(f.slice(0, 5))).toEqual([1, -2, 3.140625, 0, -Infinity]);
    expect(f[5]).toBeCloseTo(3.3895e38, -34);
  });

  it("copies unaligned F32 data instead of failing", () => {
    const buf = new Uint8Array(4 * 3 + 1);
    new DataView(buf.buffer).setFloat32(1, 1.25, true);
    new DataView(buf.buffer).setFloat32(5, -7, true);
    new DataView(buf.buffer).setFloat32(9, 0.1, true);
    const f = toFloat32(view("F32", buf.subarray(1), 3));
    expect(f.buffer).not.toBe(buf.buffer);
    expect(Array.from(f)).toEqual([1.25, -7, Math.fround(0.1)]);
  });

  it("refuses integer dtypes", () => {
    expectError(() => toFloat32(view("I64", new Uint8Array(8), 1)), "not a floating dtype");
  });
});

describe("parseSafetensors rejects malformed files", () => {
  const good = { w: { dtype: "F32", shape: [2, 2], data_offsets: [0, 16] } };

  it("accepts the well-formed baseline", () => {
    expect(parseSafetensors(rawFile(good, 16), "ok.safetensors").tensors.get("w")?.shape).toEqual([2, 2]);
  });

  it("file shorter than 8 bytes", () => {
    expectError(() => parseSafetensors(new Uint8Array(5), "short.safetensors"), "short.safetensors", "truncated");
  });

  it("truncated file: data cut off", () => {
    const full = rawFile(good, 16);
    expectError(() => parseSafetensors(full.subarray(0, full.length - 4), "cut.safetensors"), "cut.safetensors", 'tensor "w"', "truncated");
  });

  it("header length beyond the file", () => {
    expectError(() => parseSafetensors(rawFile(good, 16, 10_000n), "hdr.safetensors"), "hdr.safetensors", "beyond the file");
  });

  it("absurd header length", () => {
    expectError(() => parseSafetensors(rawFile(good, 16, 2n ** 62n), "huge.safetensors"), "huge.safetensors", "exceeds");
  });

  it("offsets outside the file", () => {
    const h = { w: { dtype: "F32", shape: [250], data_offsets: [0, 1000] } };
    expectError(() => parseSafetensors(rawFile(h, 16), "off.safetensors"), "off.safetensors", 'tensor "w"', "outside the file");
  });

  it("overlapping offsets", () => {
    const h = {
      a: { dtype: "F32", shape: [4], data_offsets: [0, 16] },
      b: { dtype: "F32", shape: [4], data_offsets: [8, 24] },
    };
    expectError(() => parseSafetensors(rawFile(h, 24), "ovl.safetensors"), "ovl.safetensors", 'tensor "b"', "overlap", '"a"');
  });

  it("wrong byte size for the shape", () => {
    const h = { w: { dtype: "F32", shape: [2, 3], data_offsets: [0, 16] } };
    expectError(() => parseSafetensors(rawFile(h, 16), "size.safetensors"), "size.safetensors", 'tensor "w"', "needs 24");
  });

  it("unknown dtype", () => {
    const h = { w: { dtype: "Q4_K", shape: [2], data_offsets: [0, 2] } };
    expectError(() => parseSafetensors(rawFile(h, 2), "dt.safetensors"), "dt.safetensors", 'tensor "w"', "unknown dtype", "Q4_K");
  });

  it("broken header JSON", () => {
    expectError(() => parseSafetensors(rawFile('{"w": {"dtype": "F32",', 16), "json.safetensors"), "json.safetensors", "not valid UTF-8 JSON");
  });

  it("header that is not an object", () => {
    expectError(() => parseSafetensors(rawFile([1, 2], 0), "arr.safetensors"), "arr.safetensors", "JSON object");
  });

  it("bad shape and bad offsets", () => {
    const badShape = { w: { dtype: "F32", shape: [2, -1], data_offsets: [0, 8] } };
    expectError(() => parseSafetensors(rawFile(badShape, 8), "s.safetensors"), 'tensor "w"', "non-negative integers");
    const fracShape = { w: { dtype: "F32", shape: [1.5], data_offsets: [0, 8] } };
    expectError(() => parseSafetensors(rawFile(fracShape, 8), "s.safetensors"), "non-negative integers");
    const backwards = { w: { dtype: "F32", shape: [2], data_offsets: [8, 0] } };
    expectError(() => parseSafetensors(rawFile(backwards, 8), "o.safetensors"), 'tensor "w"', "data_offsets");
    const oneOffset = { w: { dtype: "F32", shape: [2], data_offsets: [8] } };
    expectError(() => parseSafetensors(rawFile(oneOffset, 8), "o.safetensors"), "data_offsets");
  });

  it("non-string metadata", () => {
    expectError(() => parseSafetensors(rawFile({ __metadata__: { n: 1 } }, 0), "m.safetensors"), "__metadata__");
  });
});

describe("writeFileAtomic", () => {
  it("replaces an existing file and leaves no temp files", () => {
    const dir = fs.mkdtempSync(path.join(tmpRoot, "atomic-"));
    const target = path.join(dir, "out.bin");
    fs.writeFileSync(target, "old contents");
    writeFileAtomic(target, new Uint8Array([1, 2, 3]));
    expect(Array.from(fs.readFileSync(target))).toEqual([1, 2, 3]);
    writeFileAtomic(target, "text");
    expect(fs.readFileSync(target, "utf8")).toBe("text");
    expect(fs.readdirSync(dir)).toEqual(["out.bin"]);
  });

  it("fails cleanly when the directory does not exist", () => {
    expectError(() => writeFileAtomic(path.join(tmpRoot, "no-such-dir", "x"), "x"), "cannot write file");
  });
});
