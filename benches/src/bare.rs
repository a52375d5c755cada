//! The io_uring floor: the same READ(10)/READ(16) commands sgmap's
//! [`BsgRing`](sgmap::BsgRing) sends, written straight into
//! `IORING_OP_URING_CMD` entries with the `io-uring` crate and sgmap-sys's
//! [`bsg_uring_cmd`], with registered buffers and the same ring flags, and
//! none of sgmap's types on the path: no slots, tickets, payloads or
//! outcomes, only a status check per completion. What sgmap's ring costs on
//! top is its ratio to this.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use io_uring::{cqueue, opcode, squeue, types, IoUring};
use sgmap::{DirectBuf, Error};
use sgmap_sys::bsg::{BsgScsiStatus, BSG_PROTOCOL_SCSI, BSG_SUB_PROTOCOL_SCSI_CMD};
use sgmap_sys::bsg_uring_cmd;

use crate::{invalid, CpuTime, Cycle, ModeCounts, Sample};

const SENSE: usize = 32;

/// The bsg node of an sg node, from sysfs (`/sys/dev/char/M:m/device/bsg/`),
/// or `path` itself when it is already one.
fn bsg_of(path: &Path) -> Result<PathBuf, Error> {
    let open_err = |source: std::io::Error, hint: &'static str| Error::Open {
        path: path.to_path_buf(),
        source,
        hint,
    };
    let meta = std::fs::metadata(path)
        .map_err(|e| open_err(e, "give the sg node of a SCSI device, e.g. /dev/sg0"))?;
    if !meta.file_type().is_char_device() {
        return Err(invalid(
            path,
            "bare io_uring setup",
            "not a character device: give an sg or bsg node".into(),
        ));
    }
    let (maj, min) = (libc::major(meta.rdev()), libc::minor(meta.rdev()));
    let sys = PathBuf::from(format!("/sys/dev/char/{maj}:{min}"));
    if sys.join("device").exists() {
        let dir = sys.join("device/bsg");
        if let Some(e) = std::fs::read_dir(&dir)
            .ok()
            .and_then(|d| d.flatten().next())
        {
            return Ok(Path::new("/dev/bsg").join(e.file_name()));
        }
        return Err(invalid(
            path,
            "bare io_uring setup",
            format!("{} lists no bsg node (is bsg built in?)", dir.display()),
        ));
    }
    Ok(path.to_path_buf())
}

/// A bare io_uring read loop on one device's bsg node: `depth` registered
/// buffers of `len` bytes, READ(10) (READ(16) past LBA 2^32) in 128-byte
/// entries, completions checked for GOOD status and no residual.
pub struct BareRing {
    ring: IoUring<squeue::Entry128, cqueue::Entry32>,
    file: File,
    node: PathBuf,
    bufs: Vec<DirectBuf>,
    cdbs: Box<[[u8; 16]]>,
    sense: Box<[[u8; SENSE]]>,
    block: usize,
    depth: usize,
    /// Commands handed to the kernel and not yet reaped.
    in_flight: usize,
}

impl std::fmt::Debug for BareRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BareRing")
            .field("node", &self.node)
            .field("depth", &self.depth)
            .field("in_flight", &self.in_flight)
            .finish_non_exhaustive()
    }
}

