// Generates the JWT interoperability fixtures with jose (npm), and records
// what jose itself decides for every token, so that the C tests can check
// that libmsvc agrees.
//
//   cd tests/jwt/interop && npm ci && node generate.mjs
//
// Writes fixtures/: keys (PEM and a JWK Set) and tokens.json. Keys are made
// fresh on every run, so regenerate everything together and commit it.
import * as jose from 'jose';
import { createHmac, generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, 'fixtures');
mkdirSync(out, { recursive: true });

// Every verification, ours and jose's, runs at this instant.
const NOW = 1700000000;
const LEEWAY = 30;

const b64u = (buf) => Buffer.from(buf).toString('base64url');
const enc = (obj) => b64u(JSON.stringify(obj));

// ---- keys -------------------------------------------------------------------
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = {
  ES256: generateKeyPairSync('ec', { namedCurve: 'P-256' }),
  ES384: generateKeyPairSync('ec', { namedCurve: 'P-384' }),
  ES512: generateKeyPairSync('ec', { namedCurve: 'P-521' }),
};
const secrets = { HS256: randomBytes(32), HS384: randomBytes(48), HS512: randomBytes(64) };

const kidOf = {
  RS256: 'rsa-1', RS384: 'rsa-1', RS512: 'rsa-1',
  PS256: 'rsa-1', PS384: 'rsa-1', PS512: 'rsa-1',
  ES256: 'ec-256', ES384: 'ec-384', ES512: 'ec-521',
  HS256: 'hs-256', HS384: 'hs-384', HS512: 'hs-512',
};
const privateKey = (alg) =>
  alg.startsWith('HS') ? secrets[alg] : alg.startsWith('ES') ? ec[alg].privateKey : rsa.privateKey;

const jwks = { keys: [] };
const pubJwk = (k, extra) => ({ ...k.publicKey.export({ format: 'jwk' }), use: 'sig', ...extra });
jwks.keys.push(pubJwk(rsa, { kid: 'rsa-1' }));
for (const alg of ['ES256', 'ES384', 'ES512'])
  jwks.keys.push(pubJwk(ec[alg], { kid: kidOf[alg], alg }));
for (const alg of ['HS256', 'HS384', 'HS512'])
  jwks.keys.push({ kty: 'oct', k: b64u(secrets[alg]), kid: kidOf[alg], alg, use: 'sig' });
writeFileSync(join(out, 'jwks.json'), JSON.stringify(jwks, null, 2) + '\n');

const pem = (k, type) => k.export({ format: 'pem', type });
writeFileSync(join(out, 'rsa-private.pem'), pem(rsa.privateKey, 'pkcs8'));
writeFileSync(join(out, 'rsa-public.pem'), pem(rsa.publicKey, 'spki'));
for (const [alg, k] of Object.entries(ec)) {
  const n = alg.slice(2);
  writeFileSync(join(out, `ec${n}-private.pem`), pem(k.privateKey, 'pkcs8'));
  writeFileSync(join(out, `ec${n}-public.pem`), pem(k.publicKey, 'spki'));
}
for (const [alg, s] of Object.entries(secrets))
  writeFileSync(join(out, `${alg.toLowerCase()}.secret`), s);

// ---- tokens ------------------------------------------------------------------
const baseClaims = () => ({
  iss: 'https://issuer.example', aud: 'msvc-demo', sub: '42',
  iat: NOW - 60, nbf: NOW - 60, exp: NOW + 600, jti: 'fixture',
});

async function sign(alg, claims, header = {}) {
  return new jose.CompactSign(new TextEncoder().encode(JSON.stringify(claims)))
    .setProtectedHeader({ alg, kid: kidOf[alg], typ: 'JWT', ...header })
    .sign(privateKey(alg));
}

// Signs arbitrary header and payload bytes with HMAC, for tokens jose's
// signing API refuses to make (alg none aside, which needs no signature).
function hmacToken(headerObj, payloadText, secret, hash = 'sha256') {
  const input = `${enc(headerObj)}.${b64u(payloadText)}`;
  return `${input}.${b64u(createHmac(hash, secret).update(input).digest())}`;
}

