//! RFC 5663 block layout bodies: byte-exact encodings, round trips, validation errors, offset
//! mapping against a brute-force model, and never-panic decoding.
//!
//! Random tests use a seeded generator; the seed is printed (run with `--nocapture` to see it)
//! and can be forced with `PNFS_TEST_SEED=<n>`.

// The generators cut random u64s down to bytes, indices and small counts on purpose.
#![allow(clippy::cast_possible_truncation)]

use pnfs_proto::layout::block::{
    BlockDeviceAddr, BlockLayout, BlockLayoutUpdate, BlockTopology, BlockVolume, SigComponent,
    SimpleVolume, BLOCK_SIG_MAX_CONTENTS_BYTES, PNFS_BLOCK_MAX_SIG_COMP,
};
use pnfs_proto::layout::{
    validate_extents, DeviceAddr, Extent, ExtentState, LayoutError, Mapped, VolumeNode,
    LAYOUT_MAX_DEPTH, LAYOUT_MAX_VOLUMES,
};
use pnfs_proto::nfs4::types::DeviceId;
use pnfs_proto::xdr::{from_bytes, to_bytes, XdrError};

/// The shared seeded generator (rand's StdRng, seed printed).
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

fn simple(offset: i64, contents: &[u8]) -> VolumeNode<SimpleVolume> {
    VolumeNode::Leaf(SimpleVolume {
        signature: vec![SigComponent {
            sig_offset_bytes: offset,
            contents: contents.to_vec(),
        }],
    })
}

fn slice(start: u64, len: u64, volume: u32) -> VolumeNode<SimpleVolume> {
    VolumeNode::Slice {
        start_bytes: start,
        length_bytes: len,
        volume,
    }
}

fn addr(volumes: Vec<VolumeNode<SimpleVolume>>) -> BlockDeviceAddr {
    DeviceAddr { volumes }
}

const MIB: u64 = 1024 * 1024;
const KIB: u64 = 1024;

/// Two disks, two slices striped together, a third slice concatenated after the stripe.
fn sample_topology() -> BlockDeviceAddr {
    addr(vec![
        simple(32, b"pnfsgw-volume-01"),
        simple(-4096, b"vol-2"),
        slice(MIB, 4 * MIB, 0),
        slice(0, 4 * MIB, 1),
        VolumeNode::Stripe {
            stripe_unit_bytes: 64 * KIB,
            volumes: vec![2, 3],
        },
        slice(5 * MIB, MIB, 0),
        VolumeNode::Concat {
            volumes: vec![4, 5],
        },
    ])
}

/// The same device address written out by hand from RFC 5663 §2.2.2.
const SAMPLE_TOPOLOGY_HEX: &str = "
    00000007                              # bda_volumes: 7 entries
    # [0] SIMPLE, one signature component at offset 32, 16 bytes
    00000000 00000001 0000000000000020 00000010
    706e6673 67772d76 6f6c756d 652d3031   # 'pnfsgw-volume-01'
    # [1] SIMPLE, one component at offset -4096 (from the end), 5 bytes + 3 pad
    00000000 00000001 fffffffffffff000 00000005
    766f6c2d 32000000                     # 'vol-2' + padding
    # [2] SLICE start 1 MiB, length 4 MiB, of volume 0
    00000001 0000000000100000 0000000000400000 00000000
    # [3] SLICE start 0, length 4 MiB, of volume 1
    00000001 0000000000000000 0000000000400000 00000001
    # [4] STRIPE unit 64 KiB over volumes [2, 3]
    00000003 0000000000010000 00000002 00000002 00000003
    # [5] SLICE start 5 MiB, length 1 MiB, of volume 0
    00000001 0000000000500000 0000000000100000 00000000
    # [6] CONCAT of volumes [4, 5]: the top
    00000002 00000002 00000004 00000005
";

fn dev(n: u8) -> DeviceId {
    DeviceId([n; 16])
}

