//! Tests of the file system as a whole.

use super::data::Durability;
use super::inode::{Kind, ROOT_ID};
use super::layout::{read_layout_end, LayoutPiece};
use super::namespace::SetAttrs;
use super::store::Fs;
use super::testing::mkfs;
use super::truncate::Grant;
use crate::volume::{LabelAt, LogicalVolume, SimpleVolume, Topology};

/// The store refuses another topology or volume set (its block maps would point at the
/// wrong bytes) and names both layouts; the same volumes given in another order, with
/// the topology following them, are the same layout.
#[test]
fn store_refuses_a_different_volume_layout() {
    let d = crate::volume::tests::tempdir();
    let vol = |name: &str| {
        let p = d.join(name);
        if !p.exists() {
            std::fs::File::create(&p)
                .unwrap()
                .set_len(16 << 20)
                .unwrap();
        }
        SimpleVolume::open(p, LabelAt::Start).unwrap()
    };
    let open = |vols: Vec<SimpleVolume>, t: Topology| {
        let lv = LogicalVolume::new(vols, t).unwrap();
        Fs::open(&d.join("state"), lv, 4096)
    };
    let simple = |volume| Topology::Simple { volume };
    drop(open(vec![vol("a")], simple(0)).expect("create on a"));
    let concat = Topology::Concat {
        children: vec![simple(0), simple(1)],
    };
    let err = open(vec![vol("a"), vol("b")], concat)
        .expect_err("a concat over a and b is another layout")
        .to_string();
    assert!(
        err.contains("volume layout simple(") && err.contains("make concat(simple("),
        "{err}"
    );
    let err = open(vec![vol("b")], simple(0))
        .expect_err("another volume is another layout")
        .to_string();
    assert!(err.contains("volume layout"), "{err}");
    drop(open(vec![vol("b"), vol("a")], simple(1)).expect("a, listed second"));
    drop(open(vec![vol("a")], simple(0)).expect("the original layout"));
}

#[test]
fn write_read_truncate_and_reopen() {
    let d = crate::volume::tests::tempdir();
    let mut fs = mkfs(&d, 65536);
    let free0 = fs.free_bytes();
    assert_eq!(free0, (16 << 20) - 65536);
    let (f, _, _) = fs
        .create(ROOT_ID, "a", Kind::File, 0, 0, &SetAttrs::default())
        .unwrap();
    fs.write(f, 100, b"hello", Durability::Stable).unwrap();
    fs.write(f, 70000, b"world", Durability::Stable).unwrap();
    let (data, eof) = fs.read(f, 0, 100_000).unwrap();
    assert!(eof);
    assert_eq!(data.len(), 70005);
    assert_eq!(&data[100..105], b"hello");
    assert_eq!(&data[..100], &[0u8; 100][..]);
    assert_eq!(&data[70000..], b"world");
    assert_eq!(fs.free_bytes(), free0 - 2 * 65536);
    fs.setattr(
        f,
        &SetAttrs {
            size: Some(102),
            ..Default::default()
        },
    )
    .unwrap();
    fs.check().unwrap();
    assert_eq!(fs.free_bytes(), free0 - 65536);
    fs.setattr(
        f,
        &SetAttrs {
            size: Some(8000),
            ..Default::default()
        },
    )
    .unwrap();
    let (data, _) = fs.read(f, 0, 8000).unwrap();
    assert_eq!(&data[100..102], b"he");
    assert!(data[102..].iter().all(|&b| b == 0), "tail must read zeros");
    drop(fs);
    let mut fs = mkfs(&d, 65536);
    assert_eq!(fs.epoch, 2);
    assert_eq!(fs.free_bytes(), free0 - 65536);
    let f2 = fs.lookup(ROOT_ID, "a").unwrap();
    assert_eq!(f2, f);
    assert_eq!(&fs.read(f, 100, 2).unwrap().0, b"he");
    fs.remove(ROOT_ID, "a").unwrap();
    assert_eq!(fs.free_bytes(), free0);
    fs.check().unwrap();
}

#[test]
fn layouts_allocate_invalid_and_commit_marks_written() {
    let d = crate::volume::tests::tempdir();
    let mut fs = mkfs(&d, 4096);
    let (f, _, _) = fs
        .create(ROOT_ID, "a", Kind::File, 0, 0, &SetAttrs::default())
        .unwrap();
    let r = fs.layout(f, 0, 16384, false).unwrap();
    assert_eq!(
        r,
        vec![LayoutPiece {
            file_off: 0,
            len: 16384,
            vol_off: 0,
            es: 3
        }]
    );
    let w = fs.layout(f, 0, 16384, true).unwrap();
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].es, 2);
    let v = w[0].vol_off;
    fs.vol.write(v + 4096, b"xyz").unwrap();
    // A commit for the wrong volume offset changes nothing (0 means "not given", as Linux sends).
    fs.layout_commit(f, &[(4096, 4096, v + 8192)], Some(4098), None, &[])
        .unwrap();
    assert_eq!(fs.read(f, 4096, 3).unwrap().0, vec![0, 0, 0]);
    fs.layout_commit(f, &[(4096, 4096, v + 4096)], Some(4098), None, &[])
        .unwrap();
    assert_eq!(fs.get(f).unwrap().size, 4099);
    assert_eq!(fs.read(f, 4096, 3).unwrap().0, b"xyz");
    let w = fs.layout(f, 0, 16384, true).unwrap();
    assert_eq!(w.iter().map(|p| p.es).collect::<Vec<_>>(), vec![2, 0, 2]);
    fs.check().unwrap();
}

