//! RFC 8154 bodies: device address (decode, validate, resolve, size, map), layout and layout
//! update. Never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pnfs_proto::layout::scsi::{ScsiDeviceAddr, ScsiLayout, ScsiLayoutUpdate};
use pnfs_proto::xdr::{from_bytes, to_bytes};

fuzz_target!(|data: &[u8]| {
    if let Ok(addr) = from_bytes::<ScsiDeviceAddr>(data) {
        // XDR padding is not checked on input, so compare values, not bytes.
        let again = from_bytes::<ScsiDeviceAddr>(&to_bytes(&addr));
        assert_eq!(again.as_ref(), Ok(&addr), "device address re-encoding changed it");
        if let Ok(topo) = addr.validate() {
            let _ = topo.tree();
            if let Ok(sizes) = topo.sizes(|i, _| Some((u64::from(i) + 1) << 20)) {
                let top = sizes.top_bytes();
                for off in [0, top / 2, top.saturating_sub(1)] {
                    if let Ok(m) = topo.map(&sizes, off) {
                        let leaf = sizes.get(m.leaf).expect("leaf index in range");
                        assert!(m.offset_bytes + m.contiguous_bytes <= leaf);
                    }
                }
            }
        }
    }
    if let Ok(l) = from_bytes::<ScsiLayout>(data) {
        let _ = l.validate();
    }
    if let Ok(u) = from_bytes::<ScsiLayoutUpdate>(data) {
        if let Ok(v) = u.validate() {
            assert!(v.windows(2).all(|w| w[0].file_offset_bytes + w[0].length_bytes
                <= w[1].file_offset_bytes));
        }
    }
});
