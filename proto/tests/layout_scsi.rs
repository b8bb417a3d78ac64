//! RFC 8154 SCSI layout bodies: byte-exact encodings, round trips, validation errors and
//! never-panic decoding. The topology logic is shared with the block layout (tested in depth
//! in layout_block.rs); here it is exercised through the BASE leaf.
//!
//! Random tests print their seed; force one with `PNFS_TEST_SEED=<n>`.

// The generators cut random u64s down to bytes and small counts on purpose.
#![allow(clippy::cast_possible_truncation)]

use pnfs_proto::layout::scsi::{
    ScsiBaseVolume, ScsiCodeSet, ScsiDesignatorType, ScsiDeviceAddr, ScsiLayout, ScsiLayoutUpdate,
    ScsiRange, ScsiVolume, SCSI_DESIGNATOR_MAX_BYTES,
};
use pnfs_proto::layout::{DeviceAddr, Extent, ExtentState, LayoutError, Mapped, VolumeNode};
use pnfs_proto::nfs4::types::DeviceId;
use pnfs_proto::xdr::{from_bytes, to_bytes, XdrError};

mod common;
use common::Rng;

fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .flat_map(|l| l.bytes())
        .filter(u8::is_ascii_hexdigit)
        .collect();
    assert_eq!(digits.len() % 2, 0, "odd number of hex digits");
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

const MIB: u64 = 1024 * 1024;

fn base(
    designator_type: ScsiDesignatorType,
    designator: &[u8],
    pr_key: u64,
) -> VolumeNode<ScsiBaseVolume> {
    VolumeNode::Leaf(ScsiBaseVolume {
        code_set: ScsiCodeSet::Binary,
        designator_type,
        designator: designator.to_vec(),
        pr_key,
    })
}

fn sample() -> ScsiDeviceAddr {
    DeviceAddr {
        volumes: vec![
            base(
                ScsiDesignatorType::Naa,
                &[
                    0x60, 0x01, 0x40, 0x5a, 0xbc, 0xde, 0xf0, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc,
                    0xde, 0xf0, 0x01,
                ],
                0x0102_0304_0506_0708,
            ),
            base(
                ScsiDesignatorType::Eui64,
                &[0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77],
                0x0102_0304_0506_0708,
            ),
            VolumeNode::Slice {
                start_bytes: 0,
                length_bytes: 2 * MIB,
                volume: 0,
            },
            VolumeNode::Slice {
                start_bytes: MIB,
                length_bytes: 2 * MIB,
                volume: 1,
            },
            VolumeNode::Stripe {
                stripe_unit_bytes: 4096,
                volumes: vec![2, 3],
            },
            VolumeNode::Concat {
                volumes: vec![4, 1],
            },
        ],
    }
}

/// Written by hand from RFC 8154 §2.3.
const SAMPLE_HEX: &str = "
    00000006                              # sda_volumes: 6
    # [0] BASE: code set BINARY(1), designator NAA(3), 16 bytes, PR key
    00000004 00000001 00000003 00000010
    6001405a bcdef012 3456789a bcdef001
    0102030405060708
    # [1] BASE: BINARY, EUI64(2), 8 bytes, same PR key
    00000004 00000001 00000002 00000008
    00112233 44556677
    0102030405060708
    # [2] SLICE 0 + 2 MiB of [0]
    00000001 0000000000000000 0000000000200000 00000000
    # [3] SLICE 1 MiB + 2 MiB of [1]
    00000001 0000000000100000 0000000000200000 00000001
    # [4] STRIPE 4 KiB over [2, 3]
    00000003 0000000000001000 00000002 00000002 00000003
    # [5] CONCAT [4, 1]: the top
    00000002 00000002 00000004 00000001
";

const UPDATE_HEX: &str = "
    00000002                              # slu_commit_list: 2 ranges
    0000000000000000 0000000000001000     # file 0, 4 KiB
    0000000000010000 0000000000002000     # file 64 KiB, 8 KiB
";

#[test]
fn device_address_matches_hand_encoding_and_maps() {
    let expected = hex(SAMPLE_HEX);
    assert_eq!(to_bytes(&sample()), expected);
    let topo = ScsiDeviceAddr::decode_validated(&expected).unwrap();
    assert_eq!(topo.to_device_addr(), sample());
    let keys: Vec<_> = topo.leaves().map(|(i, l)| (i, l.designator_type)).collect();
    assert_eq!(
        keys,
        vec![(0, ScsiDesignatorType::Naa), (1, ScsiDesignatorType::Eui64)]
    );
    let sizes = topo.sizes(|_, _| Some(8 * MIB)).unwrap();
    assert_eq!(sizes.top_bytes(), 4 * MIB + 8 * MIB);
    assert_eq!(
        topo.map(&sizes, 4096 + 10),
        Ok(Mapped {
            leaf: 1,
            offset_bytes: MIB + 10,
            contiguous_bytes: 4096 - 10
        })
    );
    assert_eq!(
        topo.map(&sizes, 4 * MIB + 7),
        Ok(Mapped {
            leaf: 1,
            offset_bytes: 7,
            contiguous_bytes: 8 * MIB - 7
        })
    );
    assert!(matches!(&*topo.tree(), ScsiVolume::Concat { children } if children.len() == 2));
}

