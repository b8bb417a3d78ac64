//! NFSv4 COMPOUND4args (what the MDS decodes from every client call): never panic, and
//! whatever decodes must decode again to the same value after re-encoding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pnfs_proto::nfs4::{CompoundArgs, CompoundRes};
use pnfs_proto::xdr::{from_bytes, to_bytes};

fuzz_target!(|data: &[u8]| {
    if let Ok(args) = from_bytes::<CompoundArgs>(data) {
        let again = from_bytes::<CompoundArgs>(&to_bytes(&args));
        assert_eq!(again.as_ref(), Ok(&args), "COMPOUND4args re-encoding changed it");
    }
    // Replies come from the same bytes' point of view for the gateway's client.
    if let Ok(res) = from_bytes::<CompoundRes>(data) {
        let again = from_bytes::<CompoundRes>(&to_bytes(&res));
        assert_eq!(again.as_ref(), Ok(&res), "COMPOUND4res re-encoding changed it");
    }
});
