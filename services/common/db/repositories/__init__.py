"""One module per aggregate. Every function takes a pool or a connection and the caller's project id:
a row of another project is indistinguishable from a missing one."""