#[test]
fn layout_and_update_match_hand_encoding() {
    let update = ScsiLayoutUpdate {
        commit_list: vec![
            ScsiRange {
                file_offset_bytes: 0,
                length_bytes: 4096,
            },
            ScsiRange {
                file_offset_bytes: 64 * 1024,
                length_bytes: 8192,
            },
        ],
    };
    assert_eq!(to_bytes(&update), hex(UPDATE_HEX));
    assert_eq!(
        from_bytes::<ScsiLayoutUpdate>(&hex(UPDATE_HEX)),
        Ok(update.clone())
    );
    assert_eq!(update.validate().unwrap(), update.commit_list);

    let layout = ScsiLayout {
        extents: vec![Extent {
            device_id: DeviceId([0xab; 16]),
            file_offset_bytes: 0,
            length_bytes: 4096,
            storage_offset_bytes: 8192,
            state: ExtentState::InvalidData,
        }],
    };
    let expected = hex("
        00000001
        abababababababababababababababab   # se_vol_id
        0000000000000000 0000000000001000  # file 0, 4 KiB
        0000000000002000 00000002          # storage 8 KiB, INVALID_DATA
    ");
    assert_eq!(to_bytes(&layout), expected);
    assert_eq!(from_bytes::<ScsiLayout>(&expected), Ok(layout.clone()));
    assert_eq!(layout.validate().unwrap().as_slice(), &layout.extents[..]);
}

#[test]
fn validation_errors_are_specific() {
    let one = |v| DeviceAddr { volumes: vec![v] }.validate();
    assert_eq!(
        one(base(ScsiDesignatorType::Naa, &[], 1)),
        Err(LayoutError::BadLeaf {
            volume: 0,
            detail: "BASE volume with an empty designator".into()
        })
    );
    assert_eq!(
        one(base(ScsiDesignatorType::Naa, &[1; 8], 0)),
        Err(LayoutError::BadLeaf {
            volume: 0,
            detail: "persistent-reservation key 0".into()
        })
    );
    let mut fwd = sample();
    fwd.volumes[2] = VolumeNode::Slice {
        start_bytes: 0,
        length_bytes: 1,
        volume: 4,
    };
    assert_eq!(
        fwd.validate(),
        Err(LayoutError::ForwardReference {
            volume: 2,
            child: 4
        })
    );
    // SIMPLE (0) is a block volume, not a SCSI one; 5 is nothing.
    for tag in [0u32, 5] {
        let mut b = hex("00000001");
        b.extend_from_slice(&tag.to_be_bytes());
        assert_eq!(
            from_bytes::<ScsiDeviceAddr>(&b),
            Err(XdrError::BadEnum {
                what: "pnfs_scsi_volume_type4",
                value: tag
            })
        );
    }
    // Unknown designator type and code set.
    let err =
        from_bytes::<ScsiDeviceAddr>(&hex("00000001 00000004 00000001 00000004")).unwrap_err();
    assert_eq!(
        err,
        XdrError::BadEnum {
            what: "pnfs_scsi_designator_type",
            value: 4
        }
    );
    let err = from_bytes::<ScsiDeviceAddr>(&hex("00000001 00000004 00000000")).unwrap_err();
    assert_eq!(
        err,
        XdrError::BadEnum {
            what: "pnfs_scsi_code_set",
            value: 0
        }
    );
    // Designator too long for SPC.
    let err = from_bytes::<ScsiDeviceAddr>(&to_bytes(&DeviceAddr {
        volumes: vec![base(
            ScsiDesignatorType::Name,
            &[b'x'; SCSI_DESIGNATOR_MAX_BYTES + 1],
            1,
        )],
    }))
    .unwrap_err();
    assert!(
        matches!(
            err,
            XdrError::TooLong {
                len: 256,
                limit: 255,
                ..
            }
        ),
        "{err:?}"
    );
    // Commit ranges.
    let r = |o, l| ScsiRange {
        file_offset_bytes: o,
        length_bytes: l,
    };
    let upd = |v: Vec<ScsiRange>| ScsiLayoutUpdate { commit_list: v }.validate();
    assert_eq!(
        upd(vec![r(10, 10), r(0, 11)]),
        Err(LayoutError::OverlappingExtents {
            first: 1,
            second: 0
        })
    );
    assert_eq!(
        upd(vec![r(0, 0)]),
        Err(LayoutError::ZeroLengthExtent { index: 0 })
    );
    assert_eq!(
        upd(vec![r(0, 1), r(u64::MAX, 1)]),
        Err(LayoutError::ExtentOverflow { index: 1 })
    );
    assert_eq!(
        upd(vec![r(10, 10), r(0, 10)]),
        Ok(vec![r(0, 10), r(10, 10)])
    );
}

fn random_base(rng: &mut Rng) -> ScsiBaseVolume {
    let len = 1 + rng.below(SCSI_DESIGNATOR_MAX_BYTES as u64) as usize;
    ScsiBaseVolume {
        code_set: [ScsiCodeSet::Binary, ScsiCodeSet::Ascii, ScsiCodeSet::Utf8]
            [rng.below(3) as usize],
        designator_type: [
            ScsiDesignatorType::T10,
            ScsiDesignatorType::Eui64,
            ScsiDesignatorType::Naa,
            ScsiDesignatorType::Name,
        ][rng.below(4) as usize],
        designator: rng.bytes(len),
        pr_key: rng.next() | 1,
    }
}

#[test]
fn random_bodies_round_trip() {
    let mut rng = Rng::from_env("random_bodies_round_trip");
    for _ in 0..300 {
        let n = 1 + rng.below(12) as u32;
        let mut volumes = Vec::new();
        for i in 0..n {
            let v = if i == 0 || rng.below(3) == 0 {
                VolumeNode::Leaf(random_base(&mut rng))
            } else {
                let kids: Vec<u32> = {
                    let mut k: Vec<u32> = (0..1 + rng.below(3))
                        .map(|_| rng.below(u64::from(i)) as u32)
                        .collect();
                    k.sort_unstable();
                    k.dedup();
                    k
                };
                match rng.below(3) {
                    0 => VolumeNode::Slice {
                        start_bytes: rng.below(1 << 40),
                        length_bytes: 1 + rng.below(1 << 40),
                        volume: kids[0],
                    },
                    1 => VolumeNode::Concat { volumes: kids },
                    _ => VolumeNode::Stripe {
                        stripe_unit_bytes: 1 + rng.below(1 << 20),
                        volumes: kids,
                    },
                }
            };
            volumes.push(v);
        }
        let a = ScsiDeviceAddr { volumes };
        assert_eq!(from_bytes::<ScsiDeviceAddr>(&to_bytes(&a)).as_ref(), Ok(&a));
        let t = a.validate();
        assert!(
            t.is_ok() || matches!(t, Err(LayoutError::TooDeep { .. })),
            "{t:?}"
        );
        let u = ScsiLayoutUpdate {
            commit_list: (0..rng.below(10))
                .map(|_| ScsiRange {
                    file_offset_bytes: rng.next(),
                    length_bytes: rng.next(),
                })
                .collect(),
        };
        assert_eq!(from_bytes::<ScsiLayoutUpdate>(&to_bytes(&u)), Ok(u));
    }
}

fn decode_everything(bytes: &[u8]) {
    if let Ok(a) = from_bytes::<ScsiDeviceAddr>(bytes) {
        if let Ok(t) = a.validate() {
            let _ = t.tree();
            if let Ok(s) = t.sizes(|_, _| Some(1 << 30)) {
                let _ = t.map(&s, s.top_bytes() / 3);
            }
        }
    }
    if let Ok(l) = from_bytes::<ScsiLayout>(bytes) {
        let _ = l.validate();
    }
    if let Ok(u) = from_bytes::<ScsiLayoutUpdate>(bytes) {
        let _ = u.validate();
    }
}

#[test]
fn truncations_fail_and_random_bytes_never_panic() {
    for body in [hex(SAMPLE_HEX), hex(UPDATE_HEX)] {
        for cut in 0..body.len() {
            decode_everything(&body[..cut]);
        }
    }
    let full = hex(SAMPLE_HEX);
    for cut in 0..full.len() {
        assert!(
            from_bytes::<ScsiDeviceAddr>(&full[..cut]).is_err(),
            "cut {cut}"
        );
    }
    let full = hex(UPDATE_HEX);
    for cut in 0..full.len() {
        assert!(
            from_bytes::<ScsiLayoutUpdate>(&full[..cut]).is_err(),
            "cut {cut}"
        );
    }
    let mut rng = Rng::from_env("truncations_fail_and_random_bytes_never_panic");
    let seeds = [hex(SAMPLE_HEX), hex(UPDATE_HEX)];
    for i in 0..3000 {
        let bytes = if i % 3 == 0 {
            let n = rng.below(300) as usize;
            rng.bytes(n)
        } else {
            let mut b = seeds[i % 2].clone();
            for _ in 0..1 + rng.below(6) {
                let pos = rng.below(b.len() as u64) as usize;
                match rng.below(3) {
                    0 => b[pos] = rng.next() as u8,
                    1 => b[pos] ^= 1 << rng.below(8),
                    _ => b.truncate(pos),
                }
                if b.is_empty() {
                    break;
                }
            }
            b
        };
        decode_everything(&bytes);
    }
}
