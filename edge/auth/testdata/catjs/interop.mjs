// Mints, verifies and renews Common Access Tokens with @eyevinn/cat, for
// deepcast's interoperability tests. One JSON request on stdin, one JSON
// answer on stdout:
//   {"op":"mint", "kid", "keyHex", "claims": {...}, "cwtTag": bool}  -> {"token"}
//   {"op":"verify", "kid", "keyHex", "token", "issuer", "audience", "url"} -> {"claims"} or {"error"}
//   {"op":"http", "kid", "keyHex", "issuer", "url", "header"?, "cookie"?} -> {"status", "message", "headers"}
//     (the library's HTTP validator, which renews catr tokens)
import { CAT, HttpValidator } from '@eyevinn/cat';
import { OutgoingMessage } from 'node:http';

const input = JSON.parse(await new Promise((resolve) => {
  let s = '';
  process.stdin.on('data', (d) => (s += d));
  process.stdin.on('end', () => resolve(s));
}));
const keys = { [input.kid]: Buffer.from(input.keyHex, 'hex') };
let out;
try {
  if (input.op === 'mint') {
    const cat = new CAT({ keys, expectCwtTag: input.cwtTag !== false });
    out = { token: await cat.generateFromJson(input.claims, { type: 'mac', alg: 'HS256', kid: input.kid, generateCwtId: true }) };
  } else if (input.op === 'verify') {
    const cat = new CAT({ keys, expectCwtTag: true });
    const r = await cat.validate(input.token, 'mac', { issuer: input.issuer, audience: input.audience, url: new URL(input.url) });
    out = r.error ? { error: r.error.message } : { claims: r.cat.claims };
  } else if (input.op === 'http') {
    const v = new HttpValidator({ keys: [{ kid: input.kid, key: keys[input.kid] }], issuer: input.issuer, autoRenewEnabled: true });
    const u = new URL(input.url);
    const headers = { host: u.host };
    if (input.header) headers['cta-common-access-token'] = input.header;
    if (input.cookie) headers.cookie = input.cookie;
    const res = new OutgoingMessage();
    const r = await v.validateHttpRequest({ headers, url: u.pathname + u.search, method: 'GET' }, res);
    out = { status: r.status, message: r.message, headers: res.getHeaders() };
  } else {
    out = { error: 'unknown op ' + input.op };
  }
} catch (err) {
  out = { error: String(err && err.message || err) };
}
process.stdout.write(JSON.stringify(out, (k, v) => (typeof v === 'bigint' ? Number(v) : v)) + '\n');
