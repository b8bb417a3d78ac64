//! RFC 5663 bodies: device address (decode, validate, resolve, size, map), layout and layout
//! update (decode, validate). Never panic; mapped offsets stay inside their leaf.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pnfs_proto::layout::block::{BlockDeviceAddr, BlockLayout, BlockLayoutUpdate};
use pnfs_proto::xdr::{from_bytes, to_bytes};

fuzz_target!(|data: &[u8]| {
    if let Ok(addr) = from_bytes::<BlockDeviceAddr>(data) {
        // XDR padding is not checked on input, so compare values, not bytes.
        let again = from_bytes::<BlockDeviceAddr>(&to_bytes(&addr));
        assert_eq!(again.as_ref(), Ok(&addr), "device address re-encoding changed it");
        if let Ok(topo) = addr.validate() {
            let _ = topo.tree();
            // Leaf sizes derived from the input so the fuzzer can steer them.
            let seed = data.iter().fold(0u64, |a, &b| a.rotate_left(5) ^ u64::from(b));
            let leaf_bytes = |i: u32| (seed.rotate_left(i) % (1 << 40)) | 1;
            if let Ok(sizes) = topo.sizes(|i, _| Some(leaf_bytes(i))) {
                let top = sizes.top_bytes();
                for off in [0, top / 3, top / 2, top.saturating_sub(1), seed % top.max(1)] {
                    if let Ok(m) = topo.map(&sizes, off) {
                        let leaf = sizes.get(m.leaf).expect("leaf index in range");
                        assert!(m.offset_bytes < leaf, "mapped past the end of the leaf");
                        assert!(m.contiguous_bytes >= 1);
                        assert!(m.offset_bytes + m.contiguous_bytes <= leaf);
                    }
                }
            }
        }
    }
    if let Ok(l) = from_bytes::<BlockLayout>(data) {
        if let Ok(v) = l.validate() {
            let s = v.as_slice();
            assert!(s.windows(2).all(|w| w[0].file_offset_bytes <= w[1].file_offset_bytes));
        }
    }
    if let Ok(u) = from_bytes::<BlockLayoutUpdate>(data) {
        let _ = u.validate();
    }
});
