import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { runCli } from '@enclave/test-helpers'
import { describe, expect, it } from 'vitest'

// examples/enclaver-app/demo.mjs (`pnpm start` there) runs the BUILT enclaver under --simulate
// with the example's manifest and checks every path; running it here keeps the example working.
const demo = fileURLToPath(new URL('../../../examples/enclaver-app/demo.mjs', import.meta.url))

describe('examples/enclaver-app', () => {
  it('passes every check: ingress (plain, mTLS), egress allowed and refused, attestation, KMS round trip', async () => {
    const result = await runCli(demo, [], { timeoutMs: 150_000, cwd: dirname(demo) })
    const output = `${result.stdout}\n${result.stderr.slice(-4000)}`
    expect(result.stdout, output).not.toMatch(/^FAIL/m)
    for (const line of [
      /^ok {3}the attestation's PCR0 is the EIF's$/m,
      /^ok {3}allowed outbound call \(egress rule "host"\): 200$/m,
      /^ok {3}refused outbound call \(not in the policy\): 403 egress to 127\.0\.0\.1 refused/m,
      /^ok {3}HTTPS ingress with a client certificate$/m,
      /^ok {3}HTTPS ingress without a client certificate is refused$/m,
      /^ok {3}KMS round trip \(GenerateDataKey \+ Decrypt, Recipient bound to PCR0\): 200, 200, data keys match: true$/m,
      // The app's own log line, carried to the host by odyn's log channel.
      /kms: GenerateDataKey 200, Decrypt 200, data keys match: true/,
    ])
      expect(result.stdout, output).toMatch(line)
    expect(result.code, output).toBe(0)
  }, 180_000)
})
