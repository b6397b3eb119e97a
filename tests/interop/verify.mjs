// An independent verifier for certflow's credentials: Digital Bazaar's VC stack,
// which shares no code with certflow. It never touches the network: contexts come
// from the npm packages below, did:key documents are derived from the DID itself,
// and status list credentials are the ones handed in on stdin.
//
// stdin: a credential, or {"credential": {...}, "documents": {url: document},
//        "now": "2026-11-24T09:30:00Z", "only": "eddsa-rdfc-2022"} where
//        `documents` holds what the verifier may load besides contexts and
//        did:keys (the status list credentials), and `only` names the one
//        cryptosuite to accept (default: eddsa-jcs-2022 and eddsa-rdfc-2022).
// stdout: {"verified": bool, "revoked": bool|null, "jsonld": "...", "error": ...}
// exit status: 0 only when verified and not revoked.
//
// Beyond vc.verifyCredential, every credential is expanded with jsonld in safe
// mode: an eddsa-jcs-2022 proof signs the JSON, so the library never expands it,
// and only safe-mode expansion catches a property the contexts do not define.

import * as vc from '@digitalbazaar/vc';
import {
  checkStatus
} from '@digitalbazaar/vc-bitstring-status-list';
import {createVerifyCryptosuite} from
  '@digitalbazaar/eddsa-jcs-2022-cryptosuite';
import {cryptosuite as rdfcCryptosuite} from
  '@digitalbazaar/eddsa-rdfc-2022-cryptosuite';
import {DataIntegrityProof} from '@digitalbazaar/data-integrity';
import jsonld from 'jsonld';
import {offlineDocumentLoader} from './offline.mjs';

const input = JSON.parse(await readStdin());
const envelope = 'credential' in input ? input : {credential: input};
const {credential, documents = {}, now} = envelope;

const documentLoader = offlineDocumentLoader(documents);

// Both EdDSA cryptosuites certflow signs with; a proof set must verify with both.
// `only` (in the envelope) restricts the verifier to one of them, so a test can
// show that each proof of a set verifies on its own.
const {only} = envelope;
const suites = {
  'eddsa-jcs-2022': new DataIntegrityProof({
    cryptosuite: createVerifyCryptosuite()
  }),
  'eddsa-rdfc-2022': new DataIntegrityProof({cryptosuite: rdfcCryptosuite})
};
const suite = only ? [suites[only]] : Object.values(suites);

// Every document the verifier reads must be fully defined by its contexts.
async function safeExpansion(document) {
  try {
    await jsonld.expand(document, {documentLoader, safe: true, base: null});
    return 'ok';
  } catch(error) {
    return `${error.name}: ${error.message} ${
      JSON.stringify(error.details?.event ?? {})}`;
  }
}

const result = await vc.verifyCredential({
  credential,
  suite,
  documentLoader,
  now: now ? new Date(now) : undefined,
  checkStatus: credential.credentialStatus ?
    options => checkStatus({
      ...options, suite: Object.values(suites), documentLoader}) :
    undefined
});

const expansions = {credential: await safeExpansion(credential)};
for(const [url, document] of Object.entries(documents)) {
  expansions[url] = await safeExpansion(document);
}
const jsonldOk = Object.values(expansions).every(value => value === 'ok');

let revoked = null;
if(result.statusResult?.verified) {
  revoked = result.statusResult.results.some(({status}) => status === true);
}

const output = {
  verified: result.verified && jsonldOk,
  revoked,
  signatureVerified: result.verified,
  jsonld: expansions,
  error: errorMessages(result),
  proofResults: (result.results ?? []).map(r => ({
    verified: r.verified,
    verificationMethod: r.verificationMethod?.id,
    cryptosuite: r.proof?.cryptosuite,
    error: r.error?.message ?? r.error?.errors?.map(e => e.message)
  })),
  statusResult: result.statusResult ? {
    verified: result.statusResult.verified,
    error: result.statusResult.error?.message,
    statuses: result.statusResult.results?.map(r => r.status)
  } : null
};
process.stdout.write(JSON.stringify(output, null, 2) + '\n');
process.exit(output.verified && revoked !== true ? 0 : 1);

function errorMessages(result) {
  const error = result.error;
  if(!error) {
    return null;
  }
  const errors = Array.isArray(error) ? error : (error.errors ?? [error]);
  return errors.map(e => e.message ?? String(e));
}

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) {
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}
