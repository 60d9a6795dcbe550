{
  "targets": [
    {
      "target_name": "supervisor",
      "sources": ["native/reaper.c"],
      "cflags": ["-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-O2"]
    }
  ]
}
