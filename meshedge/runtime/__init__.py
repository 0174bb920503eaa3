"""The trio runtime: the only layer with sockets, threads, the wall clock and processes.

It drives the sans-I/O cores and bridges the outside world (zeroconf's thread for
mDNS discovery, UDP and TCP sockets) into trio with structured concurrency.
"""
