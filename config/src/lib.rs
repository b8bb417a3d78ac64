//! TOML configuration schema and validation.
