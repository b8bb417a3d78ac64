//! The fuzz targets' seed inputs (`fuzz/seeds/<target>/`) as ordinary regression tests: each
//! seed is checked with the same property as its fuzz target (whatever decodes re-encodes to
//! the same value), so an input the fuzzer once crashed on keeps failing the normal suite if
//! the bug comes back, without cargo-fuzz or a nightly toolchain.

use std::path::{Path, PathBuf};

use pnfs_proto::nfs4::cb::{CbCompoundArgs, CbCompoundRes};
use pnfs_proto::nfs4::{CompoundArgs, CompoundRes};
use pnfs_proto::xdr::{from_bytes, to_bytes, XdrDecode, XdrEncode};

fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/seeds")
        .join(target);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("seed dir entry").path())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, bytes)
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no seeds in {}", dir.display());
    out
}

/// Decodes `bytes` as `T`; if that works, re-encoding must decode to the same value.
fn reencodes_stably<T: XdrDecode + XdrEncode + PartialEq + std::fmt::Debug>(
    path: &Path,
    bytes: &[u8],
) {
    if let Ok(v) = from_bytes::<T>(bytes) {
        let again = from_bytes::<T>(&to_bytes(&v));
        assert_eq!(
            again.as_ref(),
            Ok(&v),
            "{}: re-encoding changed the value",
            path.display()
        );
    }
}

#[test]
fn compound_args_seeds_reencode_stably() {
    for (path, bytes) in seeds("compound_args") {
        reencodes_stably::<CompoundArgs>(&path, &bytes);
        reencodes_stably::<CompoundRes>(&path, &bytes);
    }
}

#[test]
fn cb_seeds_reencode_stably() {
    for target in ["cb_args", "cb_results"] {
        for (path, bytes) in seeds(target) {
            reencodes_stably::<CbCompoundArgs>(&path, &bytes);
            reencodes_stably::<CbCompoundRes>(&path, &bytes);
        }
    }
}

/// The fuzz finding itself: a BACKCHANNEL_CTL whose AUTH_SYS machine name is 255 bytes that
/// are not UTF-8. It must decode (the name is informational) and keep its length.
#[test]
fn non_utf8_machine_name_keeps_its_length() {
    let (path, bytes) = seeds("compound_args")
        .into_iter()
        .find(|(p, _)| p.ends_with("authsys-machinename-non-utf8.bin"))
        .expect("the regression seed is in fuzz/seeds/compound_args");
    let args =
        from_bytes::<CompoundArgs>(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let again = from_bytes::<CompoundArgs>(&to_bytes(&args)).expect("re-encoded args decode");
    assert_eq!(again, args);
}
