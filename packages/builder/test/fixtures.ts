import { createHash } from 'node:crypto'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { pack } from 'tar-stream'

/** One member of a test layer tar. */
export interface TarSpec {
  name: string
  type?: 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'fifo'
  content?: string | Buffer
  linkname?: string
  mode?: number
  uid?: number
  gid?: number
  mtime?: number
  devmajor?: number
  devminor?: number
}

/** Builds a tar in memory with tar-stream (the same library real images are read with). */
export async function makeTar(entries: readonly TarSpec[]): Promise<Buffer> {
  const p = pack()
  const chunks: Buffer[] = []
  const done = new Promise<void>((resolve, reject) => {
    p.on('data', (c: unknown) => {
      chunks.push(c as Buffer)
    })
    p.on('end', resolve)
    p.on('error', reject)
  })
  for (const e of entries) {
    const type = e.type ?? 'file'
    const body = type === 'file' ? Buffer.from(e.content ?? '') : undefined
    const header = {
      name: e.name,
      type,
      mode: e.mode ?? (type === 'directory' ? 0o755 : 0o644),
      uid: e.uid ?? 0,
      gid: e.gid ?? 0,
      mtime: new Date((e.mtime ?? 1_600_000_000) * 1000),
      ...(e.linkname !== undefined ? { linkname: e.linkname } : {}),
      ...(e.devmajor !== undefined ? { devmajor: e.devmajor, devminor: e.devminor ?? 0 } : {}),
      ...(body ? { size: body.length } : {}),
    }
    if (body) p.entry(header, body)
    else p.entry(header)
  }
  p.finalize()
  await done
  return Buffer.concat(chunks)
}

export interface ImageSpec {
  layers: readonly (readonly TarSpec[])[]
  config?: { Entrypoint?: string[] | null; Cmd?: string[] | null; Env?: string[]; WorkingDir?: string }
  architecture?: string
  gzip?: boolean
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

/** Writes an OCI image layout folder; returns the config digest. */
export async function writeOciLayout(dir: string, spec: ImageSpec, tag = 'latest'): Promise<string> {
  mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true })
  const blob = (b: Buffer) => {
    const d = sha(b)
    writeFileSync(join(dir, 'blobs', 'sha256', d), b)
    return { digest: `sha256:${d}`, size: b.length }
  }
  const tars = await Promise.all(spec.layers.map((l) => makeTar(l)))
  const layers = tars.map((t) => ({
    mediaType: spec.gzip
      ? 'application/vnd.oci.image.layer.v1.tar+gzip'
      : 'application/vnd.oci.image.layer.v1.tar',
    ...blob(spec.gzip ? gzipSync(t) : t),
  }))
  const config = Buffer.from(
    JSON.stringify({
      architecture: spec.architecture ?? 'amd64',
      os: 'linux',
      config: spec.config ?? { Cmd: ['/bin/sh'] },
      rootfs: { type: 'layers', diff_ids: tars.map((t) => `sha256:${sha(t)}`) },
    }),
  )
  const configDesc = { mediaType: 'application/vnd.oci.image.config.v1+json', ...blob(config) }
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, config: configDesc, layers }))
  const manifestDesc = {
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    ...blob(manifest),
    annotations: { 'org.opencontainers.image.ref.name': tag },
  }
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }))
  writeFileSync(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [manifestDesc] }))
  return configDesc.digest
}

/** Writes a legacy `docker save` tarball (manifest.json, <id>.json, <layer>/layer.tar). */
export async function writeDockerArchive(
  file: string,
  spec: ImageSpec,
  repoTag = 'test/app:latest',
  /** 'legacy': `<id>/layer.tar` (Docker ≤ 24); 'oci': `blobs/sha256/<digest>` (Docker 25+). */
  layout: 'legacy' | 'oci' = 'legacy',
): Promise<string> {
  const tars = await Promise.all(spec.layers.map((l) => makeTar(l)))
  const config = Buffer.from(
    JSON.stringify({
      architecture: spec.architecture ?? 'amd64',
      os: 'linux',
      config: spec.config ?? { Cmd: ['/bin/sh'] },
      rootfs: { type: 'layers', diff_ids: tars.map((t) => `sha256:${sha(t)}`) },
    }),
  )
  const id = sha(config)
  const members: TarSpec[] = []
  const layerNames: string[] = []
  // Layers first in reverse order, manifest last: readers must not depend on member order.
  tars.forEach((t, i) => {
    const name =
      layout === 'oci' ? `blobs/sha256/${sha(t)}` : `${sha(Buffer.concat([t, Buffer.from([i])]))}/layer.tar`
    layerNames.push(name)
  })
  for (let i = tars.length - 1; i >= 0; i--) members.push({ name: layerNames[i]!, content: tars[i]! })
  const configName = layout === 'oci' ? `blobs/sha256/${id}` : `${id}.json`
  members.push({ name: configName, content: config })
  members.push({
    name: 'manifest.json',
    content: JSON.stringify([{ Config: configName, RepoTags: [repoTag], Layers: layerNames }]),
  })
  writeFileSync(file, await makeTar(members))
  return `sha256:${id}`
}

/** A fake blobs folder: real blobs are not installed here (they come with aws-nitro-enclaves-cli). */
export function writeFakeBlobs(dir: string): void {
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, 'bzImage'), Buffer.alloc(4096, 0xaa))
  writeFileSync(join(dir, 'cmdline'), 'reboot=k panic=30 pci=off nomodules console=ttyS0\n')
  writeFileSync(join(dir, 'init'), Buffer.from('#!/bin/sh\n# fake init\n'))
  writeFileSync(join(dir, 'nsm.ko'), Buffer.alloc(1000, 0x55))
  writeFileSync(
    join(dir, 'bzImage.config'),
    '#\n# Automatically generated file; DO NOT EDIT.\n# Linux/x86 4.14.256 Kernel Configuration\n',
  )
}

/** Runs `fn` and reports what happened, so a test asserts on both outcomes (never a bare try/catch). */
export function outcome<T>(fn: () => T): { ok: true; value: T } | { ok: false; error: unknown } {
  try {
    return { ok: true, value: fn() }
  } catch (error) {
    return { ok: false, error }
  }
}
