"""The object store: the moto S3 server in a child process, its disk mirror, MinIO's listening API, SigV4, TLS."""
