/**
 * The KMS actions that accept a Recipient, and the response field that the decrypted
 * CiphertextForRecipient belongs in (enclaver's mapping, DeriveSharedSecret included).
 */
export const ATTESTING_ACTIONS = Object.freeze({
  Decrypt: 'Plaintext',
  GenerateDataKey: 'Plaintext',
  GenerateRandom: 'Plaintext',
  GenerateDataKeyPair: 'PrivateKeyPlaintext',
  DeriveSharedSecret: 'SharedSecret',
} as const)

export type AttestingAction = keyof typeof ATTESTING_ACTIONS

const BY_LOWER_CASE = new Map(
  Object.entries(ATTESTING_ACTIONS).map(([action, field]) => [action.toLowerCase(), field] as const),
)

/** The plain response field of an attesting action (case-insensitive, as enclaver matches it), else undefined. */
export function plainFieldOf(action: string): string | undefined {
  return BY_LOWER_CASE.get(action.toLowerCase())
}
