import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { AddonUnavailableError } from './errors.js'

/** native/reaper.c: each function returns a result or -errno and never throws. */
export interface ReaperAddon {
  /** prctl(PR_SET_CHILD_SUBREAPER, 1): 0 or -errno. */
  setChildSubreaper(): number
  /** waitid(P_ALL, WEXITED|WNOHANG|WNOWAIT): pid of an ended child (not reaped), 0 if none, or -errno. */
  peekExited(): number
  /** waitpid(pid, WNOHANG): pid if reaped, 0 if still running, or -errno. */
  reap(pid: number): number
}

function packageRoot(): string {
  // src/ or dist/ sit one level below the package root.
  const here = typeof __dirname === 'string' ? __dirname : dirname(fileURLToPath(import.meta.url))
  return join(here, '..')
}

let loaded: { addon: ReaperAddon } | { error: AddonUnavailableError } | undefined

/** The addon, loaded once the node-gyp-build way; a failed load is a typed error (remembered). */
export function loadReaperAddon(): ReaperAddon {
  if (!loaded) loaded = tryLoad()
  if ('error' in loaded) throw loaded.error
  return loaded.addon
}

function tryLoad(): { addon: ReaperAddon } | { error: AddonUnavailableError } {
  if (process.platform !== 'linux') {
    return {
      error: new AddonUnavailableError(`the reaper addon is Linux-only (this is ${process.platform})`),
    }
  }
  const root = packageRoot()
  try {
    const require = createRequire(join(root, 'package.json'))
    const nodeGypBuild = require('node-gyp-build') as (dir: string) => ReaperAddon
    return { addon: nodeGypBuild(root) }
  } catch (cause) {
    return {
      error: new AddonUnavailableError(
        `the reaper addon could not be loaded from ${root} (${(cause as Error).message.split('\n')[0]}); rebuild it with "npx node-gyp rebuild" in that folder`,
        { cause },
      ),
    }
  }
}
