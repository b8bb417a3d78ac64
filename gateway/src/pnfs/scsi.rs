//! SCSI layout (RFC 8154) volumes: logical-unit designators and persistent reservations.
//!
//! - [`parse_vpd83`]: a pure parser of the Device Identification VPD page (0x83, SPC-4
//!   §7.8.6), as Linux exposes it in `/sys/block/<dev>/device/vpd_pg83`, with limits.
//! - [`Designator::logical_unit`]: a designator given by the configuration (parsed there),
//!   for volumes whose VPD page is not in sysfs (device-mapper multipath devices).
//! - [`Designator::matches`]: does a `pnfs_scsi_base_volume_info4` name this logical unit?
//! - [`pr_register_ioctl`]: PERSISTENT RESERVE OUT REGISTER through Linux's `IOC_PR_REGISTER`
//!   (`linux/pr.h`) on an open block device.
//!
//! RFC 8154 §2.4 (fencing): before its first I/O to a device from GETDEVICEINFO, the client
//! registers `sbv_pr_key` with the logical unit (REGISTER AND IGNORE EXISTING KEY, as the
//! Linux client does, so a key left by an earlier run of this host is replaced); the server
//! fences a client by preempting its key. When the client stops using the device it removes
//! its registration (REGISTER with the old key and new key 0), which [`super::device`] does on
//! shutdown.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::io::AsRawFd;
use std::path::Path;

use pnfs_proto::layout::scsi::{ScsiBaseVolume, ScsiCodeSet, ScsiDesignatorType};

/// The VPD page code of the Device Identification page.
pub const VPD83_PAGE_CODE: u8 = 0x83;
/// Bytes of the page header (device type, page code, 2-byte page length).
const VPD83_HEADER_BYTES: usize = 4;
/// Bytes of a designation descriptor header.
const DESCRIPTOR_HEADER_BYTES: usize = 4;
/// Largest page: the page length field is 16 bits.
pub const VPD83_MAX_BYTES: usize = VPD83_HEADER_BYTES + 0xffff;
/// Most designation descriptors taken from one page (a real LU has a handful).
pub const VPD83_MAX_DESIGNATORS: usize = 64;

/// SPC code set values.
const CODE_SET_BINARY: u8 = 1;
const CODE_SET_ASCII: u8 = 2;
const CODE_SET_UTF8: u8 = 3;
/// SPC designator types used by RFC 8154.
const DESIGNATOR_T10: u8 = 1;
const DESIGNATOR_EUI64: u8 = 2;
const DESIGNATOR_NAA: u8 = 3;
const DESIGNATOR_NAME: u8 = 8;
/// ASSOCIATION field: the designator names the logical unit (not a port or the target).
pub const ASSOCIATION_LOGICAL_UNIT: u8 = 0;

/// Errors of this module (wrapped into [`super::PnfsError`] by callers).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScsiError {
    /// The VPD page is malformed.
    #[error("VPD page 0x83: {0}")]
    BadVpd(String),
}

/// One designation descriptor of VPD page 0x83.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Designator {
    /// CODE SET (1 binary, 2 ASCII, 3 UTF-8).
    pub code_set: u8,
    /// ASSOCIATION (0 logical unit, 1 target port, 2 target device).
    pub association: u8,
    /// DESIGNATOR TYPE (1 T10 vendor ID, 2 EUI-64, 3 NAA, 8 SCSI name string, ...).
    pub designator_type: u8,
    /// The designator bytes.
    pub bytes: Vec<u8>,
}

impl fmt::Debug for Designator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for Designator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = match self.designator_type {
            DESIGNATOR_T10 => "t10",
            DESIGNATOR_EUI64 => "eui",
            DESIGNATOR_NAA => "naa",
            DESIGNATOR_NAME => "name",
            _ => "type",
        };
        if prefix == "type" {
            write!(f, "type{}.", self.designator_type)?;
        } else {
            write!(f, "{prefix}.")?;
        }
        if self.code_set == CODE_SET_BINARY {
            for b in &self.bytes {
                write!(f, "{b:02x}")?;
            }
        } else {
            write!(f, "{}", String::from_utf8_lossy(&self.bytes))?;
        }
        if self.association != ASSOCIATION_LOGICAL_UNIT {
            write!(f, " (association {})", self.association)?;
        }
        Ok(())
    }
}