// jose's local JWK Set serves asymmetric keys only; HMAC secrets are found
// the same way, by kid, or by algorithm when the token has no kid.
const asymmetric = jose.createLocalJWKSet(jwks);
const localSet = async (header, token) => {
  if (typeof header.alg !== 'string' || !header.alg.startsWith('HS'))
    return asymmetric(header, token);
  const k = jwks.keys.find((j) => j.kty === 'oct' &&
    (header.kid !== undefined ? j.kid === header.kid : j.alg === header.alg));
  if (!k || k.alg !== header.alg)
    throw new jose.errors.JWKSNoMatchingKey();
  return jose.base64url.decode(k.k);
};
const fixtures = [];

// jose's verdict, with the options expressed in its terms.
async function joseVerdict(token, opts) {
  try {
    await jose.jwtVerify(token, localSet, {
      currentDate: new Date(NOW * 1000),
      clockTolerance: LEEWAY,
      issuer: opts.issuer,
      audience: opts.audience,
      requiredClaims: opts.required,
      maxTokenAge: opts.max_age_s,
      typ: opts.typ,
    });
    return { ok: true, code: 'OK' };
  } catch (e) {
    return { ok: false, code: e.code || e.name };
  }
}

// expect: libmsvc's result (msvc_err_name() spelling). deviation: why, when
// libmsvc deliberately rejects what jose accepts.
async function add(name, token, expect, opts = {}, deviation) {
  const verdict = await joseVerdict(token, opts);
  const f = { name, token, options: opts, jose: verdict, expect };
  if (deviation) f.deviation = deviation;
  fixtures.push(f);
}

const std = { issuer: 'https://issuer.example', audience: 'msvc-demo' };
const algs = Object.keys(kidOf);

for (const alg of algs)
  await add(`valid_${alg.toLowerCase()}`, await sign(alg, baseClaims()), 'OK', std);
await add('valid_no_kid_es256', await new jose.SignJWT(baseClaims())
  .setProtectedHeader({ alg: 'ES256' }).sign(ec.ES256.privateKey), 'OK', {});

// alg none, and every spelling of it.
for (const none of ['none', 'None', 'NONE'])
  await add(`alg_${none}`, `${enc({ alg: none, typ: 'JWT' })}.${enc(baseClaims())}.`,
            'EJWT_ALG_NOT_ALLOWED', std);

// Algorithm confusion: HS256 "signed" with the RSA public key as a secret.
const rsaPubPem = pem(rsa.publicKey, 'spki');
await add('hs256_with_rsa_public_key',
  hmacToken({ alg: 'HS256', kid: 'rsa-1', typ: 'JWT' }, JSON.stringify(baseClaims()), rsaPubPem),
  'EJWT_ALG_NOT_ALLOWED', std);
await add('hs256_with_rsa_public_key_no_kid',
  hmacToken({ alg: 'HS256', typ: 'JWT' }, JSON.stringify(baseClaims()), rsaPubPem),
  'EJWT_BAD_SIGNATURE', std);
// Curve confusion: ES256 header with the P-384 key's id.
{
  const [, p, s] = (await sign('ES384', baseClaims())).split('.');
  await add('es256_header_with_p384_key', `${enc({ alg: 'ES256', kid: 'ec-384', typ: 'JWT' })}.${p}.${s}`,
            'EJWT_ALG_NOT_ALLOWED', std);
}

