/** Written into EIF metadata as BuildToolVersion. */
export const PACKAGE_VERSION = '0.1.0'
