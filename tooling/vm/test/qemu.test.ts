import { describe, expect, it } from 'vitest'
import { findOnPath, qemuArgs } from '../lib/qemu.mjs'

const base = {
  qemu: '/usr/bin/qemu-system-x86_64',
  kernel: '/k/vmlinuz',
  initrd: '/k/initramfs.cpio',
  memoryMiB: 1536,
  cpus: 2,
  timeoutMs: 1000,
  onLine: () => {},
}

describe('qemuArgs', () => {
  it('boots the kernel and initramfs under TCG with a serial console and no reboot', () => {
    const args = qemuArgs({ ...base, accel: 'tcg' })
    const after = (flag: string) => args[args.indexOf(flag) + 1]
    expect(after('-accel')).toBe('tcg')
    expect(after('-kernel')).toBe('/k/vmlinuz')
    expect(after('-initrd')).toBe('/k/initramfs.cpio')
    expect(after('-m')).toBe('1536')
    expect(after('-smp')).toBe('2')
    expect(after('-serial')).toBe('stdio')
    expect(after('-append')).toBe('console=ttyS0 panic=-1 quiet')
    expect(args).toContain('-no-reboot')
    // The guest's RNG must not wait for entropy: see qemu.mjs.
    expect(after('-cpu')).toBe('qemu64,+rdrand')
  })

  it('takes another kernel command line when given one (the EIF boot passes its cmdline section)', () => {
    const args = qemuArgs({ ...base, accel: 'tcg', append: 'reboot=k console=ttyS0' })
    expect(args[args.indexOf('-append') + 1]).toBe('reboot=k console=ttyS0')
  })

  it('leaves the CPU model to KVM when KVM is asked for', () => {
    const args = qemuArgs({ ...base, accel: 'kvm' })
    expect(args[args.indexOf('-accel') + 1]).toBe('kvm')
    expect(args).not.toContain('-cpu')
  })
})

describe('findOnPath', () => {
  it('finds an executable on PATH and nothing for a name that is not there', () => {
    expect(findOnPath('sh')).toMatch(/\/sh$/)
    expect(findOnPath('no-such-program-enclave-vm')).toBeUndefined()
  })
})