fn sample_layout() -> BlockLayout {
    let d = DeviceId(*b"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f");
    BlockLayout {
        extents: vec![
            Extent {
                device_id: d,
                file_offset_bytes: 0,
                length_bytes: 64 * KIB,
                storage_offset_bytes: 2 * MIB,
                state: ExtentState::InvalidData,
            },
            Extent {
                device_id: d,
                file_offset_bytes: 0,
                length_bytes: 64 * KIB,
                storage_offset_bytes: MIB,
                state: ExtentState::ReadData,
            },
            Extent {
                device_id: d,
                file_offset_bytes: 64 * KIB,
                length_bytes: 960 * KIB,
                storage_offset_bytes: MIB + 64 * KIB,
                state: ExtentState::ReadWriteData,
            },
        ],
    }
}

const SAMPLE_LAYOUT_HEX: &str = "
    00000003                              # blo_extents: 3
    # copy-on-write pair for file bytes 0..64 KiB: INVALID target, READ source
    000102030405060708090a0b0c0d0e0f      # bex_vol_id
    0000000000000000 0000000000010000     # file offset 0, length 64 KiB
    0000000000200000 00000002             # storage 2 MiB, INVALID_DATA
    000102030405060708090a0b0c0d0e0f
    0000000000000000 0000000000010000
    0000000000100000 00000001             # storage 1 MiB, READ_DATA
    # the rest of the first MiB, read-write
    000102030405060708090a0b0c0d0e0f
    0000000000010000 00000000000f0000     # file 64 KiB, length 960 KiB
    0000000000110000 00000000             # storage 1 MiB + 64 KiB, READ_WRITE_DATA
";

#[test]
fn device_address_matches_hand_encoding() {
    let expected = hex(SAMPLE_TOPOLOGY_HEX);
    let a = sample_topology();
    assert_eq!(to_bytes(&a), expected);
    assert_eq!(from_bytes::<BlockDeviceAddr>(&expected), Ok(a.clone()));
    let topo = BlockDeviceAddr::decode_validated(&expected).unwrap();
    assert_eq!(topo.top(), 6);
    assert_eq!(topo.depth(), 4);
    assert_eq!(topo.to_device_addr(), a);
    assert_eq!(
        topo.leaves().map(|(i, _)| i).collect::<Vec<_>>(),
        vec![0, 1]
    );
}

#[test]
fn extent_list_matches_hand_encoding() {
    let expected = hex(SAMPLE_LAYOUT_HEX);
    let l = sample_layout();
    assert_eq!(to_bytes(&l), expected);
    assert_eq!(from_bytes::<BlockLayout>(&expected), Ok(l.clone()));
    // The update body has the same wire shape.
    let u = BlockLayoutUpdate {
        commit_list: l.extents.clone(),
    };
    assert_eq!(to_bytes(&u), expected);
    // Valid: the overlap is the copy-on-write pair; the result is sorted, READ first.
    let v = l.validate().unwrap();
    let states: Vec<_> = v.as_slice().iter().map(|e| e.state).collect();
    assert_eq!(
        states,
        vec![
            ExtentState::ReadData,
            ExtentState::InvalidData,
            ExtentState::ReadWriteData
        ]
    );
}

