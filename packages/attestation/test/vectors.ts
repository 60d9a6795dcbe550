/**
 * The real AWS Nitro attestation documents copied from shared/vectors/attestation (see its
 * README): each with the validity window of its leaf certificate and fields to expect.
 */

import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

export const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url))

export function fixture(path: string): Buffer {
  return readFileSync(FIXTURES + path)
}

export interface Vector {
  readonly name: string
  readonly bytes: Uint8Array
  readonly moduleId: string
  /** Leaf validity window, ISO UTC. */
  readonly from: string
  readonly to: string
  readonly debug: boolean
  readonly pcrs: Readonly<Record<number, string>>
}

function load(path: string, base64: boolean): Uint8Array {
  const raw = fixture(path)
  return new Uint8Array(base64 ? Buffer.from(raw.toString('utf8').trim(), 'base64') : raw)
}

export const VECTORS: readonly Vector[] = [
  {
    name: 'evervault valid',
    bytes: load('evervault/valid-attestation-doc-bytes', false),
    moduleId: 'i-020b6af9246d90e92-enc0183d09086c24190',
    from: '2022-10-13T08:57:59Z',
    to: '2022-10-13T11:58:02Z',
    debug: false,
    pcrs: {
      0: 'f4d48b81a460c9916d1e685119074bf24660afd3e34fae9fca0a0d28d9d5599936332687e6f66fc890ac8cf150142d8b',
      1: 'bcdf05fefccaa8e55bf2c8d6dee9e79bbff31e34bf28a99aa19e6b29c37ee80b214a414b7607236edf26fcb78654e63f',
      2: 'd8f114da658de5481f8d9ec73907feb553560787522f705c92d7d96beed8e15e2aa611984e098c576832c292e8dc469a',
      8: '8790eb3cce6c83d07e84b126dc61ca923333d6f66615c4a79157de48c5ab2418bdc60746ea7b7afbff03a1c6210201cb',
    },
  },
  {
    name: 'evervault debug',
    bytes: load('evervault/debug-mode-attestation-doc-bytes', false),
    moduleId: 'i-03ad7cdb817437eeb-enc0183cc7569b3f6e1',
    from: '2022-10-12T13:49:51Z',
    to: '2022-10-12T16:49:54Z',
    debug: true,
    pcrs: { 0: '00'.repeat(48), 1: '00'.repeat(48), 2: '00'.repeat(48), 8: '00'.repeat(48) },
  },
  {
    name: 'evervault base64 (debug)',
    bytes: load('evervault/valid-attestation-doc-base64', true),
    moduleId: 'i-0918f6c55e3b61d89-enc018aa8b8e2285d13',
    from: '2023-09-18T14:37:09Z',
    to: '2023-09-18T17:37:12Z',
    debug: true,
    pcrs: { 0: '00'.repeat(48) },
  },
  {
    name: 'evervault cert-carried (non-debug)',
    bytes: load('evervault/non-debug-cert-containing-attestation-document-18-1-23.pem.cose', false),
    moduleId: 'i-0ec0e572c8263d8ff-enc0185c4fd382eeb25',
    from: '2023-01-18T13:07:13Z',
    to: '2023-01-18T16:07:16Z',
    debug: false,
    pcrs: {
      0: 'd265a83faa7b4fa0d73b82b6d06253e894445922937d0ee5a74fe4891da9817611a71e71b98e5329232902de3cf419af',
      2: 'e4f634d24ad83b7f6e49fe283bafdb220f6252fb4a278a858e19d15b7cd0f263b9168ed0bacefb4444266df9f9a77f24',
      8: '97c5395a83c0d6a04d53ff962663c714c178c24500bf97f78456ed3721d922cf3f940614da4bb90107c439bc4a1443ca',
    },
  },
  {
    name: 'evervault cert-carried (debug)',
    bytes: load('evervault/debug-mode-cert-containing-attestation-doc-18-1-23.pem.cose', false),
    moduleId: 'i-06e1ffc9a8410edb1-enc0185c56e099c2d54',
    from: '2023-01-18T15:10:27Z',
    to: '2023-01-18T18:10:30Z',
    debug: true,
    pcrs: { 0: '00'.repeat(48) },
  },
  {
    name: 'nostrband (signed EIF)',
    bytes: load('nostrband/nostrband_i-0ffff615a409a72d7_2025-04-01.b64', true),
    moduleId: 'i-0ffff615a409a72d7-enc0195f17eaba9b385',
    from: '2025-04-01T13:16:05Z',
    to: '2025-04-01T16:16:08Z',
    debug: false,
    pcrs: {
      0: '517a9ec66c4c8e8f3b309c4a4598e2383dff4ec07dfa48617c2d7ec9b1fbf86a597b4376b18114914a31af2ea12a2db6',
      1: '4b4d5b3661b3efc12920900c80e126e4ce783c522de6c02a2a5bf7af3a2b9327b86776f188e4be1c1c404a129dbda493',
      2: '365caf856d5ef95d4ef49b1883367179fd5d40504d75d8b0c8af7672aff3bb37c0026a69c89d170bdc724b53e8423a7d',
      8: '7e3f4c20f65f0a62de884a41ef73fd693c136173fec4ad19336d2ce3b1d63246da3383cbb83cd10dad77d5d1aafcdce1',
    },
  },
  {
    name: '0xsequence (PCR3, RSA public_key)',
    bytes: load('0xsequence/0xsequence_tee-verifier_i-01721714461f7afa6_2025-04-04.b64', true),
    moduleId: 'i-01721714461f7afa6-enc01953e42450be060',
    from: '2025-04-04T16:38:29Z',
    to: '2025-04-04T19:38:32Z',
    debug: false,
    pcrs: {
      0: '73934ebd95cac683b96ceb064acda3f0c73f2e11bebc702ed4aa271cd47a08973165df31fc138a204642d554ee2508ec',
      3: '9c0d7f787c5b1241d40085a6b65ac0ced3bfa468b483c8e7cafd39f52c302e996e4ea2db4df765397b96e034cafb01ee',
    },
  },
]
