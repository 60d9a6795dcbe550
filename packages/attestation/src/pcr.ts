/**
 * PCR arithmetic as the Nitro Secure Module does it: SHA-384 registers that start at 48 zero bytes,
 * extend(PCR, d) = SHA384(PCR ‖ d).
 */

import { createHash } from 'node:crypto'
import { pemToDer } from './bytes.js'
import { InvalidOptionError } from './errors.js'

export const PCR_LENGTH = 48

/** Returns SHA384(pcr ‖ data). */
export function extendPcr(pcr: Uint8Array, data: Uint8Array | string): Uint8Array {
  if (pcr.length !== PCR_LENGTH)
    throw new InvalidOptionError(`a PCR is ${PCR_LENGTH} bytes, got ${pcr.length}`)
  return new Uint8Array(createHash('sha384').update(pcr).update(data).digest())
}

/** extend(48 zero bytes, data): the value of a PCR extended once from reset. */
export function pcrFromMeasurement(data: Uint8Array | string): Uint8Array {
  return extendPcr(new Uint8Array(PCR_LENGTH), data)
}

/** PCR3: the parent instance's IAM role ARN, extended as a UTF-8 string (not hashed first). */
export function pcr3FromRoleArn(roleArn: string): Uint8Array {
  if (!roleArn.startsWith('arn:'))
    throw new InvalidOptionError(`not an IAM role ARN: ${JSON.stringify(roleArn)}`)
  return pcrFromMeasurement(Buffer.from(roleArn, 'utf8'))
}

/** PCR4: the parent instance id (`i-…`) as a UTF-8 string. */
export function pcr4FromInstanceId(instanceId: string): Uint8Array {
  if (!/^i-[0-9a-f]+$/.test(instanceId)) {
    throw new InvalidOptionError(`not an EC2 instance id (i-<hex>): ${JSON.stringify(instanceId)}`)
  }
  return pcrFromMeasurement(Buffer.from(instanceId, 'utf8'))
}

/** PCR8: extend(SHA384(DER of the EIF signing certificate)); accepts DER bytes or PEM text. */
export function pcr8FromCertificate(certificate: Uint8Array | string): Uint8Array {
  const der = typeof certificate === 'string' ? pemToDer(certificate) : certificate
  if (!der || der.length === 0)
    throw new InvalidOptionError('pcr8FromCertificate needs DER bytes or a PEM certificate')
  return pcrFromMeasurement(createHash('sha384').update(der).digest())
}