#[test]
fn sample_topology_maps_offsets() {
    let topo = sample_topology().validate().unwrap();
    let disk_bytes = [8 * MIB, 4 * MIB];
    let sizes = topo
        .sizes(|i, _| disk_bytes.get(i as usize).copied())
        .unwrap();
    assert_eq!(sizes.top_bytes(), 9 * MIB);
    assert_eq!(sizes.get(4), Some(8 * MIB));
    let m = |o| topo.map(&sizes, o);
    // Stripe unit 0 -> slice [2] -> disk 0 at 1 MiB.
    assert_eq!(
        m(0),
        Ok(Mapped {
            leaf: 0,
            offset_bytes: MIB,
            contiguous_bytes: 64 * KIB
        })
    );
    // Stripe unit 1 -> slice [3] -> disk 1 at 5.
    assert_eq!(
        m(64 * KIB + 5),
        Ok(Mapped {
            leaf: 1,
            offset_bytes: 5,
            contiguous_bytes: 64 * KIB - 5
        })
    );
    // Stripe unit 2 -> second row of slice [2].
    assert_eq!(
        m(128 * KIB),
        Ok(Mapped {
            leaf: 0,
            offset_bytes: MIB + 64 * KIB,
            contiguous_bytes: 64 * KIB
        })
    );
    // Past the stripe: slice [5] of disk 0 at 5 MiB, 1 MiB contiguous.
    assert_eq!(
        m(8 * MIB),
        Ok(Mapped {
            leaf: 0,
            offset_bytes: 5 * MIB,
            contiguous_bytes: MIB
        })
    );
    assert_eq!(
        m(9 * MIB),
        Err(LayoutError::OffsetOutOfRange {
            offset_bytes: 9 * MIB,
            size_bytes: 9 * MIB
        })
    );
    // Sizes of another topology are refused, not trusted.
    let other = addr(vec![simple(0, b"x")]).validate().unwrap();
    let other_sizes = other.sizes(|_, _| Some(MIB)).unwrap();
    assert_eq!(topo.map(&other_sizes, 0), Err(LayoutError::SizesMismatch));
    assert_eq!(
        topo.map_offset(0, |_, _| None),
        Err(LayoutError::UnknownLeafSize { volume: 0 })
    );
    // The resolved tree shares nothing it should not and has the expected shape.
    match &*topo.tree() {
        BlockVolume::Concat { children } => {
            assert_eq!(children.len(), 2);
            assert!(
                matches!(&*children[0], BlockVolume::Stripe { stripe_unit_bytes, children }
                if *stripe_unit_bytes == 64 * KIB && children.len() == 2)
            );
            assert!(matches!(&*children[1], BlockVolume::Slice { child, .. }
                if matches!(&**child, BlockVolume::Leaf { index: 0, .. })));
        }
        other => panic!("top is not a concat: {other:?}"),
    }
}

#[test]
fn size_errors_are_specific() {
    let topo = sample_topology().validate().unwrap();
    // Disk 0 too small for slice [2] (1 MiB + 4 MiB).
    assert_eq!(
        topo.sizes(|_, _| Some(4 * MIB)),
        Err(LayoutError::SliceOutOfRange {
            volume: 2,
            end_bytes: 5 * MIB,
            child_size_bytes: 4 * MIB
        })
    );
    let t = addr(vec![
        simple(0, b"a"),
        simple(0, b"b"),
        VolumeNode::Stripe {
            stripe_unit_bytes: 4096,
            volumes: vec![0, 1],
        },
    ])
    .validate()
    .unwrap();
    assert_eq!(
        t.sizes(|i, _| Some(if i == 0 { 8192 } else { 4096 })),
        Err(LayoutError::StripeSizeMismatch {
            volume: 2,
            first_bytes: 8192,
            other_bytes: 4096
        })
    );
    // Equal children not a multiple of the unit: only full rows count.
    let s = t.sizes(|_, _| Some(10_000)).unwrap();
    assert_eq!(s.top_bytes(), 2 * 8192);
    let t = addr(vec![
        simple(0, b"a"),
        simple(0, b"b"),
        VolumeNode::Concat {
            volumes: vec![0, 1],
        },
    ])
    .validate()
    .unwrap();
    assert_eq!(
        t.sizes(|_, _| Some(u64::MAX)),
        Err(LayoutError::SizeOverflow { volume: 2 })
    );
}