// Signature tampering.
for (const alg of ['HS256', 'RS256', 'PS256', 'ES256']) {
  const t = await sign(alg, baseClaims());
  const [h, p, s] = t.split('.');
  const evil = enc({ ...baseClaims(), sub: '1' });
  await add(`tampered_payload_${alg.toLowerCase()}`, `${h}.${evil}.${s}`, 'EJWT_BAD_SIGNATURE', std);
  // Shortened and lengthened by whole bytes, so the encoding stays valid
  // and only the length is wrong.
  const raw = Buffer.from(s, 'base64url');
  await add(`truncated_signature_${alg.toLowerCase()}`, `${h}.${p}.${b64u(raw.subarray(0, raw.length - 3))}`,
            'EJWT_BAD_SIGNATURE', std);
  await add(`extended_signature_${alg.toLowerCase()}`,
            `${h}.${p}.${b64u(Buffer.concat([raw, Buffer.from([0, 1, 2])]))}`,
            'EJWT_BAD_SIGNATURE', std);
  // Cut as text: whether the rest is still canonical base64url depends on
  // the bits the last character carries.
  const cut = s.slice(0, s.length - 4);
  await add(`truncated_signature_text_${alg.toLowerCase()}`, `${h}.${p}.${cut}`,
            b64u(Buffer.from(cut, 'base64url')) === cut ? 'EJWT_BAD_SIGNATURE' : 'EJWT_MALFORMED', std);
  await add(`empty_signature_${alg.toLowerCase()}`, `${h}.${p}.`, 'EJWT_BAD_SIGNATURE', std);
}
{
  const [h, p] = (await sign('ES256', baseClaims())).split('.');
  await add('es256_psychic_signature', `${h}.${p}.${b64u(Buffer.alloc(64))}`,
            'EJWT_BAD_SIGNATURE', std);
}

// Claims.
const withClaims = async (name, patch, expect, opts = std, alg = 'ES256') => {
  const c = { ...baseClaims(), ...patch };
  for (const k of Object.keys(patch)) if (patch[k] === undefined) delete c[k];
  await add(name, await sign(alg, c), expect, opts);
};
await withClaims('expired', { exp: NOW - 100 }, 'EJWT_EXPIRED');
await withClaims('expired_within_leeway', { exp: NOW - 10 }, 'OK');
await withClaims('expired_at_leeway_edge', { exp: NOW - LEEWAY }, 'EJWT_EXPIRED');
await withClaims('not_yet_valid', { nbf: NOW + 100 }, 'EJWT_NOT_YET_VALID');
await withClaims('not_yet_valid_within_leeway', { nbf: NOW + 10 }, 'OK');
await withClaims('wrong_issuer', { iss: 'https://evil.example' }, 'EJWT_BAD_ISSUER');
await withClaims('missing_issuer', { iss: undefined }, 'EJWT_BAD_ISSUER');
await withClaims('wrong_audience', { aud: 'other' }, 'EJWT_BAD_AUDIENCE');
await withClaims('audience_array_match', { aud: ['a', 'msvc-demo', 'b'] }, 'OK');
await withClaims('audience_array_no_match', { aud: ['a', 'b'] }, 'EJWT_BAD_AUDIENCE');
await withClaims('missing_audience', { aud: undefined }, 'EJWT_BAD_AUDIENCE');
await withClaims('missing_required_sub', { sub: undefined }, 'EJWT_MISSING_CLAIM',
                 { ...std, required: ['sub'] });
await withClaims('required_present', {}, 'OK', { ...std, required: ['sub', 'jti'] });
await withClaims('too_old', { iat: NOW - 1000 }, 'EJWT_TOO_OLD', { ...std, max_age_s: 600 });
await withClaims('young_enough', { iat: NOW - 100 }, 'OK', { ...std, max_age_s: 600 });
await add('typ_mismatch', await sign('ES256', baseClaims()), 'EJWT_BAD_TYPE',
          { ...std, typ: 'at+jwt' });
await add('typ_match', await sign('ES256', baseClaims(), { typ: 'at+jwt' }), 'OK',
          { ...std, typ: 'at+jwt' });
await add('unknown_kid', await sign('ES256', baseClaims(), { kid: 'no-such-key' }),
          'EJWT_UNKNOWN_KID', std);