fn code_set_value(c: ScsiCodeSet) -> u8 {
    match c {
        ScsiCodeSet::Binary => CODE_SET_BINARY,
        ScsiCodeSet::Ascii => CODE_SET_ASCII,
        ScsiCodeSet::Utf8 => CODE_SET_UTF8,
    }
}

fn designator_type_value(t: ScsiDesignatorType) -> u8 {
    match t {
        ScsiDesignatorType::T10 => DESIGNATOR_T10,
        ScsiDesignatorType::Eui64 => DESIGNATOR_EUI64,
        ScsiDesignatorType::Naa => DESIGNATOR_NAA,
        ScsiDesignatorType::Name => DESIGNATOR_NAME,
    }
}

impl Designator {
    /// A logical-unit designator of `designator_type` in `code_set` (e.g. one given in the
    /// configuration for a device whose VPD page is not in sysfs).
    pub fn logical_unit(
        designator_type: ScsiDesignatorType,
        code_set: ScsiCodeSet,
        bytes: Vec<u8>,
    ) -> Self {
        Self {
            code_set: code_set_value(code_set),
            association: ASSOCIATION_LOGICAL_UNIT,
            designator_type: designator_type_value(designator_type),
            bytes,
        }
    }

    /// True when `base` (from GETDEVICEINFO) names this logical unit: a logical-unit
    /// designator of the same type, code set and bytes.
    pub fn matches(&self, base: &ScsiBaseVolume) -> bool {
        self.association == ASSOCIATION_LOGICAL_UNIT
            && self.designator_type == designator_type_value(base.designator_type)
            && self.code_set == code_set_value(base.code_set)
            && self.bytes == base.designator
    }
}

/// Parses a Device Identification VPD page (whole page with its 4-byte header). Bytes after
/// the page length are ignored; a descriptor running past it is an error.
pub fn parse_vpd83(page: &[u8]) -> Result<Vec<Designator>, ScsiError> {
    let bad = |why: String| ScsiError::BadVpd(why);
    if page.len() > VPD83_MAX_BYTES {
        return Err(bad(format!(
            "{} bytes, more than a VPD page can hold ({VPD83_MAX_BYTES})",
            page.len()
        )));
    }
    if page.len() < VPD83_HEADER_BYTES {
        return Err(bad(format!(
            "{} bytes, shorter than the header",
            page.len()
        )));
    }
    if page[1] != VPD83_PAGE_CODE {
        return Err(bad(format!("page code 0x{:02x}, expected 0x83", page[1])));
    }
    let page_len = usize::from(u16::from_be_bytes([page[2], page[3]]));
    let end = VPD83_HEADER_BYTES + page_len;
    if end > page.len() {
        return Err(bad(format!(
            "page length {page_len} but only {} bytes after the header",
            page.len() - VPD83_HEADER_BYTES
        )));
    }
    let mut out = Vec::new();
    let mut at = VPD83_HEADER_BYTES;
    while at < end {
        if out.len() >= VPD83_MAX_DESIGNATORS {
            return Err(bad(format!(
                "more than {VPD83_MAX_DESIGNATORS} designation descriptors"
            )));
        }
        if end - at < DESCRIPTOR_HEADER_BYTES {
            return Err(bad(format!(
                "descriptor {} at byte {at}: truncated header",
                out.len()
            )));
        }
        let d = &page[at..end];
        let len = usize::from(d[3]);
        if DESCRIPTOR_HEADER_BYTES + len > d.len() {
            return Err(bad(format!(
                "descriptor {} at byte {at}: length {len} runs past the page",
                out.len()
            )));
        }
        out.push(Designator {
            code_set: d[0] & 0x0f,
            association: (d[1] >> 4) & 0x03,
            designator_type: d[1] & 0x0f,
            bytes: d[DESCRIPTOR_HEADER_BYTES..DESCRIPTOR_HEADER_BYTES + len].to_vec(),
        });
        at += DESCRIPTOR_HEADER_BYTES + len;
    }
    Ok(out)
}

