// A test OTLP/HTTP collector. It decodes what libmsvc sends with the
// OpenTelemetry protocol definitions that @opentelemetry/otlp-transformer
// ships (protobufjs, generated from opentelemetry-proto), not with a decoder
// of ours, and refuses a payload whose fields the definitions do not know.
// Both encodings are taken: application/x-protobuf and application/json.
//
//   node collector.mjs [--status CODE] [--fail-first N]
//
// Prints "listening PORT" once bound to 127.0.0.1 (port 0). POST /v1/traces
// takes a batch; GET /spans returns every span received so far, flattened
// with its resource attributes; GET /stats the request counts.
import http from 'node:http';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const root = require('@opentelemetry/otlp-transformer/build/src/generated/root.js');
const Req = root.opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest;
const Long = require('long');

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
let status = opt('--status', 200);
let failFirst = opt('--fail-first', 0);
const spans = [];
const errors = [];
const stats = { posts: 0, accepted: 0, refused: 0, invalid: 0, protobuf: 0, json: 0 };

const HEX = { traceId: 32, spanId: 16, parentSpanId: 16 };

// OTLP/JSON carries ids as hex; the protobuf mapping wants bytes.
function idsToBytes(v, path) {
  if (Array.isArray(v)) return v.map((x, i) => idsToBytes(x, `${path}[${i}]`));
  if (v === null || typeof v !== 'object') return v;
  const out = {};
  for (const [k, x] of Object.entries(v)) {
    if (k in HEX && typeof x === 'string') {
      if (!new RegExp(`^[0-9a-f]{${HEX[k]}}$`).test(x))
        throw new Error(`${path}.${k}: not ${HEX[k]} lower-case hex digits: ${x}`);
      out[k] = Buffer.from(x, 'hex');
    } else if (/UnixNano$|^intValue$/.test(k) && typeof x === 'string') {
      // OTLP/JSON: 64-bit integers as decimal strings
      if (!/^-?[0-9]+$/.test(x)) throw new Error(`${path}.${k}: not a decimal integer: ${x}`);
      out[k] = Long.fromString(x, k !== 'intValue');
    } else {
      out[k] = idsToBytes(x, `${path}.${k}`);
    }
  }
  return out;
}

const isDefault = (x) => x === 0 || x === '0' || x === '' || x === false ||
  (Array.isArray(x) && x.length === 0) ||
  (x && typeof x === 'object' && !Array.isArray(x) && Object.values(x).every(isDefault));

// Every field we sent must come back from the protobuf round trip: a field
// the definitions do not know (a typo, a wrong nesting) would be lost there.
function sameOrLost(sent, back, path) {
  if (Array.isArray(sent)) {
    if (!Array.isArray(back) || back.length !== sent.length) {
      if (sent.length === 0 && back === undefined) return;
      throw new Error(`${path}: array lost or resized`);
    }
    sent.forEach((x, i) => sameOrLost(x, back[i], `${path}[${i}]`));
    return;
  }
  if (sent !== null && typeof sent === 'object') {
    for (const [k, x] of Object.entries(sent)) {
      if (back === undefined || !(k in back)) {
        if (isDefault(x)) continue;
        throw new Error(`${path}.${k}: unknown to the OTLP definitions or lost`);
      }
      sameOrLost(x, back[k], `${path}.${k}`);
    }
    return;
  }
  if (String(sent) !== String(back))
    throw new Error(`${path}: sent ${JSON.stringify(sent)}, decoded ${JSON.stringify(back)}`);
}

function decode(body) {
  const json = JSON.parse(body);
  const obj = idsToBytes(json, '$');
  const why = Req.verify(obj);
  if (why) throw new Error(`verify: ${why}`);
  const wire = Req.encode(Req.fromObject(obj)).finish();
  const msg = Req.decode(wire);
  const hexed = hexIds(Req.toObject(msg, { longs: String, enums: Number, bytes: String }));
  sameOrLost(json, hexed, '$');
  return hexed;
}

// Span.flags (field 16, fixed32) came with OTLP 1.1, after the definitions
// this package pins: protobufjs would skip it unseen. It is taken out of
// the bytes here (the only thing this walk does; it rewrites the lengths of
// the messages around it) and reported beside each span.
const PATH = [1, 2, 2]; // resource_spans, scope_spans, spans

function varint(buf, pos) {
  let v = 0, mul = 1, b;
  do {
    if (pos >= buf.length) throw new Error('truncated varint');
    b = buf[pos++];
    v += (b & 0x7f) * mul;
    mul *= 128;
  } while (b & 0x80);
  return [v, pos];
}

