/**
 * KMS `CiphertextForRecipient`: a BER CMS EnvelopedData (RFC 5652) with one KeyTransRecipientInfo,
 * RSAES-OAEP (SHA-256, MGF1-SHA-256, empty label) and AES-256-CBC content. Decoding is done by
 * @peculiar/asn1-cms (asn1js underneath, which reads indefinite lengths); this file only checks
 * that every algorithm is the one KMS uses, so a substituted algorithm is refused, not guessed.
 */

import { createDecipheriv, constants as cryptoConstants, type KeyObject, privateDecrypt } from 'node:crypto'
import { ContentInfo, EnvelopedData, id_data, id_envelopedData } from '@peculiar/asn1-cms'
import { id_mgf1, id_pSpecified, id_RSAES_OAEP, id_sha256, RsaEsOaepParams } from '@peculiar/asn1-rsa'
import { AsnConvert, OctetString } from '@peculiar/asn1-schema'
import { AlgorithmIdentifier } from '@peculiar/asn1-x509'
import { DecryptFailedError, InvalidOptionError, MalformedCmsError, UnsupportedCmsError } from './errors.js'

/** AES-256-CBC (NIST). */
export const ID_AES256_CBC = '2.16.840.1.101.3.4.1.42'

/**
 * Largest CiphertextForRecipient accepted. KMS content is at most a few KiB (GenerateRandom
 * ≤ 1024 bytes, an RSA-4096 private key ≈ 2.4 KiB); the bound keeps hostile input cheap.
 */
export const CMS_MAX_SIZE = 64 * 1024

/** The parts of an envelope that decryption needs. */
export interface CmsEnvelope {
  /** RSA-OAEP-wrapped AES key (256 bytes for RSA-2048). */
  readonly encryptedKey: Uint8Array
  /** AES-CBC IV (16 bytes). */
  readonly iv: Uint8Array
  /** AES-256-CBC ciphertext, the [0] chunks concatenated. */
  readonly encryptedContent: Uint8Array
  /** The recipient's subjectKeyIdentifier, when rid uses one (KMS: 32 bytes, derivation undocumented). */
  readonly subjectKeyIdentifier: Uint8Array | undefined
}

const bytes = (buffer: ArrayBuffer | ArrayBufferView): Uint8Array =>
  buffer instanceof ArrayBuffer
    ? new Uint8Array(buffer)
    : new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength)

function decode<T>(data: ArrayBuffer | Uint8Array, type: new () => T, what: string): T {
  try {
    return AsnConvert.parse(data, type)
  } catch (err) {
    throw new MalformedCmsError(
      `CiphertextForRecipient: ${what} does not decode: ${(err as Error).message}`,
      {
        cause: err,
      },
    )
  }
}

function requireSha256(alg: AlgorithmIdentifier, what: string): void {
  if (alg.algorithm !== id_sha256) {
    throw new UnsupportedCmsError(`CiphertextForRecipient: ${what} is ${alg.algorithm}; KMS uses SHA-256`)
  }
}

