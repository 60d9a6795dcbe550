export declare const GUARDED_CIDS: readonly number[]
export declare function cidRefusal(facts: {
  cid: number
  dev: boolean
  force: boolean
  inGuest: boolean
  loopbackLoaded: boolean
}): string | undefined
