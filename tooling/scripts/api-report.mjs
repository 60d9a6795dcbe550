#!/usr/bin/env node
// The public API of every published package, as api-extractor reports (packages/<name>/etc/<name>.api.md).
// The reports are committed: a change to what a package exports shows up in review as a diff of
// its report. `--check` (CI) fails when a built package no longer matches its committed report;
// without it the reports are rewritten. Run after `pnpm build`: the reports are made from dist/*.d.ts.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative, resolve } from 'node:path'
import { Extractor, ExtractorConfig } from '@microsoft/api-extractor'

const root = resolve(import.meta.dirname, '../..')
const check = process.argv.includes('--check')
const only = process.argv.slice(2).filter((arg) => !arg.startsWith('--'))

const temp = mkdtempSync(join(tmpdir(), 'enclave-api-'))
const problems = []
let reports = 0
try {
  for (const dir of publishedPackages()) {
    const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))
    if (only.length > 0 && !only.includes(manifest.name)) continue
    for (const [subpath, entry] of typedEntryPoints(manifest)) {
      const entryFile = join(dir, entry)
      const reportName = reportFileName(manifest.name, subpath)
      if (!existsSync(entryFile)) {
        problems.push(
          `${manifest.name}${subpath.slice(1)}: ${relative(root, entryFile)} is missing (run pnpm build)`,
        )
        continue
      }
      if (!check) mkdirSync(join(dir, 'etc'), { recursive: true })
      const changed = extract(dir, entryFile, reportName, manifest)
      reports += 1
      if (changed === 'failed') problems.push(`${manifest.name}: api-extractor reported errors (above)`)
      else if (changed && check) {
        problems.push(
          `${manifest.name}${subpath.slice(1)}: the exported API differs from ${relative(root, join(dir, 'etc', reportName))}; ` +
            'review the change, then run `pnpm api:report` and commit the report',
        )
      }
    }
  }
} finally {
  rmSync(temp, { recursive: true, force: true })
}

for (const problem of problems) console.error(`api: ${problem}`)
console.log(`api: ${reports} report(s) ${check ? 'checked' : 'written'}, ${problems.length} problem(s)`)
process.exit(problems.length > 0 ? 1 : 0)

/** Folders under packages/ whose package.json is not private. */
function publishedPackages() {
  const packagesDir = join(root, 'packages')
  return readdirSync(packagesDir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => join(packagesDir, entry.name))
    .filter((dir) => {
      const file = join(dir, 'package.json')
      return existsSync(file) && JSON.parse(readFileSync(file, 'utf8')).private !== true
    })
}

/**
 * Every subpath of the exports map that declares ESM types: [subpath, relative d.ts path].
 * @param {any} manifest
 * @returns {[string, string][]}
 */
function typedEntryPoints(manifest) {
  return Object.entries(manifest.exports ?? {}).flatMap(([subpath, target]) => {
    const types = typeof target === 'object' ? (target.import?.types ?? target.types) : undefined
    return typeof types === 'string' ? [[subpath, types]] : []
  })
}

/** "@enclave/kms" and "./dev" → "kms-dev.api.md". @param {string} name @param {string} subpath */
function reportFileName(name, subpath) {
  const base = name.replace(/^@[^/]+\//, '')
  const suffix = subpath === '.' ? '' : `-${subpath.replace(/^\.\//, '').replaceAll('/', '-')}`
  return `${base}${suffix}.api.md`
}

/**
 * Runs api-extractor on one entry point. Returns whether the report changed, or 'failed'.
 * @param {string} dir @param {string} entryFile @param {string} reportName @param {any} manifest
 */
function extract(dir, entryFile, reportName, manifest) {
  const config = ExtractorConfig.prepare({
    configObject: {
      projectFolder: dir,
      mainEntryPointFilePath: entryFile,
      compiler: {
        overrideTsconfig: {
          compilerOptions: {
            target: 'es2022',
            lib: ['es2023'],
            module: 'nodenext',
            moduleResolution: 'nodenext',
            types: ['node'],
            strict: true,
            skipLibCheck: true,
          },
          files: [entryFile],
        },
      },
      apiReport: {
        enabled: true,
        reportFileName: reportName,
        reportFolder: join(dir, 'etc'),
        reportTempFolder: temp,
      },
      docModel: { enabled: false },
      dtsRollup: { enabled: false },
      tsdocMetadata: { enabled: false },
      messages: {
        compilerMessageReporting: { default: { logLevel: 'warning' } },
        extractorMessageReporting: {
          default: { logLevel: 'warning', addToApiReportFile: true },
          // Release tags (@public, @beta) are not how this project versions its API: semver is.
          'ae-missing-release-tag': { logLevel: 'none', addToApiReportFile: false },
          // The READMEs document the API; a note per undocumented member (with d.ts line numbers
          // that move on every edit) would bury the changes a reviewer should see.
          'ae-undocumented': { logLevel: 'none', addToApiReportFile: false },
        },
        tsdocMessageReporting: { default: { logLevel: 'none', addToApiReportFile: false } },
      },
    },
    configObjectFullPath: undefined,
    packageJsonFullPath: join(dir, 'package.json'),
    packageJson: manifest,
  })
  const result = Extractor.invoke(config, {
    localBuild: !check,
    messageCallback: (message) => {
      // Warnings land in the report itself (addToApiReportFile); keep the console for errors.
      if (message.logLevel !== 'error') message.handled = true
    },
  })
  if (result.errorCount > 0) return 'failed'
  return result.apiReportChanged
}