/** Decodes and checks an envelope without decrypting it. */
export function parseCiphertextForRecipient(data: Uint8Array): CmsEnvelope {
  if (!(data instanceof Uint8Array))
    throw new InvalidOptionError('CiphertextForRecipient must be a Uint8Array')
  if (data.length === 0) throw new MalformedCmsError('CiphertextForRecipient is empty')
  if (data.length > CMS_MAX_SIZE) {
    throw new MalformedCmsError(
      `CiphertextForRecipient is ${data.length} bytes; the limit is ${CMS_MAX_SIZE}`,
    )
  }
  const info = decode(data, ContentInfo, 'ContentInfo')
  if (info.contentType !== id_envelopedData) {
    throw new UnsupportedCmsError(
      `CiphertextForRecipient: content type is ${info.contentType}, not envelopedData (${id_envelopedData})`,
    )
  }
  const enveloped = decode(info.content, EnvelopedData, 'EnvelopedData')
  if (enveloped.version !== 2) {
    throw new UnsupportedCmsError(
      `CiphertextForRecipient: EnvelopedData version is ${enveloped.version}, not 2`,
    )
  }
  if (enveloped.recipientInfos.length !== 1) {
    throw new UnsupportedCmsError(
      `CiphertextForRecipient: ${enveloped.recipientInfos.length} recipient infos; KMS sends exactly one`,
    )
  }
  const ktri = enveloped.recipientInfos[0]!.ktri
  if (!ktri)
    throw new UnsupportedCmsError('CiphertextForRecipient: the recipient is not a KeyTransRecipientInfo')
  if (ktri.version !== 2) {
    throw new UnsupportedCmsError(
      `CiphertextForRecipient: KeyTransRecipientInfo version is ${ktri.version}, not 2`,
    )
  }
  const kea = ktri.keyEncryptionAlgorithm
  if (kea.algorithm !== id_RSAES_OAEP || !kea.parameters) {
    throw new UnsupportedCmsError(
      `CiphertextForRecipient: key encryption is ${kea.algorithm}; KMS uses RSAES-OAEP (${id_RSAES_OAEP}) with parameters`,
    )
  }
  const oaep = decode(kea.parameters, RsaEsOaepParams, 'RSAES-OAEP parameters')
  requireSha256(oaep.hashAlgorithm, 'the OAEP hash')
  if (oaep.maskGenAlgorithm.algorithm !== id_mgf1 || !oaep.maskGenAlgorithm.parameters) {
    throw new UnsupportedCmsError(
      `CiphertextForRecipient: mask generation is ${oaep.maskGenAlgorithm.algorithm}, not MGF1`,
    )
  }
  requireSha256(decode(oaep.maskGenAlgorithm.parameters, AlgorithmIdentifier, 'MGF1 hash'), 'the MGF1 hash')
  if (oaep.pSourceAlgorithm.algorithm !== id_pSpecified) {
    throw new UnsupportedCmsError(
      `CiphertextForRecipient: OAEP label source is ${oaep.pSourceAlgorithm.algorithm}`,
    )
  }
  const content = enveloped.encryptedContentInfo
  if (content.contentType !== id_data) {
    throw new UnsupportedCmsError(
      `CiphertextForRecipient: encrypted content type is ${content.contentType}, not id-data`,
    )
  }
  const cea = content.contentEncryptionAlgorithm
  if (cea.algorithm !== ID_AES256_CBC || !cea.parameters) {
    throw new UnsupportedCmsError(
      `CiphertextForRecipient: content encryption is ${cea.algorithm}; KMS uses AES-256-CBC (${ID_AES256_CBC})`,
    )
  }
  const iv = bytes(decode(cea.parameters, OctetString, 'AES-CBC IV').buffer)
  if (iv.length !== 16)
    throw new MalformedCmsError(`CiphertextForRecipient: the IV is ${iv.length} bytes, not 16`)
  const encrypted = content.encryptedContent
  const chunks = encrypted?.value ? [encrypted.value] : (encrypted?.constructedValue ?? [])
  const encryptedContent = Buffer.concat(chunks.map((chunk) => bytes(chunk.buffer)))
  if (encryptedContent.length === 0 || encryptedContent.length % 16 !== 0) {
    throw new MalformedCmsError(
      `CiphertextForRecipient: encrypted content is ${encryptedContent.length} bytes, not a non-zero multiple of 16`,
    )
  }
  const ski = ktri.rid.subjectKeyIdentifier
  return {
    encryptedKey: bytes(ktri.encryptedKey.buffer),
    iv,
    encryptedContent: new Uint8Array(encryptedContent),
    subjectKeyIdentifier: ski ? bytes(ski.buffer) : undefined,
  }
}

/** Decrypts a CiphertextForRecipient with the enclave's RSA private key. */
export function openCiphertextForRecipient(data: Uint8Array, privateKey: KeyObject): Uint8Array {
  const envelope = parseCiphertextForRecipient(data)
  let contentKey: Buffer
  try {
    contentKey = privateDecrypt(
      { key: privateKey, padding: cryptoConstants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' },
      envelope.encryptedKey,
    )
  } catch (err) {
    throw new DecryptFailedError(
      'CiphertextForRecipient: RSA-OAEP unwrap failed (the envelope is for another key, or damaged)',
      { cause: err },
    )
  }
  if (contentKey.length !== 32) {
    throw new DecryptFailedError(
      `CiphertextForRecipient: the unwrapped key is ${contentKey.length} bytes, not 32`,
    )
  }
  try {
    const decipher = createDecipheriv('aes-256-cbc', contentKey, envelope.iv)
    return new Uint8Array(Buffer.concat([decipher.update(envelope.encryptedContent), decipher.final()]))
  } catch (err) {
    throw new DecryptFailedError('CiphertextForRecipient: AES-256-CBC decryption failed (bad padding)', {
      cause: err,
    })
  } finally {
    contentKey.fill(0)
  }
}
