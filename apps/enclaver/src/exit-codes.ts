/**
 * The one place that turns error codes into process exit codes. Documented in the README.
 * Codes not listed here (other packages' errors) exit with 1.
 */
export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  manifest: 3,
  image: 4,
  engine: 5,
  input: 6,
  eif: 7,
  control: 8,
  interrupted: 130,
} as const

const BY_CODE: Readonly<Record<string, number>> = {
  ENCLAVE_BUILDER_MANIFEST_INVALID: EXIT.manifest,
  ENCLAVE_BUILDER_MANIFEST_UNREADABLE: EXIT.manifest,
  ENCLAVE_BUILDER_IMAGE_REFERENCE: EXIT.image,
  ENCLAVE_BUILDER_IMAGE_NOT_FOUND: EXIT.image,
  ENCLAVE_BUILDER_IMAGE_INVALID: EXIT.image,
  ENCLAVE_BUILDER_LAYER_INVALID: EXIT.image,
  ENCLAVE_BUILDER_ENGINE_UNAVAILABLE: EXIT.engine,
  ENCLAVE_BUILDER_INPUT_MISSING: EXIT.input,
  ENCLAVE_BUILDER_OUTPUT_FAILED: EXIT.failure,
  ENCLAVE_BUILDER_ABORTED: EXIT.interrupted,
  ENCLAVE_SUPERVISOR_CONTROL: EXIT.control,
}

/** Exit code for a thrown value: by its stable `code`, EIF codec errors as a group, else 1. */
export function exitCodeFor(err: unknown): number {
  const code = (err as { code?: unknown } | null)?.code
  if (typeof code !== 'string') return EXIT.failure
  const known = BY_CODE[code]
  if (known !== undefined) return known
  if (code.startsWith('ENCLAVE_EIF_')) return EXIT.eif
  return EXIT.failure
}
