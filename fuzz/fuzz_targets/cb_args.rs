//! CB_COMPOUND4args (what the gateway decodes from the MDS): never panic, re-encoding is
//! stable, and a result can always be built for every decoded op.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pnfs_proto::nfs4::cb::{CbCompoundArgs, CbCompoundRes, CbResOp};
use pnfs_proto::nfs4::NfsStat;
use pnfs_proto::xdr::{from_bytes, to_bytes};

fuzz_target!(|data: &[u8]| {
    if let Ok(args) = from_bytes::<CbCompoundArgs>(data) {
        let again = from_bytes::<CbCompoundArgs>(&to_bytes(&args));
        assert_eq!(again.as_ref(), Ok(&args), "CB_COMPOUND4args re-encoding changed it");
        let results = args
            .ops
            .iter()
            .map(|op| CbResOp::error_for(op, NfsStat::DELAY))
            .collect();
        let res = CbCompoundRes::from_results(args.tag.clone(), results);
        assert_eq!(from_bytes::<CbCompoundRes>(&to_bytes(&res)).as_ref(), Ok(&res));
    }
});
