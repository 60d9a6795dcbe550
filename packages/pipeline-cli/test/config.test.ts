import { describe, expect, it } from 'vitest'
import { ConfigInvalidError, MissingValueError, parseConfig, pick } from '../src/index.js'

describe('config', () => {
  it('reads Sentient keys and ours, and ignores the legacy [buffers] table', () => {
    const config = parseConfig(`
cid = 127
port = 53000
root = ["/srv/a", "/srv/b"]
server_key = "sha256:${'a'.repeat(64)}"
allow_exec = true

[buffers]
buf_max_len_file_io = 7340032
`)
    expect(config).toEqual({
      cid: 127,
      port: 53000,
      root: ['/srv/a', '/srv/b'],
      server_key: [`sha256:${'a'.repeat(64)}`],
      allow_exec: true,
    })
  })

  it('names the key and the problem', () => {
    expect(() => parseConfig('port = "x"', 'p.toml')).toThrow(
      /p.toml: key "port" must be a non-negative integer/,
    )
    expect(() => parseConfig('prot = 1', 'p.toml')).toThrow(/unknown key "prot"/)
    expect(() => parseConfig('port = ', 'p.toml')).toThrow(ConfigInvalidError)
  })

  it('prefers the command line, then the file, and reports both names when missing', () => {
    expect(pick(1, 2, { flag: '--port', key: 'port', what: 'the port' })).toBe(1)
    expect(pick(undefined, 2, { flag: '--port', key: 'port', what: 'the port' })).toBe(2)
    expect(() => pick(undefined, undefined, { flag: '--port', key: 'port', what: 'the port' })).toThrow(
      MissingValueError,
    )
    expect(() => pick(undefined, undefined, { flag: '--port', key: 'port', what: 'the port' })).toThrow(
      /--port .*"port"/,
    )
  })
})

describe('config fuzz', () => {
  it('any text either parses or throws ConfigInvalidError', async () => {
    const fc = (await import('fast-check')).default
    const { isPipelineError } = await import('../src/index.js')
    fc.assert(
      fc.property(
        fc.oneof(fc.string(), fc.constantFrom('cid = 1', 'port = -1', 'root = [1]', 'dev = "yes"')),
        (text) => {
          try {
            parseConfig(text)
          } catch (error) {
            expect(isPipelineError(error) && error.code === 'ENCLAVE_PIPELINE_CONFIG_INVALID').toBe(true)
          }
        },
      ),
      { numRuns: 500 },
    )
  })
})
