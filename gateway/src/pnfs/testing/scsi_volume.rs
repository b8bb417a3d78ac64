//! A volume layer that behaves like one path to a SCSI logical unit under a server's
//! "exclusive access, registrants only" persistent reservation: it has designators, records
//! every PERSISTENT RESERVE OUT REGISTER, and refuses reads and writes (like RESERVATION
//! CONFLICT) while its path holds no key. For host tests of the SCSI layout logic with the
//! MDS test double; the guest test runs the same code against LIO and Linux nfsd.

use crate::sync::LockExt;
use std::io;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::mds_api::BoxFuture;
use crate::pnfs::scsi::Designator;
use crate::pnfs::volume::VolumeIo;

/// One PERSISTENT RESERVE OUT REGISTER seen by a [`ReservedScsiVolume`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrCall {
    /// RESERVATION KEY (the current key; ignored with `ignore_existing`).
    pub old_key: u64,
    /// SERVICE ACTION RESERVATION KEY (0 unregisters).
    pub new_key: u64,
    /// REGISTER AND IGNORE EXISTING KEY.
    pub ignore_existing: bool,
}

#[derive(Debug, Default)]
struct PrState {
    key: u64,
    calls: Vec<PrCall>,
    refuse_register: bool,
    refused_io: u64,
    /// No reservation on the LU (the server uses block layouts): I/O needs no key.
    unreserved: bool,
}

/// See the module docs.
#[derive(Debug)]
pub struct ReservedScsiVolume {
    inner: Arc<dyn VolumeIo>,
    designators: Vec<Designator>,
    pr: Arc<Mutex<PrState>>,
}

fn conflict(name: &str) -> io::Error {
    io::Error::other(format!(
        "{name}: RESERVATION CONFLICT (this path holds no key)"
    ))
}

impl ReservedScsiVolume {
    /// Wraps `inner` as a logical unit with `designators`, no key registered.
    pub fn new(inner: Arc<dyn VolumeIo>, designators: Vec<Designator>) -> Self {
        Self {
            inner,
            designators,
            pr: Arc::new(Mutex::new(PrState::default())),
        }
    }

    fn st(&self) -> std::sync::MutexGuard<'_, PrState> {
        self.pr.lock_unpoisoned()
    }

    /// The key this path holds now (0: none).
    pub fn registered_key(&self) -> u64 {
        self.st().key
    }

    /// Every REGISTER call so far.
    pub fn pr_calls(&self) -> Vec<PrCall> {
        self.st().calls.clone()
    }

    /// Reads and writes refused because no key was registered.
    pub fn refused_io(&self) -> u64 {
        self.st().refused_io
    }

    /// Makes later REGISTER calls fail (a device without PR support, a rejected key).
    pub fn refuse_register(&self, refuse: bool) {
        self.st().refuse_register = refuse;
    }

    /// Lifts (or puts back) the server's reservation: without it, I/O needs no key.
    pub fn set_reserved(&self, reserved: bool) {
        self.st().unreserved = !reserved;
    }

    /// The server fences this path: its key is removed (PREEMPT AND ABORT by the server).
    pub fn preempt(&self) {
        self.st().key = 0;
    }

    fn allowed(&self) -> bool {
        let mut st = self.st();
        if st.key == 0 && !st.unreserved {
            st.refused_io += 1;
            return false;
        }
        true
    }
}

impl VolumeIo for ReservedScsiVolume {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn size_bytes(&self) -> u64 {
        self.inner.size_bytes()
    }

    fn read(&self, offset_bytes: u64, length_bytes: usize) -> BoxFuture<io::Result<Vec<u8>>> {
        if !self.allowed() {
            let e = conflict(self.name());
            return Box::pin(async move { Err(e) });
        }
        self.inner.read(offset_bytes, length_bytes)
    }

    fn write(&self, offset_bytes: u64, data: Bytes) -> BoxFuture<io::Result<()>> {
        if !self.allowed() {
            let e = conflict(self.name());
            return Box::pin(async move { Err(e) });
        }
        self.inner.write(offset_bytes, data)
    }

    fn sync(&self) -> BoxFuture<io::Result<()>> {
        self.inner.sync()
    }

    fn scsi_designators(&self) -> &[Designator] {
        &self.designators
    }

    fn pr_register(
        &self,
        old_key: u64,
        new_key: u64,
        ignore_existing: bool,
    ) -> BoxFuture<io::Result<()>> {
        let name = self.name().to_string();
        let r = {
            let mut st = self.st();
            st.calls.push(PrCall {
                old_key,
                new_key,
                ignore_existing,
            });
            if st.refuse_register {
                Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("{name}: PR REGISTER refused (test)"),
                ))
            } else if !ignore_existing && old_key != st.key {
                // SPC: REGISTER with a reservation key other than the registered one.
                Err(conflict(&name))
            } else {
                st.key = new_key;
                Ok(())
            }
        };
        Box::pin(async move { r })
    }
}