#[test]
fn validation_errors_are_specific() {
    let sig = || simple(0, b"sig");
    let check = |vols: Vec<VolumeNode<SimpleVolume>>, want: LayoutError| {
        assert_eq!(addr(vols).validate(), Err(want));
    };
    check(vec![], LayoutError::NoVolumes);
    check(
        vec![slice(0, 1, 1), sig()],
        LayoutError::ForwardReference {
            volume: 0,
            child: 1,
        },
    );
    check(
        vec![sig(), slice(0, 1, 1)],
        LayoutError::SelfReference { volume: 1 },
    );
    check(
        vec![
            sig(),
            VolumeNode::Concat {
                volumes: vec![0, 7],
            },
        ],
        LayoutError::ReferenceOutOfRange {
            volume: 1,
            child: 7,
            count: 2,
        },
    );
    check(
        vec![
            sig(),
            VolumeNode::Concat {
                volumes: vec![0, 0],
            },
        ],
        LayoutError::DuplicateReference {
            volume: 1,
            child: 0,
        },
    );
    check(
        vec![sig(), VolumeNode::Concat { volumes: vec![] }],
        LayoutError::NoChildren { volume: 1 },
    );
    check(
        vec![
            sig(),
            VolumeNode::Stripe {
                stripe_unit_bytes: 0,
                volumes: vec![0],
            },
        ],
        LayoutError::ZeroStripeUnit { volume: 1 },
    );
    check(
        vec![sig(), slice(0, 0, 0)],
        LayoutError::ZeroLengthSlice { volume: 1 },
    );
    check(
        vec![sig(), slice(u64::MAX, 1, 0)],
        LayoutError::SliceOverflow { volume: 1 },
    );
    check(
        vec![VolumeNode::Leaf(SimpleVolume { signature: vec![] })],
        LayoutError::BadLeaf {
            volume: 0,
            detail: "SIMPLE volume without a signature".into(),
        },
    );
    check(
        vec![simple(0, b"")],
        LayoutError::BadLeaf {
            volume: 0,
            detail: "signature component 0 is empty".into(),
        },
    );
    // Depth: a leaf and a chain of slices; depth 16 is fine, 17 is not.
    let chain = |n: usize| {
        let mut v = vec![sig()];
        for i in 0..n {
            v.push(slice(0, 1, i as u32));
        }
        v
    };
    let limit = LAYOUT_MAX_DEPTH as usize;
    assert_eq!(addr(chain(limit - 1)).validate().unwrap().depth(), 16);
    check(
        chain(limit),
        LayoutError::TooDeep {
            volume: LAYOUT_MAX_DEPTH,
            depth: LAYOUT_MAX_DEPTH + 1,
            limit: LAYOUT_MAX_DEPTH,
        },
    );
    // Count: built in memory past the decode limit, and refused on the wire.
    let many: Vec<_> = (0..=LAYOUT_MAX_VOLUMES).map(|_| sig()).collect();
    check(
        many.clone(),
        LayoutError::TooManyVolumes {
            count: LAYOUT_MAX_VOLUMES + 1,
            limit: LAYOUT_MAX_VOLUMES,
        },
    );
    let err = from_bytes::<BlockDeviceAddr>(&to_bytes(&addr(many))).unwrap_err();
    assert!(
        matches!(
            err,
            XdrError::TooLong {
                len: 1025,
                limit: 1024,
                ..
            }
        ),
        "{err:?}"
    );
    // Signature limits are enforced while decoding.
    let too_many_sigs = SimpleVolume {
        signature: (0..=PNFS_BLOCK_MAX_SIG_COMP)
            .map(|_| SigComponent {
                sig_offset_bytes: 0,
                contents: vec![1],
            })
            .collect(),
    };
    let err =
        from_bytes::<BlockDeviceAddr>(&to_bytes(&addr(vec![VolumeNode::Leaf(too_many_sigs)])))
            .unwrap_err();
    assert!(
        matches!(
            err,
            XdrError::TooLong {
                len: 17,
                limit: 16,
                ..
            }
        ),
        "{err:?}"
    );
    let err = from_bytes::<BlockDeviceAddr>(&to_bytes(&addr(vec![simple(
        0,
        &[7; BLOCK_SIG_MAX_CONTENTS_BYTES + 1],
    )])))
    .unwrap_err();
    assert!(matches!(err, XdrError::TooLong { .. }), "{err:?}");
    // An unknown volume type (4 is SCSI BASE, not a block volume).
    let err = from_bytes::<BlockDeviceAddr>(&hex("00000001 00000004")).unwrap_err();
    assert_eq!(
        err,
        XdrError::BadEnum {
            what: "pnfs_block_volume_type4",
            value: 4
        }
    );
}

fn ext(off: u64, len: u64, state: ExtentState) -> Extent {
    Extent {
        device_id: dev(1),
        file_offset_bytes: off,
        length_bytes: len,
        storage_offset_bytes: off,
        state,
    }
}

