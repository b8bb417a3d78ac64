//! Embedded NFSv4.1 pNFS block-layout metadata server.