function encVarint(n) {
  const out = [];
  while (n >= 128) {
    out.push((n % 128) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}

function stripFlags(buf, depth, flags) {
  const parts = [];
  let pos = 0, spanFlags = null;
  while (pos < buf.length) {
    const start = pos;
    let tag, len;
    [tag, pos] = varint(buf, pos);
    const field = Math.floor(tag / 8), wt = tag & 7, tagEnd = pos;
    if (depth === 3 && field === 16) {
      if (wt !== 5 || spanFlags !== null || pos + 4 > buf.length)
        throw new Error('Span.flags: not one fixed32');
      spanFlags = buf.readUInt32LE(pos);
      pos += 4;
      continue;
    }
    if (wt === 0) [, pos] = varint(buf, pos);
    else if (wt === 1) pos += 8;
    else if (wt === 5) pos += 4;
    else if (wt === 2) {
      [len, pos] = varint(buf, pos);
      if (pos + len > buf.length) throw new Error('length past the end');
      if (depth < 3 && field === PATH[depth]) {
        const inner = stripFlags(buf.subarray(pos, pos + len), depth + 1, flags);
        parts.push(buf.subarray(start, tagEnd), encVarint(inner.length), inner);
        pos += len;
        continue;
      }
      pos += len;
    } else throw new Error(`wire type ${wt}`);
    if (pos > buf.length) throw new Error('field past the end');
    parts.push(buf.subarray(start, pos));
  }
  if (depth === 3) flags.push(spanFlags);
  return Buffer.concat(parts);
}

function hexIds(back) {
  // bytes came back base64: hex, as in OTLP/JSON
  return JSON.parse(JSON.stringify(back), (k, v) =>
    k in HEX && typeof v === 'string' ? Buffer.from(v, 'base64').toString('hex') : v);
}

function decodeProtobuf(body, flags) {
  const known = stripFlags(body, 0, flags);
  const msg = Req.decode(known);
  // Re-encoded, the message must give back the very bytes we were sent:
  // protobufjs drops fields it does not know, and writes every field it
  // knows in field order with the shortest varints.
  const again = Buffer.from(Req.encode(msg).finish());
  if (Buffer.compare(again, known) !== 0)
    throw new Error(`protobuf: ${known.length} bytes sent, ${again.length} re-encoded ` +
                    '(an unknown field, a wrong wire type or a non-canonical encoding)');
  return hexIds(Req.toObject(msg, { longs: String, enums: Number, bytes: String }));
}

function flatten(req, flags) {
  let i = 0;
  for (const rs of req.resourceSpans || []) {
    const resource = {};
    for (const a of (rs.resource && rs.resource.attributes) || [])
      resource[a.key] = Object.values(a.value)[0];
    for (const ss of rs.scopeSpans || []) {
      for (const s of ss.spans || []) {
        const attrs = {};
        for (const a of s.attributes || []) attrs[a.key] = Object.values(a.value)[0];
        const f = flags ? flags[i++] : undefined;
        spans.push({ ...s, attrs, resource, scope: ss.scope,
                     ...(f !== undefined && f !== null ? { flags: f } : {}) });
      }
    }
  }
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const reply = (code, obj) => {
      res.writeHead(code, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(obj));
    };
    if (req.method === 'GET' && req.url === '/spans') return reply(200, spans);
    if (req.method === 'GET' && req.url === '/stats') return reply(200, { ...stats, errors });
    if (req.method === 'POST' && req.url === '/status') {
      status = Number(Buffer.concat(chunks).toString());
      return reply(200, {});
    }
    if (req.method !== 'POST' || req.url !== '/v1/traces') return reply(404, {});
    stats.posts++;
    if (failFirst > 0 || status !== 200) {
      if (failFirst > 0) failFirst--;
      stats.refused++;
      res.writeHead(failFirst >= 0 && status === 200 ? 503 : status, { 'Retry-After': '0' });
      return res.end();
    }
    const ct = req.headers['content-type'] || '';
    try {
      if (ct.startsWith('application/x-protobuf')) {
        const flags = [];
        flatten(decodeProtobuf(Buffer.concat(chunks), flags), flags);
        stats.protobuf++;
      } else if (ct.startsWith('application/json')) {
        flatten(decode(Buffer.concat(chunks).toString()));
        stats.json++;
      } else {
        throw new Error(`Content-Type ${ct}`);
      }
      stats.accepted++;
      reply(200, { partialSuccess: {} });
    } catch (e) {
      stats.invalid++;
      errors.push(String(e.message));
      reply(400, { error: String(e.message) });
    }
  });
});
server.listen(0, '127.0.0.1', () => {
  console.log(`listening ${server.address().port}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
