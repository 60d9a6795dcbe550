/**
 * Recipient support for an @aws-sdk/client-kms client, as SDK middleware: the app keeps calling
 * `client.send(new DecryptCommand(…))`, and the middleware adds the Recipient on the way out and
 * fills Plaintext / PrivateKeyPlaintext / SharedSecret from CiphertextForRecipient on the way back.
 * Typed structurally so this package does not pin an SDK version.
 */

import { plainFieldOf } from './actions.js'
import { MissingCiphertextError } from './errors.js'
import type { Recipient } from './recipient.js'

type Next = (args: { input: Record<string, unknown> }) => Promise<{ output: Record<string, unknown> }>

/** The part of an SDK client this needs (`KMSClient` satisfies it). */
export interface KmsClientLike {
  middlewareStack: {
    add(middleware: unknown, options: { step: 'initialize'; name: string; priority?: 'high' }): void
    remove(name: string): boolean
  }
}

const MIDDLEWARE_NAME = 'enclaveKmsRecipient'

/**
 * Makes every Decrypt, GenerateDataKey, GenerateDataKeyPair, DeriveSharedSecret and GenerateRandom
 * sent through `client` carry the enclave's attested Recipient, and decrypts the answer.
 * Returns a function that removes the middleware again.
 */
export function attachRecipient(client: KmsClientLike, recipient: Recipient): () => void {
  const middleware =
    (next: Next, context: { commandName?: string }) => async (args: { input: Record<string, unknown> }) => {
      const action = context.commandName?.replace(/Command$/, '') ?? ''
      const field = plainFieldOf(action)
      if (field === undefined) return next(args)
      const result = await next({ ...args, input: { ...args.input, Recipient: await recipient.field() } })
      const cms = result.output.CiphertextForRecipient
      if (!(cms instanceof Uint8Array)) {
        throw new MissingCiphertextError(
          `${action}: the response carries no CiphertextForRecipient (does the endpoint support Recipient?)`,
        )
      }
      const { CiphertextForRecipient: _sealed, ...output } = result.output
      return { ...result, output: { ...output, [field]: recipient.open(cms) } }
    }
  client.middlewareStack.add(middleware, { step: 'initialize', name: MIDDLEWARE_NAME, priority: 'high' })
  return () => {
    client.middlewareStack.remove(MIDDLEWARE_NAME)
  }
}