/// The logical-unit designators of the block device `dev` (e.g. `/dev/sdb`) from sysfs:
/// `Ok(None)` when the device has no VPD page 0x83 there (not a SCSI disk, a partition, a
/// regular file), an error when the page exists but cannot be read or parsed.
///
/// `sys_root` is `/sys` normally (tests inject a directory).
pub fn sysfs_designators(sys_root: &Path, dev: &Path) -> Result<Option<Vec<Designator>>, String> {
    use std::os::unix::fs::FileTypeExt;
    use std::os::unix::fs::MetadataExt;
    let meta = match std::fs::metadata(dev) {
        Ok(m) => m,
        Err(e) => return Err(format!("{}: {e}", dev.display())),
    };
    if !meta.file_type().is_block_device() {
        return Ok(None);
    }
    let rdev = meta.rdev();
    let (major, minor) = (libc::major(rdev), libc::minor(rdev));
    let page_path = sys_root.join(format!("dev/block/{major}:{minor}/device/vpd_pg83"));
    let page = match std::fs::read(&page_path) {
        Ok(p) => p,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", page_path.display())),
    };
    if page.is_empty() {
        return Ok(None);
    }
    parse_vpd83(&page)
        .map(Some)
        .map_err(|e| format!("{}: {e}", page_path.display()))
}

/// `struct pr_registration` of `linux/pr.h`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct PrRegistration {
    old_key: u64,
    new_key: u64,
    flags: u32,
    pad: u32,
}

/// `PR_FL_IGNORE_KEY`: REGISTER AND IGNORE EXISTING KEY.
const PR_FL_IGNORE_KEY: u32 = 1;

/// `_IOW('p', 200, struct pr_registration)`: direction write (1) in bits 30-31, the argument
/// size in bits 16-29, type 'p' in bits 8-15, number 200 in bits 0-7.
const IOC_PR_REGISTER: u64 =
    (1 << 30) | ((std::mem::size_of::<PrRegistration>() as u64) << 16) | ((b'p' as u64) << 8) | 200;
const _: () = assert!(std::mem::size_of::<PrRegistration>() == 24);

/// PERSISTENT RESERVE OUT with REGISTER (`ignore_existing` false: `old_key` must be this
/// I_T nexus's current key, 0 if unregistered) or REGISTER AND IGNORE EXISTING KEY, setting
/// the key to `new_key` (0 removes the registration). `file` must be an open block device
/// whose driver implements persistent reservations (SCSI disks, NVMe, dm-multipath).
pub fn pr_register_ioctl(
    file: &File,
    old_key: u64,
    new_key: u64,
    ignore_existing: bool,
) -> io::Result<()> {
    let reg = PrRegistration {
        old_key,
        new_key,
        flags: if ignore_existing { PR_FL_IGNORE_KEY } else { 0 },
        pad: 0,
    };
    #[allow(clippy::useless_conversion)] // the request type is c_ulong on glibc, c_int on musl
    let request = IOC_PR_REGISTER
        .try_into()
        .map_err(|_| io::Error::other("IOC_PR_REGISTER does not fit the ioctl request type"))?;
    // SAFETY: the fd is open for the whole call (borrowed from `file`); IOC_PR_REGISTER reads
    // exactly one `struct pr_registration` (24 bytes, layout checked above) from the pointer,
    // which points to a live, properly aligned local value; the kernel does not keep it.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), request, &reg as *const PrRegistration) };
    match rc {
        0 => Ok(()),
        rc if rc < 0 => Err(io::Error::last_os_error()),
        // A positive return is the SCSI status / PR status (e.g. 0x18 RESERVATION CONFLICT).
        status => Err(io::Error::other(pr_status_text(status))),
    }
}

