{
  "targets": [
    {
      "target_name": "vsock_transport",
      "sources": ["native/vsock.c"],
      "cflags": ["-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-O2"]
    }
  ]
}
