// Verifies with jose the tokens libmsvc signed: one token per line in the
// file named on the command line. Keys come from fixtures/jwks.json (HMAC
// secrets included). Prints one line per token; exits 1 if any fails.
import * as jose from 'jose';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const jwks = JSON.parse(readFileSync(join(here, 'fixtures/jwks.json'), 'utf8'));
const asymmetric = jose.createLocalJWKSet(jwks);
const keyFor = async (header, token) => {
  if (!header.alg.startsWith('HS'))
    return asymmetric(header, token);
  const k = jwks.keys.find((j) => j.kty === 'oct' && j.kid === header.kid);
  if (!k)
    throw new jose.errors.JWKSNoMatchingKey();
  return jose.base64url.decode(k.k);
};

let failed = 0;
const tokens = readFileSync(process.argv[2], 'utf8').split('\n').filter(Boolean);
for (const token of tokens) {
  const alg = jose.decodeProtectedHeader(token).alg;
  try {
    const { payload } = await jose.jwtVerify(token, keyFor, { currentDate: new Date(1700000000 * 1000) });
    console.log(`ok ${alg} sub=${payload.sub}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${alg} ${e.code || e.name}: ${e.message}`);
  }
}
process.exit(failed ? 1 : 0);
