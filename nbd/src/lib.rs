//! NBD protocol codec (no I/O) and tokio NBD server.
