/**
 * Helpers shared by the test suites of every package: temporary folders, open-fd counting,
 * spawning built CLIs. Private to the repository, imported from source.
 */

export { makeCa, makeLeaf, type Pem } from './certs.js'
export { type CliResult, runCli } from './cli.js'
export { countOpenFds } from './fds.js'
export { peakRssOf, sha256OfFile } from './files.js'
export { type DeadPort, holdDeadPort } from './ports.js'
export { makeTempDir } from './temp.js'
export { waitFor } from './wait.js'
