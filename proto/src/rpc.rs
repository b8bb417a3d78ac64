//! ONC RPC (RFC 5531): record marking, call and reply headers, AUTH_NONE and AUTH_SYS.
