// @ts-check
// Guest suite: the guest itself is what the other suites assume: the three vsock modules are
// live, /dev/vsock exists, and the loopback interface is up. Runs first.
import assert from 'node:assert/strict'
import { readFileSync, statSync } from 'node:fs'
import { test } from 'node:test'

const MODULES = ['vsock', 'vmw_vsock_virtio_transport_common', 'vsock_loopback']

test('the vsock modules are loaded and live', () => {
  const lines = readFileSync('/proc/modules', 'utf8').split('\n')
  for (const line of lines.filter((l) => /vsock/.test(l))) console.log(line)
  for (const name of MODULES) {
    const line = lines.find((l) => l.startsWith(`${name} `))
    assert.ok(line, `${name} is not in /proc/modules`)
    assert.match(line, / Live /, `${name} is not live: ${line}`)
  }
})

test('/dev/vsock is a character device', () => {
  assert.ok(statSync('/dev/vsock').isCharacterDevice())
})

test('the loopback interface is up', () => {
  const flags = Number.parseInt(readFileSync('/sys/class/net/lo/flags', 'utf8'), 16)
  assert.equal(flags & 1, 1, 'IFF_UP is not set on lo')
})
