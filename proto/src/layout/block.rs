//! RFC 5663 block layout: volume topology (device address), extents, layout update.