impl BareRing {
    /// Opens the bsg node of `path` with a ring of `depth` and registers
    /// `depth` buffers of `len` bytes (a whole number of `block`-byte blocks).
    /// Fails on kernels without io_uring passthrough on bsg (before 7.1):
    /// the first command is refused.
    pub fn open(path: &Path, block: usize, len: usize, depth: usize) -> Result<BareRing, Error> {
        let node = bsg_of(path)?;
        if depth == 0 || depth > 4096 || block == 0 || len == 0 || len % block != 0 {
            return Err(invalid(
                path,
                "bare io_uring setup",
                format!("depth {depth} and {len}-byte transfers of {block}-byte blocks: use depth 1 to 4096 and whole blocks"),
            ));
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&node)
            .map_err(|source| Error::Open {
                path: node.clone(),
                source,
                hint: "bsg nodes are root-only: run as root",
            })?;
        let ring = IoUring::<squeue::Entry128, cqueue::Entry32>::builder()
            .setup_coop_taskrun()
            .setup_taskrun_flag()
            .setup_cqsize(depth as u32 * 2)
            .build(depth as u32)
            .map_err(|source| Error::Open {
                path: node.clone(),
                source,
                hint: "io_uring_setup with 128-byte entries failed: the kernel needs io_uring (Linux 7.1+ for bsg)",
            })?;
        let mut bufs: Vec<DirectBuf> = (0..depth).map(|_| DirectBuf::new(len)).collect();
        let iov: Vec<libc::iovec> = bufs
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: b.len(),
            })
            .collect();
        // SAFETY: each iovec covers one live DirectBuf that `self` owns; the
        // kernel pins those pages while they are registered, and `Drop`
        // reaps (or leaks the memory of) every command still in flight.
        unsafe { ring.submitter().register_buffers(&iov) }.map_err(|source| Error::Open {
            path: node.clone(),
            source,
            hint: "IORING_REGISTER_BUFFERS failed: raise RLIMIT_MEMLOCK (ulimit -l) or use fewer, smaller buffers",
        })?;
        Ok(BareRing {
            ring,
            file,
            node,
            bufs,
            cdbs: vec![[0u8; 16]; depth].into_boxed_slice(),
            sense: vec![[0u8; SENSE]; depth].into_boxed_slice(),
            block,
            depth,
            in_flight: 0,
        })
    }

    /// The bsg node.
    pub fn node(&self) -> &Path {
        &self.node
    }

    /// The first bytes of buffer `i`, for checks.
    pub fn data(&self, i: usize) -> &[u8] {
        self.bufs.get(i).map_or(&[][..], |b| &b[..])
    }

    /// Writes slot `i`'s READ CDB for `lba` and queues its entry.
    fn push(&mut self, i: usize, lba: u64) -> Result<(), Error> {
        let len = self.bufs[i].len();
        let blocks = (len / self.block) as u32;
        let cdb = &mut self.cdbs[i];
        let cdb_len = if lba <= u32::MAX as u64 && blocks <= u16::MAX as u32 {
            *cdb = [0; 16];
            cdb[0] = 0x28; // READ(10)
            cdb[2..6].copy_from_slice(&(lba as u32).to_be_bytes());
            cdb[7..9].copy_from_slice(&(blocks as u16).to_be_bytes());
            10
        } else {
            *cdb = [0; 16];
            cdb[0] = 0x88; // READ(16)
            cdb[2..10].copy_from_slice(&lba.to_be_bytes());
            cdb[10..14].copy_from_slice(&blocks.to_be_bytes());
            16
        };
        let c = bsg_uring_cmd {
            request: cdb.as_ptr() as u64,
            request_len: cdb_len,
            protocol: BSG_PROTOCOL_SCSI,
            subprotocol: BSG_SUB_PROTOCOL_SCSI_CMD,
            max_response_len: SENSE as u32,
            response: self.sense[i].as_mut_ptr() as u64,
            din_xferp: self.bufs[i].as_mut_ptr() as u64,
            din_xfer_len: len as u32,
            ..Default::default()
        };
        let entry = opcode::UringCmd80::new(types::Fd(self.file.as_raw_fd()), 0)
            .cmd(c.to_bytes())
            .buf_index(Some(i as u16))
            .build()
            .user_data(i as u64);
        // SAFETY: the entry points at slot `i`'s CDB and sense arrays and at
        // registered buffer `i`, all owned by `self` and untouched until this
        // slot's completion is reaped (slot `i` is free until then; `run`
        // reaps every completion before it returns).
        unsafe { self.ring.submission().push(&entry) }.map_err(|_| {
            invalid(
                &self.node,
                "READ",
                "the submission queue is full although a slot is free".into(),
            )
        })
    }

    /// Times `commands` reads at the LBAs `cycle` gives with every slot in
    /// flight; fails on the first completion that is an errno, a SCSI status
    /// other than GOOD, or a residual.
    pub fn run(&mut self, cycle: &mut Cycle, commands: u64) -> Result<Sample, Error> {
        let len = self.bufs.first().map_or(0, |b| b.len());
        let cpu0 = CpuTime::now();
        let t0 = Instant::now();
        let mut free: Vec<usize> = (0..self.depth).rev().collect();
        let (mut sent, mut done) = (0u64, 0u64);
        let mut failure = None;
        while done < sent || (sent < commands && failure.is_none()) {
            while sent < commands && failure.is_none() {
                let Some(i) = free.pop() else { break };
                self.push(i, cycle.next_lba())?;
                self.in_flight += 1;
                sent += 1;
            }
            loop {
                match self.ring.submitter().submit_and_wait(1) {
                    Ok(_) => break,
                    Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                    Err(e) => {
                        return Err(Error::Open {
                            path: self.node.clone(),
                            source: e,
                            hint: "io_uring_enter failed",
                        })
                    }
                }
            }
            for c in self.ring.completion() {
                let st = BsgScsiStatus::from_res2(c.big_cqe()[0]);
                if failure.is_none()
                    && (c.result() != 0
                        || st.device_status != 0
                        || st.host_status != 0
                        || st.resid != 0)
                {
                    failure = Some(format!(
                        "a READ completed with result {}, status {:#04x}, host {:#04x}, residual {} (is this Linux 7.1+?)",
                        c.result(),
                        st.device_status,
                        st.host_status,
                        st.resid
                    ));
                }
                free.push(c.user_data() as usize);
                self.in_flight -= 1;
                done += 1;
            }
        }
        if let Some(reason) = failure {
            return Err(invalid(&self.node, "READ (bare io_uring)", reason));
        }
        let wall = t0.elapsed();
        Ok(Sample {
            commands,
            bytes: commands * len as u64,
            wall,
            cpu: Some(CpuTime::now().since(cpu0)),
            modes: ModeCounts {
                direct: commands,
                ..ModeCounts::default()
            },
        })
    }
}

impl Drop for BareRing {
    fn drop(&mut self) {
        // Commands still in the kernel (a run that failed half way) may yet
        // write their sense buffers: wait for them, and if that fails, leak
        // the memory they point at rather than free it under the kernel.
        while self.in_flight > 0 {
            match self.ring.submitter().submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(_) => break,
            }
            let n = self.ring.completion().count();
            self.in_flight = self.in_flight.saturating_sub(n);
        }
        if self.in_flight > 0 {
            std::mem::forget(std::mem::take(&mut self.sense));
            std::mem::forget(std::mem::take(&mut self.cdbs));
            std::mem::forget(std::mem::take(&mut self.bufs));
        }
    }
}
