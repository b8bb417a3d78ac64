//! CB_COMPOUND4res (what the MDS decodes from a client's callback reply): never panic, and
//! re-encoding is stable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pnfs_proto::nfs4::cb::CbCompoundRes;
use pnfs_proto::xdr::{from_bytes, to_bytes};

fuzz_target!(|data: &[u8]| {
    if let Ok(res) = from_bytes::<CbCompoundRes>(data) {
        // XDR padding is not checked on input, so compare values, not bytes.
        let again = from_bytes::<CbCompoundRes>(&to_bytes(&res));
        assert_eq!(again.as_ref(), Ok(&res), "CB_COMPOUND4res re-encoding changed it");
    }
});
