// Strict literal IP parsing and RFC 5952 formatting for the transparent header. Only canonical
// dotted-quad IPv4 (no leading zeros, no short forms) and standard IPv6 text (optionally ending in
// a dotted quad; no zone id) are accepted: the header carries raw bytes and has no room for either.

const OCTET = '(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])'
const IPV4 = new RegExp(`^${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET}$`)
const HEXTET = /^[0-9a-fA-F]{1,4}$/

export function parseIPv4(text: string): Buffer | undefined {
  if (!IPV4.test(text)) return undefined
  return Buffer.from(text.split('.').map(Number))
}

function parseGroups(part: string, allowTrailingIPv4: boolean): number[] | undefined {
  if (part === '') return []
  const fields = part.split(':')
  const groups: number[] = []
  for (let i = 0; i < fields.length; i++) {
    const field = fields[i]!
    if (allowTrailingIPv4 && i === fields.length - 1 && field.includes('.')) {
      const v4 = parseIPv4(field)
      if (v4 === undefined) return undefined
      groups.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!)
    } else if (HEXTET.test(field)) {
      groups.push(Number.parseInt(field, 16))
    } else {
      return undefined
    }
  }
  return groups
}

export function parseIPv6(text: string): Buffer | undefined {
  const halves = text.split('::')
  if (halves.length > 2) return undefined
  let groups: number[]
  if (halves.length === 1) {
    const all = parseGroups(text, true)
    if (all === undefined || all.length !== 8) return undefined
    groups = all
  } else {
    const head = parseGroups(halves[0]!, false)
    const tail = parseGroups(halves[1]!, true)
    // '::' stands for at least one zero group.
    if (head === undefined || tail === undefined || head.length + tail.length > 7) return undefined
    groups = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail]
  }
  const out = Buffer.alloc(16)
  groups.forEach((group, i) => {
    out.writeUInt16BE(group, i * 2)
  })
  return out
}

export function formatIPv4(bytes: Uint8Array): string {
  return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`
}

/** RFC 5952 text: lower case, longest run (>= 2) of zero groups as '::', IPv4-mapped as ::ffff:a.b.c.d. */
export function formatIPv6(bytes: Uint8Array): string {
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, 16)
  const groups = Array.from({ length: 8 }, (_, i) => view.readUInt16BE(i * 2))
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `::ffff:${formatIPv4(view.subarray(12, 16))}`
  }
  let bestStart = -1
  let bestLength = 1 // a single zero group is never compressed
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++
      continue
    }
    let j = i
    while (j < 8 && groups[j] === 0) j++
    if (j - i > bestLength) {
      bestStart = i
      bestLength = j - i
    }
    i = j
  }
  const hex = groups.map((g) => g.toString(16))
  if (bestStart === -1) return hex.join(':')
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`
}