#[test]
fn extent_validation_errors_are_specific() {
    use ExtentState::*;
    assert_eq!(
        validate_extents(&[ext(0, 10, ReadWriteData), ext(5, 10, ReadWriteData)]),
        Err(LayoutError::OverlappingExtents {
            first: 0,
            second: 1
        })
    );
    // Unsorted input: reported by input position.
    assert_eq!(
        validate_extents(&[
            ext(100, 10, ReadData),
            ext(0, 50, NoneData),
            ext(40, 20, ReadWriteData)
        ]),
        Err(LayoutError::OverlappingExtents {
            first: 1,
            second: 2
        })
    );
    // A long extent hiding an overlap behind a short one.
    assert_eq!(
        validate_extents(&[ext(0, 100, InvalidData), ext(10, 5, NoneData),]),
        Err(LayoutError::OverlappingExtents {
            first: 0,
            second: 1
        })
    );
    assert_eq!(
        validate_extents(&[ext(0, 10, InvalidData), ext(9, 10, InvalidData)]),
        Err(LayoutError::OverlappingExtents {
            first: 0,
            second: 1
        })
    );
    assert_eq!(
        validate_extents(&[ext(0, 10, ReadData), ext(9, 10, ReadData)]),
        Err(LayoutError::OverlappingExtents {
            first: 0,
            second: 1
        })
    );
    assert_eq!(
        validate_extents(&[ext(0, 0, ReadData)]),
        Err(LayoutError::ZeroLengthExtent { index: 0 })
    );
    assert_eq!(
        validate_extents(&[ext(0, 10, ReadData), ext(u64::MAX - 5, 10, ReadData)]),
        Err(LayoutError::ExtentOverflow { index: 1 })
    );
    let mut storage_overflow = ext(0, 10, ReadWriteData);
    storage_overflow.storage_offset_bytes = u64::MAX;
    assert_eq!(
        validate_extents(&[storage_overflow]),
        Err(LayoutError::ExtentOverflow { index: 0 })
    );
    // NONE_DATA has no storage, so its storage offset is not checked.
    storage_overflow.state = NoneData;
    assert!(validate_extents(&[storage_overflow]).is_ok());
    // Adjacent extents and the copy-on-write pair are fine.
    let ok = validate_extents(&[
        ext(10, 10, ReadWriteData),
        ext(0, 10, InvalidData),
        ext(0, 10, ReadData),
        ext(20, 5, NoneData),
    ])
    .unwrap();
    let offs: Vec<_> = ok
        .as_slice()
        .iter()
        .map(|e| (e.file_offset_bytes, e.state))
        .collect();
    assert_eq!(
        offs,
        vec![
            (0, ReadData),
            (0, InvalidData),
            (10, ReadWriteData),
            (20, NoneData)
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Random topologies: round trips and mapping against a brute-force model.

/// Largest volume the brute-force model expands byte by byte.
const MODEL_MAX_VOLUME_BYTES: u64 = 12_000;

struct Generated {
    addr: BlockDeviceAddr,
    leaf_bytes: Vec<Option<u64>>,
}

fn random_sig(rng: &mut Rng) -> SimpleVolume {
    let n = 1 + rng.below(3) as usize;
    SimpleVolume {
        signature: (0..n)
            .map(|_| SigComponent {
                sig_offset_bytes: rng.next() as i64 % 100_000,
                contents: {
                    let len = 1 + rng.below(40) as usize;
                    rng.bytes(len)
                },
            })
            .collect(),
    }
}

#[derive(Default)]
struct Builder {
    vols: Vec<VolumeNode<SimpleVolume>>,
    size: Vec<u64>,
    depth: Vec<u32>,
    leaf_bytes: Vec<Option<u64>>,
}

impl Builder {
    fn push(&mut self, v: VolumeNode<SimpleVolume>, size: u64, depth: u32, leaf: Option<u64>) {
        self.vols.push(v);
        self.size.push(size);
        self.depth.push(depth);
        self.leaf_bytes.push(leaf);
    }
}

/// A random valid topology whose sizes stay small enough for the byte model.
fn random_topology(rng: &mut Rng) -> Generated {
    let target = 1 + rng.below(24) as usize;
    let mut b = Builder::default();
    // Children must leave room for their parent (and a stripe's fresh slices) under the limit.
    let max_child_depth = LAYOUT_MAX_DEPTH - 2;
    while b.vols.len() < target {
        let usable: Vec<usize> = (0..b.vols.len())
            .filter(|&i| b.depth[i] <= max_child_depth && b.size[i] > 0)
            .collect();
        let kind = if usable.is_empty() { 0 } else { rng.below(4) };
        match kind {
            1 => {
                let c = usable[rng.below(usable.len() as u64) as usize];
                let start = rng.below(b.size[c]);
                let len = 1 + rng.below(b.size[c] - start);
                let d = b.depth[c] + 1;
                b.push(slice(start, len, c as u32), len, d, None);
            }
            2 => {
                let mut kids: Vec<usize> = Vec::new();
                for _ in 0..1 + rng.below(4) {
                    let c = usable[rng.below(usable.len() as u64) as usize];
                    if !kids.contains(&c) {
                        kids.push(c);
                    }
                }
                let total: u64 = kids.iter().map(|&c| b.size[c]).sum();
                if total > MODEL_MAX_VOLUME_BYTES {
                    continue;
                }
                let d = kids.iter().map(|&c| b.depth[c]).max().unwrap() + 1;
                let volumes = kids.iter().map(|&c| c as u32).collect();
                b.push(VolumeNode::Concat { volumes }, total, d, None);
            }
            3 => {
                // Equal-size children: fresh slices of one length from random volumes.
                let n = 1 + rng.below(4);
                let len = 1 + rng.below(2000);
                let unit = 1 + rng.below(300);
                let mut kids = Vec::new();
                for _ in 0..n {
                    let big: Vec<usize> = usable
                        .iter()
                        .copied()
                        .filter(|&i| b.size[i] >= len)
                        .collect();
                    let Some(&c) = big.get(rng.below(big.len().max(1) as u64) as usize) else {
                        break;
                    };
                    let start = rng.below(b.size[c] - len + 1);
                    let d = b.depth[c] + 1;
                    b.push(slice(start, len, c as u32), len, d, None);
                    kids.push(b.vols.len() - 1);
                }
                if kids.is_empty() {
                    continue;
                }
                let d = kids.iter().map(|&c| b.depth[c]).max().unwrap() + 1;
                // Children shorter than one unit give a stripe of no bytes: still a valid
                // structure; `usable` skips it afterwards.
                let total = (len - len % unit) * kids.len() as u64;
                let volumes = kids.iter().map(|&c| c as u32).collect();
                b.push(
                    VolumeNode::Stripe {
                        stripe_unit_bytes: unit,
                        volumes,
                    },
                    total,
                    d,
                    None,
                );
            }
            _ => {
                let bytes = 1 + rng.below(3000);
                let sig = random_sig(rng);
                b.push(VolumeNode::Leaf(sig), bytes, 1, Some(bytes));
            }
        }
    }
    Generated {
        addr: addr(b.vols),
        leaf_bytes: b.leaf_bytes,
    }
}

/// Byte-by-byte model: for every logical byte of every volume, (leaf, offset on leaf).
fn expand(addr: &BlockDeviceAddr, leaf_bytes: &[Option<u64>]) -> Vec<Vec<(u32, u64)>> {
    let mut out: Vec<Vec<(u32, u64)>> = Vec::new();
    for (i, v) in addr.volumes.iter().enumerate() {
        let bytes = match v {
            VolumeNode::Leaf(_) => (0..leaf_bytes[i].unwrap()).map(|o| (i as u32, o)).collect(),
            VolumeNode::Slice {
                start_bytes,
                length_bytes,
                volume,
            } => out[*volume as usize]
                [*start_bytes as usize..(*start_bytes + *length_bytes) as usize]
                .to_vec(),
            VolumeNode::Concat { volumes } => volumes
                .iter()
                .flat_map(|&c| out[c as usize].iter().copied())
                .collect(),
            VolumeNode::Stripe {
                stripe_unit_bytes,
                volumes,
            } => {
                let unit = *stripe_unit_bytes as usize;
                let rows = out[volumes[0] as usize].len() / unit;
                let mut v = Vec::new();
                for r in 0..rows {
                    for &c in volumes {
                        v.extend_from_slice(&out[c as usize][r * unit..(r + 1) * unit]);
                    }
                }
                v
            }
        };
        out.push(bytes);
    }
    out
}

#[test]
fn random_topologies_round_trip_and_map_like_the_model() {
    let mut rng = Rng::from_env("random_topologies_round_trip_and_map_like_the_model");
    for _case in 0..200 {
        let g = random_topology(&mut rng);
        let bytes = to_bytes(&g.addr);
        assert_eq!(from_bytes::<BlockDeviceAddr>(&bytes).as_ref(), Ok(&g.addr));
        let topo: BlockTopology = g.addr.validate().unwrap();
        let sizes = topo.sizes(|i, _| g.leaf_bytes[i as usize]).unwrap();
        let model = expand(&g.addr, &g.leaf_bytes);
        let top = model.last().unwrap();
        assert_eq!(sizes.top_bytes(), top.len() as u64);
        for (o, &(leaf, off)) in top.iter().enumerate() {
            let m = topo.map(&sizes, o as u64).unwrap();
            assert_eq!((m.leaf, m.offset_bytes), (leaf, off), "offset {o}");
            assert!(m.contiguous_bytes >= 1);
            assert!(o as u64 + m.contiguous_bytes <= top.len() as u64);
            // Every byte of the contiguous run is where the run says.
            let run = m.contiguous_bytes as usize;
            for k in 0..run {
                assert_eq!(top[o + k], (leaf, off + k as u64), "offset {o} + {k}");
            }
        }
        assert!(matches!(
            topo.map(&sizes, top.len() as u64),
            Err(LayoutError::OffsetOutOfRange { .. })
        ));
    }
}

#[test]
fn random_extent_lists_round_trip() {
    let mut rng = Rng::from_env("random_extent_lists_round_trip");
    for _ in 0..300 {
        let n = rng.below(20) as usize;
        let extents: Vec<Extent> = (0..n)
            .map(|_| Extent {
                device_id: DeviceId(rng.bytes(16).try_into().unwrap()),
                file_offset_bytes: rng.next(),
                length_bytes: rng.next(),
                storage_offset_bytes: rng.next(),
                state: match rng.below(4) {
                    0 => ExtentState::ReadWriteData,
                    1 => ExtentState::ReadData,
                    2 => ExtentState::InvalidData,
                    _ => ExtentState::NoneData,
                },
            })
            .collect();
        let l = BlockLayout {
            extents: extents.clone(),
        };
        assert_eq!(from_bytes::<BlockLayout>(&to_bytes(&l)), Ok(l));
        let u = BlockLayoutUpdate {
            commit_list: extents,
        };
        assert_eq!(from_bytes::<BlockLayoutUpdate>(&to_bytes(&u)), Ok(u));
    }
}

// ---------------------------------------------------------------------------------------------
// Never panic.

fn decode_everything(bytes: &[u8]) {
    if let Ok(a) = from_bytes::<BlockDeviceAddr>(bytes) {
        if let Ok(t) = a.validate() {
            let _ = t.tree();
            if let Ok(s) = t.sizes(|i, _| Some(u64::from(i) * 4096 + 4096)) {
                let _ = t.map(&s, 0);
                let _ = t.map(&s, s.top_bytes() / 2);
                let _ = t.map(&s, s.top_bytes().saturating_sub(1));
            }
        }
    }
    if let Ok(l) = from_bytes::<BlockLayout>(bytes) {
        let _ = l.validate();
    }
    if let Ok(u) = from_bytes::<BlockLayoutUpdate>(bytes) {
        let _ = u.validate();
    }
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    for body in [hex(SAMPLE_TOPOLOGY_HEX), hex(SAMPLE_LAYOUT_HEX)] {
        for cut in 0..body.len() {
            decode_everything(&body[..cut]);
        }
    }
    // Every strict prefix of the topology fails (the count says 7 volumes).
    let body = hex(SAMPLE_TOPOLOGY_HEX);
    for cut in 0..body.len() {
        assert!(
            from_bytes::<BlockDeviceAddr>(&body[..cut]).is_err(),
            "cut {cut}"
        );
    }
    let body = hex(SAMPLE_LAYOUT_HEX);
    for cut in 0..body.len() {
        assert!(
            from_bytes::<BlockLayout>(&body[..cut]).is_err(),
            "cut {cut}"
        );
    }
}

#[test]
fn random_and_mutated_bytes_never_panic() {
    let mut rng = Rng::from_env("random_and_mutated_bytes_never_panic");
    let seeds = [hex(SAMPLE_TOPOLOGY_HEX), hex(SAMPLE_LAYOUT_HEX)];
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
