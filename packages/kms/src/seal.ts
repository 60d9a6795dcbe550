/**
 * Seals a plaintext the way KMS builds CiphertextForRecipient: for the development KMS endpoint
 * (dev-endpoint.ts) and the CMS tests. Not exported from the package root.
 */

import {
  createCipheriv,
  createHash,
  createPublicKey,
  constants as cryptoConstants,
  type KeyObject,
  publicEncrypt,
  randomBytes,
} from 'node:crypto'
import {
  ContentInfo,
  EncryptedContent,
  EncryptedContentInfo,
  EnvelopedData,
  id_data,
  id_envelopedData,
  KeyTransRecipientInfo,
  RecipientIdentifier,
  RecipientInfo,
  RecipientInfos,
} from '@peculiar/asn1-cms'
import { id_mgf1, id_pSpecified, id_RSAES_OAEP, id_sha256, RsaEsOaepParams } from '@peculiar/asn1-rsa'
import { AsnConvert, OctetString } from '@peculiar/asn1-schema'
import { AlgorithmIdentifier, SubjectKeyIdentifier } from '@peculiar/asn1-x509'
import { ID_AES256_CBC } from './cms.js'
import { InvalidOptionError } from './errors.js'

/**
 * Builds an envelope like the ones KMS sends (DER; subjectKeyIdentifier = SHA-256 of the SPKI),
 * sealed to an RSA public key (KeyObject or SPKI DER).
 */
export function sealForRecipient(
  plaintext: Uint8Array,
  recipientPublicKey: KeyObject | Uint8Array,
): Uint8Array {
  const key =
    recipientPublicKey instanceof Uint8Array
      ? createPublicKey({ key: Buffer.from(recipientPublicKey), format: 'der', type: 'spki' })
      : recipientPublicKey
  if (key.asymmetricKeyType !== 'rsa')
    throw new InvalidOptionError('sealForRecipient: the recipient key must be RSA')
  const spki = key.export({ format: 'der', type: 'spki' })
  const contentKey = randomBytes(32)
  const iv = randomBytes(16)
  const cipher = createCipheriv('aes-256-cbc', contentKey, iv)
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()])
  const encryptedKey = publicEncrypt(
    { key, padding: cryptoConstants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' },
    contentKey,
  )
  contentKey.fill(0)
  const sha256 = new AlgorithmIdentifier({ algorithm: id_sha256, parameters: null })
  const oaep = new RsaEsOaepParams({
    hashAlgorithm: sha256,
    maskGenAlgorithm: new AlgorithmIdentifier({
      algorithm: id_mgf1,
      parameters: AsnConvert.serialize(sha256),
    }),
    pSourceAlgorithm: new AlgorithmIdentifier({
      algorithm: id_pSpecified,
      parameters: AsnConvert.serialize(new OctetString(0)),
    }),
  })
  const enveloped = new EnvelopedData({
    version: 2,
    recipientInfos: new RecipientInfos([
      new RecipientInfo({
        ktri: new KeyTransRecipientInfo({
          version: 2,
          rid: new RecipientIdentifier({
            subjectKeyIdentifier: new SubjectKeyIdentifier(createHash('sha256').update(spki).digest()),
          }),
          keyEncryptionAlgorithm: new AlgorithmIdentifier({
            algorithm: id_RSAES_OAEP,
            parameters: AsnConvert.serialize(oaep),
          }),
          encryptedKey: new OctetString(encryptedKey),
        }),
      }),
    ]),
    encryptedContentInfo: new EncryptedContentInfo({
      contentType: id_data,
      contentEncryptionAlgorithm: new AlgorithmIdentifier({
        algorithm: ID_AES256_CBC,
        parameters: AsnConvert.serialize(new OctetString(iv)),
      }),
      encryptedContent: new EncryptedContent({ value: new OctetString(ciphertext) }),
    }),
  })
  const info = new ContentInfo({ contentType: id_envelopedData, content: AsnConvert.serialize(enveloped) })
  return new Uint8Array(AsnConvert.serialize(info))
}
