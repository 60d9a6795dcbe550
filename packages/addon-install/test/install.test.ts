import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { delimiter, join, resolve } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'

const packageRoot = resolve(import.meta.dirname, '..')
const bin = join(packageRoot, 'bin.mjs')
const folders: string[] = []

/** A package folder with a binding.gyp and one C file, as an addon package is installed. */
function fixture(source: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'addon-install-'))
  folders.push(dir)
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({
      name: 'fixture-addon',
      version: '1.0.0',
      enclave: { addon: { name: 'the fixture addon', without: 'its JavaScript half works' } },
    }),
  )
  writeFileSync(
    join(dir, 'binding.gyp'),
    JSON.stringify({ targets: [{ target_name: 'fixture', sources: ['fixture.c'] }] }),
  )
  writeFileSync(join(dir, 'fixture.c'), source)
  return dir
}

/** Runs the install script the way npm does: in the package folder, with the .bin folders on PATH. */
function install(dir: string) {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PATH: [join(packageRoot, 'node_modules', '.bin'), process.env.PATH].join(delimiter),
  }
  // Node's own headers, as tooling builds do, so node-gyp never downloads them (no network here).
  const prefix = resolve(process.execPath, '..', '..')
  if (!env.npm_config_nodedir && existsSync(join(prefix, 'include', 'node', 'node_api.h'))) {
    env.npm_config_nodedir = prefix
  }
  return spawnSync(process.execPath, [bin], { cwd: dir, env, encoding: 'utf8', timeout: 120_000 })
}

afterEach(() => {
  for (const dir of folders.splice(0)) rmSync(dir, { recursive: true, force: true })
})

describe('enclave-addon-install', () => {
  it('builds a working addon and prints nothing', () => {
    const dir = fixture(`#include <node_api.h>
static napi_value answer(napi_env env, napi_callback_info info) {
  napi_value result;
  napi_create_int32(env, 42, &result);
  return result;
}
NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "answer", NAPI_AUTO_LENGTH, answer, NULL, &fn);
  napi_set_named_property(env, exports, "answer", fn);
  return exports;
}
`)
    const result = install(dir)
    expect(result.stderr).not.toContain('was not built')
    expect(result.status).toBe(0)
    const addon = createRequire(import.meta.url)(join(dir, 'build', 'Release', 'fixture.node')) as {
      answer(): number
    }
    expect(addon.answer()).toBe(42)
  }, 120_000)

  it('never fails the install: a broken build exits 0 with the cause, what works and the fix', () => {
    const dir = fixture('#include <no/such/header.h>\n')
    const result = install(dir)
    expect(result.status).toBe(0)
    expect(result.stderr).toContain('fixture-addon: the fixture addon was not built (')
    expect(result.stderr).toContain('no/such/header.h')
    expect(result.stderr).toContain('its JavaScript half works')
    expect(result.stderr).toContain(`"npx node-gyp rebuild" in ${dir}`)
    expect(existsSync(join(dir, 'build', 'Release', 'fixture.node'))).toBe(false)
  }, 120_000)

  it('uses a prebuild shipped in the package instead of compiling', () => {
    // A prebuild is a built addon under prebuilds/<platform>-<arch>/; the C file cannot compile,
    // so a quiet exit proves the prebuild was taken.
    const built = fixture(`#include <node_api.h>
NAPI_MODULE_INIT() { return exports; }
`)
    expect(install(built).status).toBe(0)
    const dir = fixture('#include <no/such/header.h>\n')
    const target = join(dir, 'prebuilds', `${process.platform}-${process.arch}`)
    mkdirSync(target, { recursive: true })
    const copy = spawnSync('cp', [
      join(built, 'build', 'Release', 'fixture.node'),
      join(target, 'node.napi.node'),
    ])
    expect(copy.status).toBe(0)
    const result = install(dir)
    expect(result.stderr).not.toContain('was not built')
    expect(result.status).toBe(0)
    expect(existsSync(join(dir, 'build'))).toBe(false)
  }, 120_000)

  it('names the package even when its package.json says nothing about the addon', () => {
    const dir = fixture('#include <no/such/header.h>\n')
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'plain-addon', version: '1.0.0' }))
    const result = install(dir)
    expect(result.status).toBe(0)
    expect(result.stderr).toContain('plain-addon: the native addon was not built (')
  }, 120_000)
})
