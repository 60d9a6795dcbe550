import { describeEif } from '@enclave/eif'
import type { Command } from 'commander'
import type { CommandContext } from '../context.js'

/** `enclaver describe-eif FILE`: nitro-cli's describe-eif JSON (measurements, signature, CRC, metadata). */
export function registerDescribeEif(program: Command, ctx: CommandContext): void {
  program
    .command('describe-eif')
    .description("print an EIF's measurements, signature and metadata as JSON (nitro-cli's field names)")
    .argument('<file>', 'the EIF to describe')
    .action(async (file: string) => {
      const description = await describeEif(file, { signal: ctx.signal })
      ctx.out(`${JSON.stringify(description, null, 2)}\n`)
    })
}