await add('crit_header', await sign('HS256', baseClaims(), { crit: ['exp'], exp: NOW }).catch(
  () => hmacToken({ alg: 'HS256', kid: 'hs-256', crit: ['exp'], exp: NOW },
                  JSON.stringify(baseClaims()), secrets.HS256)),
          'EJWT_MALFORMED', std);
await add('payload_is_array',
  hmacToken({ alg: 'HS256', kid: 'hs-256' }, '["not","an","object"]', secrets.HS256),
  'EJWT_MALFORMED', std);
await add('payload_not_json',
  hmacToken({ alg: 'HS256', kid: 'hs-256' }, '{"sub":', secrets.HS256), 'EJWT_MALFORMED', std);
await add('two_parts', (await sign('HS256', baseClaims())).split('.').slice(0, 2).join('.'),
          'EJWT_MALFORMED', std);
await add('four_parts', `${await sign('HS256', baseClaims())}.AAAA`, 'EJWT_MALFORMED', std);

// Where libmsvc is deliberately stricter than jose (RFC 7515 §2 and the
// hardening rules): jose's verdict is recorded, libmsvc must reject.
{
  const t = await sign('ES256', baseClaims());
  const [h, p, s] = t.split('.');
  await add('b64_padded_signature', `${h}.${p}.${s}${'='.repeat((4 - (s.length % 4)) % 4 || 4)}`,
            'EJWT_MALFORMED', std, 'padding is not base64url (node\'s decoder ignores it)');
  // 64 bytes -> 86 characters whose last one carries 4 unused bits.
  const last = s[s.length - 1];
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const flipped = alphabet[alphabet.indexOf(last) ^ 1];
  await add('b64_nonzero_trailing_bits', `${h}.${p}.${s.slice(0, -1)}${flipped}`,
            'EJWT_MALFORMED', std, 'non-zero trailing bits make a second spelling of one signature');
  const stdAlpha = `${h}.${p}.${s.replace(/-/g, '+').replace(/_/g, '/')}`;
  if (stdAlpha !== t)
    await add('b64_standard_alphabet', stdAlpha, 'EJWT_MALFORMED', std,
              '"+" and "/" are not base64url');
  await add('b64_whitespace_in_payload', `${h}.${p.slice(0, 10)} ${p.slice(10)}.${s}`,
            'EJWT_BAD_SIGNATURE', std); // the signature is checked before the payload is decoded
  await add('b64_padded_header', `${h}=.${p}.${s}`, 'EJWT_MALFORMED', std);
}
await add('duplicate_claim_names',
  hmacToken({ alg: 'HS256', kid: 'hs-256', typ: 'JWT' },
            JSON.stringify(baseClaims()).replace('"sub":"42"', '"sub":"42","sub":"1"'),
            secrets.HS256),
  'EJWT_MALFORMED', std, 'duplicate member names are ambiguous (RFC 7515 §5.2)');
await withClaims('exp_not_integer', { exp: NOW + 600.5 }, 'EJWT_MALFORMED');
fixtures[fixtures.length - 1].deviation = 'time claims must be integers';
await withClaims('oversize', { pad: 'x'.repeat(9000) }, 'EJWT_MALFORMED');
fixtures[fixtures.length - 1].deviation = 'tokens over 8 KiB are refused before decoding';

writeFileSync(join(out, 'tokens.json'),
  JSON.stringify({ generator: `jose ${joseVersion()}`, now: NOW, leeway_s: LEEWAY, fixtures },
                 null, 1) + '\n');
console.log(`${fixtures.length} fixtures written to ${out}`);
for (const f of fixtures) {
  const agree = f.jose.ok === (f.expect === 'OK');
  if (!agree && !f.deviation)
    console.log(`  disagreement without a recorded reason: ${f.name} (jose ${f.jose.code})`);
  if (agree && f.deviation)
    console.log(`  note: ${f.name} is marked as a deviation but jose agrees`);
}

function joseVersion() {
  try {
    return JSON.parse(readFileSync(join(here, 'node_modules/jose/package.json'))).version;
  } catch {
    return '5';
  }
}
