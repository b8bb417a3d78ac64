//! ublk frontend: one /dev/ublkbN per configured file.
