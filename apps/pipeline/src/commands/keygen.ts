import {
  createIdentityFile,
  IdentityInvalidError,
  loadDevIdentity,
  loadIdentity,
} from '@enclave/pipeline-cli'

/** `pipeline keygen --identity PATH`: creates an identity (0600) and prints its fingerprint. */
export async function keygenCommand(flags: { identity?: string; force?: boolean }): Promise<number> {
  if (!flags.identity) throw new IdentityInvalidError('keygen needs --identity PATH (the file to create)')
  const { identity, created } = await createIdentityFile(flags.identity, { overwrite: flags.force === true })
  if (!created) {
    throw new IdentityInvalidError(`${flags.identity} already exists; pass --force to replace it`)
  }
  process.stdout.write(`${identity.fingerprint}\n`)
  return 0
}

/** `pipeline fingerprint --identity PATH`: prints the key fingerprint to pin or authorize. */
export async function fingerprintCommand(flags: { identity?: string; dev?: boolean }): Promise<number> {
  if (!flags.identity && !flags.dev)
    throw new IdentityInvalidError('fingerprint needs --identity PATH or --dev')
  const identity = flags.identity ? await loadIdentity(flags.identity) : await loadDevIdentity()
  process.stdout.write(`${identity.fingerprint}\n`)
  return 0
}
