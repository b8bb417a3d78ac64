//! The NBD codec (pnfs-nbd): every parser over arbitrary bytes, with the default limits and
//! with tiny ones, through the same entry point the stable random-input test uses
//! (`pnfs_nbd::codec::exercise::exercise_all_parsers`): no panic on malformed input, no
//! parser consuming more than it was given or asking for bytes it already has, and parsed
//! options, requests and chunks surviving an encode/parse round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pnfs_nbd::codec::exercise::exercise_all_parsers;
use pnfs_nbd::codec::CodecLimits;

/// Limits small enough for the fuzzer to reach every limit check.
const SMALL: CodecLimits = CodecLimits {
    max_option_data_bytes: 64,
    max_write_payload_bytes: 64,
    max_meta_queries: 2,
    max_info_requests: 2,
    max_reply_payload_bytes: 64,
};

fuzz_target!(|data: &[u8]| {
    exercise_all_parsers(data, &CodecLimits::default());
    exercise_all_parsers(data, &SMALL);
});
