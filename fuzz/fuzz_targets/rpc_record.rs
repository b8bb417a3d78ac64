//! Record marking and rpc_msg headers: a stream split at input-chosen points gives the same
//! records as fed whole, records respect the size limit, and headers never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pnfs_proto::rpc::{decode_message, RecordReader};

/// Record limit used here: small, so the fuzzer reaches it.
const MAX_RECORD_BYTES: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&split, stream)) = data.split_first() else {
        return;
    };
    let whole = RecordReader::new(MAX_RECORD_BYTES).feed_all(stream);
    // The same bytes in two pieces.
    let cut = usize::from(split).min(stream.len());
    let mut r = RecordReader::new(MAX_RECORD_BYTES);
    let pieces = r.feed_all(&stream[..cut]).and_then(|mut a| {
        a.extend(r.feed_all(&stream[cut..])?);
        Ok(a)
    });
    match (&whole, &pieces) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "splitting the stream changed the records"),
        (Err(_), Err(_)) => {}
        _ => panic!("whole {whole:?} vs split {pieces:?}"),
    }
    if let Ok(records) = whole {
        for rec in &records {
            assert!(rec.len() <= MAX_RECORD_BYTES);
            let _ = decode_message(rec);
        }
    }
    let _ = decode_message(stream);
});
