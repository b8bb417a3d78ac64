//! The NFSv4.1 client: transport, session with slot table, backchannel, lease renewal, recovery.
