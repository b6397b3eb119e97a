// A wallet simulator built from Digital Bazaar's packages: it holds a did:key
// (Ed25519, @digitalbazaar/ed25519-multikey), answers a DIDAuth
// VerifiablePresentationRequest with a presentation signed by
// @digitalbazaar/vc's signPresentation (eddsa-rdfc-2022 or eddsa-jcs-2022),
// and, talking to a server, completes a VC-API exchange and checks the
// credential it receives. Offline: contexts come from npm packages, did:key
// documents from the DID itself.
//
// Two modes:
//   node wallet.mjs sign [--suite eddsa-rdfc-2022|eddsa-jcs-2022]
//     stdin: {"verifiablePresentationRequest": {...}} (a seed may be given as
//     "seed": hex, for a reproducible holder). stdout: {"holder": did,
//     "verifiablePresentation": {...}}.
//   node wallet.mjs exchange <exchange URL> [--suite ...]
//     POSTs {} to the URL, signs the DIDAuth request it answers, POSTs the
//     presentation, verifies the credential it gets back (Digital Bazaar's
//     verifier, both EdDSA suites) and checks it is bound to the holder.
//     stdout: {"holder", "credential", "verified", "bound", "error"}; exit 0
//     only when the credential verifies and is bound to the holder.
//     (For a server with a self-signed certificate, give node its CA with
//     NODE_EXTRA_CA_CERTS.)
import * as Ed25519Multikey from '@digitalbazaar/ed25519-multikey';
import * as vc from '@digitalbazaar/vc';
import {
  createSignCryptosuite, createVerifyCryptosuite
} from '@digitalbazaar/eddsa-jcs-2022-cryptosuite';
import {cryptosuite as rdfcCryptosuite} from
  '@digitalbazaar/eddsa-rdfc-2022-cryptosuite';
import {DataIntegrityProof} from '@digitalbazaar/data-integrity';
import {offlineDocumentLoader} from './offline.mjs';

const [mode = 'sign', ...rest] = process.argv.slice(2);
const suiteName = valueOf('--suite') ?? 'eddsa-rdfc-2022';

const documentLoader = offlineDocumentLoader();

async function holderKey(seedHex) {
  const seed = seedHex ? Uint8Array.from(Buffer.from(seedHex, 'hex')) :
    undefined;
  const keyPair = await Ed25519Multikey.generate({seed});
  const did = `did:key:${keyPair.publicKeyMultibase}`;
  keyPair.controller = did;
  keyPair.id = `${did}#${keyPair.publicKeyMultibase}`;
  return {did, keyPair};
}

async function answer(request, seedHex) {
  const {did, keyPair} = await holderKey(seedHex);
  const signer = keyPair.signer();
  const cryptosuite = suiteName === 'eddsa-jcs-2022' ?
    createSignCryptosuite() : rdfcCryptosuite;
  const suite = new DataIntegrityProof({signer, cryptosuite});
  const presentation = vc.createPresentation({holder: did});
  const verifiablePresentation = await vc.signPresentation({
    presentation,
    suite,
    documentLoader,
    challenge: request.challenge,
    domain: request.domain
  });
  return {holder: did, verifiablePresentation};
}

async function postJson(url, body) {
  const response = await fetch(url, {
    method: 'POST',
    headers: {'content-type': 'application/json'},
    body: JSON.stringify(body)
  });
  const text = await response.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch{}
  if(!response.ok) {
    throw new Error(`${url}: HTTP ${response.status} ${text.slice(0, 500)}`);
  }
  return json;
}

async function exchange(url) {
  const output = {holder: null, credential: null, verified: false,
    bound: false, error: null};
  try {
    const {verifiablePresentationRequest: request} = await postJson(url, {});
    const {holder, verifiablePresentation} = await answer(request);
    output.holder = holder;
    const service = request.interact?.service?.[0]?.serviceEndpoint ?? url;
    const result = await postJson(service, {verifiablePresentation});
    const [credential] =
      [].concat(result.verifiablePresentation?.verifiableCredential ?? []);
    output.credential = credential ?? null;
    if(credential) {
      const verified = await vc.verifyCredential({
        credential,
        documentLoader,
        suite: [
          new DataIntegrityProof({cryptosuite: createVerifyCryptosuite()}),
          new DataIntegrityProof({cryptosuite: rdfcCryptosuite})
        ],
        // the status list is the server's business here; the route test
        // checks revocation with verify.mjs
        checkStatus: async () => ({verified: true})
      });
      output.verified = verified.verified;
      if(!verified.verified) {
        output.error = JSON.stringify(verified.error?.errors?.map(
          e => e.message) ?? verified.error?.message ?? verified.error);
      }
      output.bound = credential.credentialSubject?.id === holder;
    }
  } catch(error) {
    output.error = error.message;
  }
  return output;
}

if(mode === 'sign') {
  const input = JSON.parse(await readStdin());
  const request = input.verifiablePresentationRequest ?? input;
  process.stdout.write(JSON.stringify(await answer(request, input.seed)) +
    '\n');
} else if(mode === 'exchange') {
  const output = await exchange(rest.find(arg => !arg.startsWith('--') &&
    arg !== suiteName));
  process.stdout.write(JSON.stringify(output, null, 2) + '\n');
  process.exit(output.verified && output.bound ? 0 : 1);
} else {
  process.stderr.write('usage: node wallet.mjs sign|exchange <url> ' +
    '[--suite eddsa-rdfc-2022|eddsa-jcs-2022]\n');
  process.exit(2);
}

function valueOf(flag) {
  const index = process.argv.indexOf(flag);
  return index >= 0 ? process.argv[index + 1] : undefined;
}

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) {
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}
