// certflow's credentials, checked by the Digital Credentials Consortium's
// verifier (@digitalcredentials/verifier-core: the Learner Credential Wallet's
// and VerifierPlus's), which accepts only Ed25519Signature2020 and
// eddsa-rdfc-2022 proofs.
//
// stdin: a credential. stdout: {"signature": "valid"|"invalid"|null,
// "log": [...], "errors": [...]}. Exit status 0 only when the signature step
// is valid.
//
// verifier-core builds its own document loader (its shipped contexts, did:key
// from the DID) and fetches any other context over HTTP; it does not ship the
// W3C undefined-terms context certflow's signatories need. Nothing may leave
// this machine, so `fetch` is replaced: it answers for the W3C contexts (from
// @digitalbazaar/credentials-context, the copies the other verifier uses) and
// refuses everything else (verifier-core's optional JSON schema check then
// reports that it could not load the schema, which is not a verification step).
// No issuer registries are given, so "registered_issuer" is false: not asked.
import {contexts as w3cContexts} from '@digitalbazaar/credentials-context';

globalThis.fetch = async function offlineFetch(resource) {
  const url = typeof resource === 'string' ? resource : resource.url;
  if(w3cContexts.has(url)) {
    return new Response(JSON.stringify(w3cContexts.get(url)), {
      status: 200, headers: {'content-type': 'application/ld+json'}
    });
  }
  throw new TypeError(`offline: refusing to fetch ${url}`);
};
// verifier-core logs to the console; stdout is for the report only.
console.log = console.error;

const {verifyCredential} = await import('@digitalcredentials/verifier-core');
const credential = JSON.parse(await readStdin());
const result = await verifyCredential({credential, knownDIDRegistries: []});
const signatureStep = (result.log ?? []).find(
  entry => entry.id === 'valid_signature');
const output = {
  signature: signatureStep ? (signatureStep.valid ? 'valid' : 'invalid') : null,
  log: (result.log ?? []).map(({id, valid}) => ({id, valid})),
  errors: (result.errors ?? []).map(({name, message}) => ({name, message}))
};
process.stdout.write(JSON.stringify(output, null, 2) + '\n');
process.exit(output.signature === 'valid' && !output.errors.length ? 0 : 1);

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) {
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}
