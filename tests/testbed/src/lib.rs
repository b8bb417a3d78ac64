//! Test bed: QEMU guest runner and real peers for end-to-end tests.
