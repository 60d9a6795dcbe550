import { execFileSync } from 'node:child_process'
import { generateKeyPairSync, type KeyObject } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'

/** Small deterministic section contents. */
export function sampleSections() {
  return {
    kernel: Buffer.from('KERNEL-'.repeat(100)),
    cmdline: 'reboot=k panic=30 pci=off nomodules console=ttyS0',
    ramdisks: [Buffer.from('bootstrap ramdisk '.repeat(50)), Buffer.from('customer ramdisk '.repeat(70))],
  }
}

export type Curve = 'P-256' | 'P-384' | 'P-521'

/** An EC key from node:crypto and a self-signed certificate for it from the openssl CLI. */
export function makeKeyAndCert(
  dir: string,
  curve: Curve,
  days = 30,
): { privateKey: KeyObject; keyPem: string; certPem: string } {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: curve })
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
  const keyPath = join(dir, `key-${curve}.pem`)
  const certPath = join(dir, `cert-${curve}-${days}.pem`)
  writeFileSync(keyPath, keyPem)
  const digest = curve === 'P-256' ? '-sha256' : curve === 'P-384' ? '-sha384' : '-sha512'
  execFileSync('openssl', [
    'req',
    '-x509',
    '-new',
    '-key',
    keyPath,
    digest,
    '-subj',
    '/C=US/O=Enclave Test/CN=eif signing test',
    '-days',
    String(days),
    '-out',
    certPath,
  ])
  return { privateKey, keyPem, certPem: execFileSync('cat', [certPath]).toString() }
}
