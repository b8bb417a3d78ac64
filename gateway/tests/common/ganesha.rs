//! nfs-ganesha for the gateway's host tests: the testbed's [`pnfs_testbed::Ganesha`] with an
//! export directory of its own. Needs `ganesha.nfsd` (nfs-ganesha + nfs-ganesha-vfs) and root
//! (the VFS FSAL uses open_by_handle_at); missing either is a test failure, never a skip.

use std::path::Path;

use pnfs_testbed::util::TempDir;
use pnfs_testbed::{Ganesha, GaneshaOptions};

/// One ganesha and the directory it exports (NFS path `export/`).
pub struct ExportedGanesha {
    // Declared first: dropped (stopped) before its export directory goes.
    server: Ganesha,
    export: TempDir,
}

impl ExportedGanesha {
    /// Starts one with `options` on a fresh export directory.
    pub fn start(options: GaneshaOptions) -> Self {
        let export = TempDir::new("ganesha-export").expect("export directory");
        let server = Ganesha::start_with(export.path(), options).expect("start ganesha");
        Self { server, export }
    }

    /// SIGKILL and start again on the same port and recovery records.
    pub fn restart(&mut self) {
        self.server.restart().expect("restart ganesha");
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> String {
        self.server.addr().to_string()
    }

    /// The exported directory on this host.
    pub fn export(&self) -> &Path {
        self.export.path()
    }
}