#[test]
fn clone_gives_copy_on_write_layouts() {
    let d = crate::volume::tests::tempdir();
    let mut fs = mkfs(&d, 4096);
    let (a, _, _) = fs
        .create(ROOT_ID, "a", Kind::File, 0, 0, &SetAttrs::default())
        .unwrap();
    let (b, _, _) = fs
        .create(ROOT_ID, "b", Kind::File, 0, 0, &SetAttrs::default())
        .unwrap();
    fs.write(a, 0, &[7u8; 8192], Durability::Stable).unwrap();
    fs.clone_file(a, b).unwrap();
    fs.check().unwrap();
    let w = fs.layout(b, 0, 8192, true).unwrap();
    assert_eq!(w.iter().map(|p| p.es).collect::<Vec<_>>(), vec![1, 2]);
    let newv = w[1].vol_off;
    fs.vol.write(newv, &[9u8; 8192]).unwrap();
    fs.layout_commit(b, &[(0, 8192, newv)], None, None, &[])
        .unwrap();
    assert_eq!(fs.read(b, 0, 1).unwrap().0, vec![9]);
    assert_eq!(fs.read(a, 0, 1).unwrap().0, vec![7]);
    fs.check().unwrap();
    fs.write(a, 0, &[1], Durability::Stable).unwrap();
    fs.remove(ROOT_ID, "a").unwrap();
    fs.remove(ROOT_ID, "b").unwrap();
    assert_eq!(fs.free_bytes(), (16 << 20) - 4096);
}

/// A LAYOUTCOMMIT that arrives after a truncation, for writes made with a layout granted
/// before it, must neither grow the file back nor bring the old bytes back; a commit for a
/// layout granted after the truncation extends the file as usual.
#[test]
fn late_layoutcommit_after_truncate_does_not_grow_the_file_back() {
    for bs in [4096u64, 65536] {
        let d = crate::volume::tests::tempdir();
        let mut fs = mkfs(&d, bs);
        let (f, _, _) = fs
            .create(ROOT_ID, "a", Kind::File, 0, 0, &SetAttrs::default())
            .unwrap();
        let old = Grant {
            off: 0,
            end: 131072,
            gen: fs.cut_gen(),
        };
        let w = fs.layout(f, 0, 131072, true).unwrap();
        assert!(w.iter().all(|p| p.es == 2), "{w:?}");
        // The client writes 128 KiB of 0xaa straight to the volume.
        for p in &w {
            let fill = vec![0xaa; usize::try_from(p.len).unwrap()];
            fs.vol.write(p.vol_off, &fill).unwrap();
        }
        let trunc = |fs: &mut Fs, size| {
            let a = SetAttrs {
                size: Some(size),
                ..Default::default()
            };
            fs.setattr(f, &a).unwrap();
        };
        // A first commit of it, then the client writes the range again and truncates
        // before its second commit.
        let grew = fs
            .layout_commit(f, &[(0, 131072, 0)], Some(131071), None, &[old])
            .unwrap();
        assert_eq!(grew, Some(131072));
        trunc(&mut fs, 5000);
        // The late commit of the whole write, with the pre-truncation layout.
        let grew = fs
            .layout_commit(f, &[(0, 131072, 0)], Some(131071), None, &[old])
            .unwrap();
        assert_eq!(grew, None, "bs {bs}: a late commit grew the file");
        assert_eq!(fs.get(f).unwrap().size, 5000, "bs {bs}");
        // Growing the file by truncation shows zeros past the cut, never the old bytes.
        trunc(&mut fs, 131072);
        let (data, _) = fs.read(f, 0, 131072).unwrap();
        assert!(
            data[5000..].iter().all(|&b| b == 0),
            "bs {bs}: old bytes past the truncation came back"
        );
        fs.check().unwrap();
        // A layout granted after the truncation commits and extends normally.
        trunc(&mut fs, 5000);
        let new = Grant {
            off: 0,
            end: 262144,
            gen: fs.cut_gen(),
        };
        let w = fs.layout(f, 131072, 131072, true).unwrap();
        for p in w.iter().filter(|p| p.es == 2) {
            let fill = vec![0xbb; usize::try_from(p.len).unwrap()];
            fs.vol.write(p.vol_off, &fill).unwrap();
        }
        let grew = fs
            .layout_commit(f, &[(131072, 131072, 0)], Some(262143), None, &[new])
            .unwrap();
        assert_eq!(grew, Some(262144), "bs {bs}");
        assert_eq!(fs.read(f, 262143, 1).unwrap().0, vec![0xbb], "bs {bs}");
        assert!(fs.read(f, 5000, 126072).unwrap().0.iter().all(|&b| b == 0));
        // The same late commit once more: still fenced below the first truncation.
        let grew = fs
            .layout_commit(f, &[(0, 131072, 0)], Some(131071), None, &[old])
            .unwrap();
        assert_eq!(grew, None);
        assert!(fs.read(f, 5000, 126072).unwrap().0.iter().all(|&b| b == 0));
        fs.check().unwrap();
    }
}

