"""The doors into the server: RESP over TCP (and, in later modules, HTTP and gRPC)."""