/// A positive `IOC_PR_*` return: the device's status.
fn pr_status_text(status: i32) -> String {
    match status {
        0x18 => "RESERVATION CONFLICT".into(),
        0x02 => "CHECK CONDITION (I/O error)".into(),
        s => format!("device status 0x{s:x}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A page as LIO's tcm_loop produces it: NAA IEEE registered extended (LU), T10 vendor
    /// ID (LU), relative target port (port association), SCSI name string (port).
    fn lio_like_page() -> Vec<u8> {
        let naa: [u8; 16] = [
            0x60, 0x01, 0x40, 0x5a, 0xbc, 0xde, 0xf0, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde,
            0xf0, 0x12,
        ];
        let mut body = Vec::new();
        body.extend_from_slice(&[0x01, 0x03, 0x00, 16]);
        body.extend_from_slice(&naa);
        let t10 = b"LIO-ORG pnfs-scsi-test-1";
        body.extend_from_slice(&[0x02, 0x01, 0x00, u8::try_from(t10.len()).unwrap()]);
        body.extend_from_slice(t10);
        body.extend_from_slice(&[0x61, 0x94, 0x00, 4, 0, 0, 0, 1]);
        let name = b"naa.5001405000000001,t,0x0001\0\0\0";
        body.extend_from_slice(&[0x53, 0xa8, 0x00, u8::try_from(name.len()).unwrap()]);
        body.extend_from_slice(name);
        let mut page = vec![0x00, 0x83];
        page.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
        page.extend_from_slice(&body);
        page
    }

    fn base(t: ScsiDesignatorType, c: ScsiCodeSet, d: &[u8]) -> ScsiBaseVolume {
        ScsiBaseVolume {
            code_set: c,
            designator_type: t,
            designator: d.to_vec(),
            pr_key: 0x1234,
        }
    }

    #[test]
    fn parses_a_lio_page_and_matches_the_naa_designator() {
        let ds = parse_vpd83(&lio_like_page()).expect("parse");
        assert_eq!(ds.len(), 4);
        assert_eq!(ds[0].designator_type, DESIGNATOR_NAA);
        assert_eq!(ds[0].association, ASSOCIATION_LOGICAL_UNIT);
        assert_eq!(ds[0].code_set, CODE_SET_BINARY);
        assert_eq!(ds[0].to_string(), "naa.6001405abcdef0123456789abcdef012");
        assert_eq!(ds[1].to_string(), "t10.LIO-ORG pnfs-scsi-test-1");
        assert_eq!(ds[2].association, 1);
        assert_eq!(ds[3].designator_type, DESIGNATOR_NAME);
        let b = base(ScsiDesignatorType::Naa, ScsiCodeSet::Binary, &ds[0].bytes);
        assert!(ds[0].matches(&b));
        assert!(!ds[1].matches(&b));
        // Same bytes, other code set or type: no match.
        assert!(!ds[0].matches(&base(
            ScsiDesignatorType::Eui64,
            ScsiCodeSet::Binary,
            &ds[0].bytes
        )));
        assert!(!ds[0].matches(&base(
            ScsiDesignatorType::Naa,
            ScsiCodeSet::Ascii,
            &ds[0].bytes
        )));
        // A port designator never names the logical unit.
        let port = &ds[2];
        assert!(!port.matches(&base(
            ScsiDesignatorType::Naa,
            ScsiCodeSet::Binary,
            &port.bytes
        )));
        // A configured designator with the same bytes is the same designator.
        let cfg = Designator::logical_unit(
            ScsiDesignatorType::Naa,
            ScsiCodeSet::Binary,
            ds[0].bytes.clone(),
        );
        assert_eq!(cfg, ds[0]);
    }

    #[test]
    fn malformed_pages_are_errors_not_panics() {
        let page = lio_like_page();
        assert!(parse_vpd83(&page[..3]).is_err(), "short header");
        let mut wrong = page.clone();
        wrong[1] = 0x80;
        assert!(parse_vpd83(&wrong)
            .unwrap_err()
            .to_string()
            .contains("0x80"));
        // Page length beyond the data.
        assert!(parse_vpd83(&page[..page.len() - 1]).is_err());
        // A descriptor whose length runs past the page.
        let mut over = vec![0x00, 0x83, 0x00, 0x06, 0x01, 0x03, 0x00, 0x10, 0xaa, 0xbb];
        assert!(parse_vpd83(&over)
            .unwrap_err()
            .to_string()
            .contains("past the page"));
        over[3] = 0x03; // a 3-byte tail: truncated descriptor header
        assert!(parse_vpd83(&over[..7])
            .unwrap_err()
            .to_string()
            .contains("truncated"));
        // Too many descriptors.
        let mut many = vec![0x00, 0x83];
        let n = VPD83_MAX_DESIGNATORS + 1;
        many.extend_from_slice(&u16::try_from(n * 4).unwrap().to_be_bytes());
        for _ in 0..n {
            many.extend_from_slice(&[0x01, 0x03, 0x00, 0x00]);
        }
        assert!(parse_vpd83(&many)
            .unwrap_err()
            .to_string()
            .contains("more than"));
        // An empty page is valid (no designators); trailing bytes are ignored.
        assert_eq!(parse_vpd83(&[0, 0x83, 0, 0, 9, 9]).unwrap(), vec![]);
        assert!(parse_vpd83(&vec![0; VPD83_MAX_BYTES + 1]).is_err());
    }

    #[test]
    fn every_truncation_of_a_page_is_handled() {
        let page = lio_like_page();
        for cut in 0..page.len() {
            let _ = parse_vpd83(&page[..cut]);
        }
        // Random bytes: never a panic (seeded, printed on failure by the index).
        let mut x: u64 = 0x005e_ed83;
        for round in 0..2000 {
            let len = usize::try_from(x % 80).unwrap();
            let mut p = vec![0u8; len];
            for b in &mut p {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x.to_le_bytes()[0];
            }
            if len > 1 {
                p[1] = VPD83_PAGE_CODE;
            }
            let r = std::panic::catch_unwind(|| parse_vpd83(&p));
            assert!(r.is_ok(), "panic at round {round} on {p:02x?}");
        }
    }

    #[test]
    fn configured_designators_match_by_type_and_code_set() {
        let eui = [0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77];
        let d =
            Designator::logical_unit(ScsiDesignatorType::Eui64, ScsiCodeSet::Binary, eui.to_vec());
        assert_eq!(d.to_string(), "eui.0011223344556677");
        assert!(d.matches(&base(ScsiDesignatorType::Eui64, ScsiCodeSet::Binary, &eui)));
        assert!(!d.matches(&base(ScsiDesignatorType::Naa, ScsiCodeSet::Binary, &eui)));
        let t = Designator::logical_unit(
            ScsiDesignatorType::T10,
            ScsiCodeSet::Ascii,
            b"LIO-ORG x".to_vec(),
        );
        assert_eq!(t.to_string(), "t10.LIO-ORG x");
        assert!(t.matches(&base(
            ScsiDesignatorType::T10,
            ScsiCodeSet::Ascii,
            b"LIO-ORG x"
        )));
    }

    #[test]
    fn sysfs_lookup_on_a_regular_file_is_none() {
        let dir = std::env::temp_dir().join(format!("pnfs-scsi-sysfs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("img");
        std::fs::write(&f, b"x").unwrap();
        assert_eq!(sysfs_designators(&dir, &f).unwrap(), None);
        assert!(sysfs_designators(&dir, &dir.join("missing")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn pr_register_on_a_regular_file_fails_clearly() {
        let dir = std::env::temp_dir().join(format!("pnfs-scsi-pr-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("img");
        std::fs::write(&p, b"x").unwrap();
        let f = File::open(&p).unwrap();
        let e = pr_register_ioctl(&f, 0, 0x1234, true).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOTTY), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