#[test]
fn read_layouts_past_eof_cover_the_whole_request() {
    let mib = 1u64 << 20;
    // Asked 1 MiB at 4 MiB of a 1 MiB file: the whole MiB (one NONE extent), not one block.
    assert_eq!(
        read_layout_end(4 * mib, 5 * mib, mib, 4096, 1 << 30),
        5 * mib
    );
    assert_eq!(
        read_layout_end(4 * mib, 5 * mib - 1, mib, 65536, 1 << 30),
        5 * mib
    );
    // Bounded.
    assert_eq!(
        read_layout_end(0, u64::MAX - 1, mib, 4096, 1 << 30),
        1 << 30
    );
    // Open-ended: to the end of the last block, at least one block.
    assert_eq!(read_layout_end(0, u64::MAX, 5000, 4096, 1 << 30), 8192);
    assert_eq!(
        read_layout_end(mib, u64::MAX, 5000, 4096, 1 << 30),
        mib + 4096
    );
    let d = crate::volume::tests::tempdir();
    let mut fs = mkfs(&d, 4096);
    let (f, _, _) = fs
        .create(ROOT_ID, "a", Kind::File, 0, 0, &SetAttrs::default())
        .unwrap();
    fs.write(f, 0, &[1u8; 5000], Durability::Stable).unwrap();
    let p = fs.layout(f, 4096, 4 * mib, false).unwrap();
    assert_eq!(p.len(), 2, "{p:?}");
    assert_eq!(
        (p[1].file_off, p[1].len, p[1].es),
        (8192, 4 * mib - 4096, 3)
    );
}

/// At a 64 KiB block size a client commits single 4 KiB pages: the rest of the newly
/// allocated block reads as zeros (whatever the volume held there before), through the MDS
/// and in READ layouts (NONE_DATA), and stays INVALID in RW layouts.
#[test]
fn partial_commit_of_a_64k_block_leaves_the_rest_zero() {
    let d = crate::volume::tests::tempdir();
    let mut fs = mkfs(&d, 65536);
    let (f, _, _) = fs
        .create(ROOT_ID, "a", Kind::File, 0, 0, &SetAttrs::default())
        .unwrap();
    let w = fs.layout(f, 0, 65536, true).unwrap();
    assert_eq!((w.len(), w[0].len, w[0].es), (1, 65536, 2), "{w:?}");
    let v = w[0].vol_off;
    // Old bytes on the volume everywhere, then the client's one page at 4096.
    fs.vol.write(v, &[0xee; 65536]).unwrap();
    fs.vol.write(v + 4096, &[7; 4096]).unwrap();
    let grant = Grant {
        off: 0,
        end: 65536,
        gen: fs.cut_gen(),
    };
    fs.layout_commit(f, &[(4096, 4096, 0)], Some(65535), None, &[grant])
        .unwrap();
    let (data, _) = fs.read(f, 0, 65536).unwrap();
    assert!(data[..4096].iter().all(|&b| b == 0));
    assert!(data[4096..8192].iter().all(|&b| b == 7));
    assert!(data[8192..].iter().all(|&b| b == 0));
    // (INVALID pieces of a READ layout go out as NONE_DATA: nfs.rs maps them.)
    let r = fs.layout(f, 0, 65536, false).unwrap();
    let es: Vec<_> = r.iter().map(|p| (p.file_off, p.len, p.es)).collect();
    assert_eq!(es, vec![(0, 4096, 2), (4096, 4096, 1), (8192, 57344, 2)]);
    let w = fs.layout(f, 0, 65536, true).unwrap();
    let es: Vec<_> = w.iter().map(|p| (p.file_off, p.len, p.es)).collect();
    assert_eq!(es, vec![(0, 4096, 2), (4096, 4096, 0), (8192, 57344, 2)]);
    fs.check().unwrap();
}
