//! `[mds] layout` and `[[volumes.designator]]` (SCSI layouts, RFC 8154): values and the exact
//! FILE:LINE:COL of every rejection.

use std::path::{Path, PathBuf};

use pnfs_config::{
    parse_str, Config, ConfigError, ConfigErrorKind, DesignatorKind, HostIdentity, LayoutChoice,
    ScsiDesignator,
};

const DEVICE: &str = "[[device]]\nname = \"d\"\npath = \"/f\"\nfrontends = [\"ublk\"]\n";

/// A fixed host identity, so that the defaults derived from it are known.
fn host() -> HostIdentity {
    HostIdentity {
        machine_name: "host1".into(),
        machine_id: "0123456789abcdef0123456789abcdef".into(),
    }
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    parse_str(Path::new("/etc/pnfsgw/gw.toml"), text, &host())
}

fn err(text: &str, kind: ConfigErrorKind) -> String {
    let e = parse(text).expect_err("must be rejected");
    assert_eq!(e.kind, kind, "{e}");
    e.to_string()
}

fn head(mds_extra: &str) -> String {
    format!("[mds]\naddresses = [\"127.0.0.1:2049\"]\n{mds_extra}")
}

#[test]
fn layout_defaults_to_block_and_accepts_scsi() {
    let c = parse(&format!("{}{DEVICE}", head(""))).unwrap();
    assert_eq!(c.mds.layout, LayoutChoice::Block);
    assert!(c.volumes.designators.is_empty());
    let c = parse(&format!("{}{DEVICE}", head("layout = \"scsi\"\n"))).unwrap();
    assert_eq!(c.mds.layout, LayoutChoice::Scsi);
    assert_eq!(c.mds.layout.to_string(), "scsi");
}

#[test]
fn unknown_layout_names_its_place() {
    let e = err(
        &format!("{}{DEVICE}", head("layout = \"files\"\n")),
        ConfigErrorKind::Invalid,
    );
    assert!(
        e.starts_with("/etc/pnfsgw/gw.toml:3:10: unknown layout \"files\""),
        "{e}"
    );
}

#[test]
fn designators_parse_into_kind_and_bytes() {
    let text = format!(
        "{}[volumes]\nsearch = [\"/dev/mapper/mpath*\"]\n\
         [[volumes.designator]]\npath = \"/dev/mapper/mpatha\"\nid = \"naa.6001405ABCDEF0123456789abcdef012\"\n\
         [[volumes.designator]]\npath = \"/dev/mapper/mpathb\"\nid = \"eui.0x0011223344556677\"\n{DEVICE}",
        head("")
    );
    let c = parse(&text).unwrap();
    let d = &c.volumes.designators;
    assert_eq!(d.len(), 2);
    assert_eq!(d[0].path, PathBuf::from("/dev/mapper/mpatha"));
    assert_eq!(d[0].designator.kind, DesignatorKind::Naa);
    assert_eq!(d[0].designator.bytes.len(), 16);
    assert_eq!(&d[0].designator.bytes[..4], &[0x60, 0x01, 0x40, 0x5a]);
    assert_eq!(d[1].designator.kind, DesignatorKind::Eui64);
    assert_eq!(
        d[1].designator.bytes,
        [0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77]
    );
}

#[test]
fn bad_designators_name_their_place() {
    let table = |path: &str, id: &str| {
        format!(
            "{}[volumes]\n[[volumes.designator]]\npath = \"{path}\"\nid = \"{id}\"\n{DEVICE}",
            head("")
        )
    };
    let e = err(&table("/dev/sdb", "naa.0011"), ConfigErrorKind::Invalid);
    assert!(
        e.starts_with("/etc/pnfsgw/gw.toml:6:6: designator \"naa.0011\": an NAA designator has 8 or 16 bytes, not 2"),
        "{e}"
    );
    let e = err(
        &table("dev/sdb", "naa.0011223344556677"),
        ConfigErrorKind::Invalid,
    );
    assert!(
        e.starts_with("/etc/pnfsgw/gw.toml:5:8: volume designator path"),
        "{e}"
    );
    let e = err(
        &table("/dev/sdb", "wwn.0011223344556677"),
        ConfigErrorKind::Invalid,
    );
    assert!(e.contains("unknown designator kind \"wwn\""), "{e}");
    let twice = format!(
        "{}[volumes]\n[[volumes.designator]]\npath = \"/dev/sdb\"\nid = \"naa.0011223344556677\"\n\
         [[volumes.designator]]\npath = \"/dev/sdb\"\nid = \"naa.0011223344556678\"\n{DEVICE}",
        head("")
    );
    let e = err(&twice, ConfigErrorKind::Invalid);
    assert!(
        e.starts_with("/etc/pnfsgw/gw.toml:8:8: volume \"/dev/sdb\" has a designator already"),
        "{e}"
    );
    let unknown = format!(
        "{}[volumes]\n[[volumes.designator]]\npath = \"/dev/sdb\"\nid = \"naa.0011223344556677\"\nkey = 1\n{DEVICE}",
        head("")
    );
    let e = err(&unknown, ConfigErrorKind::Syntax);
    assert!(e.starts_with("/etc/pnfsgw/gw.toml:7:1:"), "{e}");
    assert!(e.contains("key"), "{e}");
}

#[test]
fn designator_text_forms() {
    let t = ScsiDesignator::parse("t10.LIO-ORG FILEIO:x").unwrap();
    assert_eq!(t.kind, DesignatorKind::T10);
    assert_eq!(t.bytes, b"LIO-ORG FILEIO:x");
    let n = ScsiDesignator::parse("name.iqn.2003-01.org.x:lun0").unwrap();
    assert_eq!(n.kind, DesignatorKind::Name);
    for bad in [
        "naa",
        "naa.",
        "naa.123",
        "naa.zz11223344556677",
        "eui.0011",
        "t10.",
        "t10.\u{1}",
        "name.",
    ] {
        assert!(ScsiDesignator::parse(bad).is_err(), "{bad} accepted");
    }
    assert!(ScsiDesignator::parse(&format!("name.{}", "x".repeat(300))).is_err());
    assert!(ScsiDesignator::parse(&format!("naa.{}", "0".repeat(700))).is_err());
}
