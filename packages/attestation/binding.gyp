{
  "targets": [
    {
      "target_name": "enclave_nsm",
      "sources": ["native/nsm.c"],
      "cflags": ["-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-O2"]
    }
  ]
}
