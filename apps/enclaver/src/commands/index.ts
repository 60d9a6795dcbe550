import type { RegisterCommand } from '../context.js'
import { registerAttest } from './attest.js'
import { registerBuild } from './build.js'
import { registerDescribeEif } from './describe-eif.js'
import { registerInitctl } from './initctl.js'
import { registerRun } from './run.js'

/** Every subcommand of `enclaver`, one file each. Add a line here to add a command. */
export const commands: readonly RegisterCommand[] = [
  registerAttest,
  registerBuild,
  registerDescribeEif,
  registerInitctl,
  registerRun,
]
