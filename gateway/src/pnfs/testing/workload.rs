//! The seeded random workload on the Disk API, checked against an in-memory model after every
//! read. Reusable by any [`Disk`] (the pNFS disk on any server, the client helper's tests, a
//! guest test binary). On failure the error text starts with the seed.

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::disk::{Disk, ExtentStatus};

/// What to run.
#[derive(Debug, Clone)]
pub struct WorkloadConfig {
    /// The seed (print it; rerun with it).
    pub seed: u64,
    /// Operations in the sequential phase.
    pub ops: u32,
    /// Largest read/write.
    pub max_io_bytes: u32,
    /// The server block size, to aim sub-block writes at block interiors.
    pub block_bytes: u64,
    /// Include trims (the model then treats trimmed bytes as undefined until rewritten).
    pub trims: bool,
    /// Concurrent small-op workers after the sequential phase (0 = none). They write disjoint
    /// byte ranges that share server blocks, which tests RMW serialisation.
    pub workers: u32,
    /// Operations per worker.
    pub worker_ops: u32,
    /// Only touch the first `limit_bytes` of the disk (0 = all).
    pub limit_bytes: u64,
    /// Include flushes in the random mix (the final flush always runs).
    pub flushes: bool,
}

impl WorkloadConfig {
    /// A default mix for `seed`.
    pub fn new(seed: u64, block_bytes: u64) -> Self {
        Self {
            seed,
            ops: 400,
            max_io_bytes: 256 * 1024,
            block_bytes,
            trims: true,
            workers: 4,
            worker_ops: 50,
            limit_bytes: 0,
            flushes: true,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkloadReport {
    /// Reads checked.
    pub reads: u64,
    /// Writes.
    pub writes: u64,
    /// Sub-block writes among them.
    pub sub_block_writes: u64,
    /// Trims.
    pub trims: u64,
    /// write_zeroes.
    pub write_zeroes: u64,
    /// Flushes.
    pub flushes: u64,
    /// block_status calls checked.
    pub block_status: u64,
    /// Bytes compared.
    pub bytes_checked: u64,
}

/// The in-memory model: the expected bytes and which are defined.
#[derive(Debug, Clone)]
pub struct Model {
    /// Expected content.
    pub data: Vec<u8>,
    /// False where the content is unspecified (after a trim).
    pub defined: Vec<bool>,
}

impl Model {
    /// Compares `got` at `offset` with the model; `Err` names the first mismatch.
    pub fn check(&self, offset: u64, got: &[u8]) -> Result<u64, String> {
        let o = usize::try_from(offset).map_err(|e| e.to_string())?;
        let mut n = 0u64;
        for (i, &b) in got.iter().enumerate() {
            if self.defined[o + i] {
                n += 1;
                if self.data[o + i] != b {
                    return Err(format!(
                        "mismatch at byte {}: expected {:#04x}, got {:#04x}",
                        offset + i as u64,
                        self.data[o + i],
                        b
                    ));
                }
            }
        }
        Ok(n)
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let o = usize::try_from(offset).unwrap_or(0);
        self.data[o..o + data.len()].copy_from_slice(data);
        self.defined[o..o + data.len()].fill(true);
    }
}

fn pick_range(rng: &mut StdRng, size: u64, max: u64, block: u64) -> (u64, u64) {
    let len = match rng.gen_range(0..4) {
        // Sub-block, anywhere (block interior).
        0 => rng.gen_range(1..=block.min(max).clamp(1, 4096)),
        // 512-aligned sizes.
        1 => 512 * rng.gen_range(1..=(max / 512).max(1)),
        // Whole blocks.
        2 => block * rng.gen_range(1..=(max / block).max(1)),
        // Anything.
        _ => rng.gen_range(1..=max),
    }
    .min(size);
    let off = match rng.gen_range(0..3) {
        0 => rng.gen_range(0..=(size - len)) / 512 * 512,
        1 => rng.gen_range(0..=(size - len) / block) * block,
        _ => rng.gen_range(0..=(size - len)),
    };
    (off, len)
}

fn fill(rng: &mut StdRng, len: u64) -> Vec<u8> {
    let mut v = vec![0u8; usize::try_from(len).unwrap_or(0)];
    rng.fill(&mut v[..]);
    // Never all zeros: a lost write must be visible.
    if let Some(b) = v.first_mut() {
        *b |= 1;
    }
    v
}

/// Reads the whole disk (or `limit`) into a fresh model: the starting state.
pub async fn initial_model<D: Disk>(disk: &D, limit: u64) -> Result<Model, String> {
    let size = disk
        .info()
        .size_bytes
        .min(if limit == 0 { u64::MAX } else { limit });
    let mut data = Vec::with_capacity(usize::try_from(size).map_err(|e| e.to_string())?);
    let mut at = 0u64;
    while at < size {
        let n = (size - at).min(1 << 20);
        let chunk = disk
            .read(at, u32::try_from(n).map_err(|e| e.to_string())?)
            .await
            .map_err(|e| format!("initial read at {at}: {e}"))?;
        data.extend_from_slice(&chunk);
        at += n;
    }
    let len = data.len();
    Ok(Model {
        data,
        defined: vec![true; len],
    })
}

/// Runs the workload. `Err` text begins with `seed=<seed>`.
pub async fn run_workload<D: Disk>(
    disk: &D,
    cfg: &WorkloadConfig,
) -> Result<(WorkloadReport, Model), String> {
    let r = run_inner(disk, cfg).await;
    r.map_err(|e| format!("seed={} {e}", cfg.seed))
}

async fn run_inner<D: Disk>(
    disk: &D,
    cfg: &WorkloadConfig,
) -> Result<(WorkloadReport, Model), String> {
    let mut model = initial_model(disk, cfg.limit_bytes).await?;
    let size = model.data.len() as u64;
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let mut rep = WorkloadReport::default();
    let max = u64::from(cfg.max_io_bytes).min(size).max(1);
    let block = cfg.block_bytes.max(512);
    for op in 0..cfg.ops {
        let ctx = |what: &str, off: u64, len: u64| format!("op {op} {what} {off}+{len}");
        match rng.gen_range(0..100) {
            0..=34 => {
                let (off, len) = pick_range(&mut rng, size, max, block);
                let got = disk
                    .read(off, u32::try_from(len).map_err(|e| e.to_string())?)
                    .await
                    .map_err(|e| format!("{}: {e}", ctx("read", off, len)))?;
                if got.len() as u64 != len {
                    return Err(format!(
                        "{}: short read {}",
                        ctx("read", off, len),
                        got.len()
                    ));
                }
                rep.bytes_checked += model
                    .check(off, &got)
                    .map_err(|e| format!("{}: {e}", ctx("read", off, len)))?;
                rep.reads += 1;
            }
            35..=74 => {
                let (off, len) = pick_range(&mut rng, size, max, block);
                let data = fill(&mut rng, len);
                let fua = rng.gen_bool(0.05);
                disk.write(off, Bytes::from(data.clone()), fua)
                    .await
                    .map_err(|e| format!("{}: {e}", ctx("write", off, len)))?;
                model.write(off, &data);
                rep.writes += 1;
                if len < block {
                    rep.sub_block_writes += 1;
                }
            }
            75..=81 if cfg.trims => {
                let (off, len) = pick_range(&mut rng, size, max, block);
                disk.trim(off, len)
                    .await
                    .map_err(|e| format!("{}: {e}", ctx("trim", off, len)))?;
                let o = usize::try_from(off).map_err(|e| e.to_string())?;
                model.defined[o..o + usize::try_from(len).map_err(|e| e.to_string())?].fill(false);
                rep.trims += 1;
            }
            82..=88 => {
                let (off, len) = pick_range(&mut rng, size, max, block);
                disk.write_zeroes(off, len, rng.gen_bool(0.5), false)
                    .await
                    .map_err(|e| format!("{}: {e}", ctx("write_zeroes", off, len)))?;
                model.write(
                    off,
                    &vec![0u8; usize::try_from(len).map_err(|e| e.to_string())?],
                );
                rep.write_zeroes += 1;
            }
            89..=93 if cfg.flushes => {
                disk.flush()
                    .await
                    .map_err(|e| format!("op {op} flush: {e}"))?;
                rep.flushes += 1;
            }
            _ => {
                let (off, len) = pick_range(&mut rng, size, max, block);
                let st = disk
                    .block_status(off, len)
                    .await
                    .map_err(|e| format!("{}: {e}", ctx("block_status", off, len)))?;
                if st.is_empty() || st[0].offset_bytes != off {
                    return Err(format!(
                        "{}: bad status list {st:?}",
                        ctx("block_status", off, len)
                    ));
                }
                // Zero / Hole runs must read as zeros where the model is defined.
                for s in st.iter().filter(|s| s.status != ExtentStatus::Data) {
                    let e = (s.offset_bytes + s.length_bytes).min(off + len);
                    for i in s.offset_bytes..e {
                        let iu = usize::try_from(i).map_err(|e| e.to_string())?;
                        if model.defined[iu] && model.data[iu] != 0 {
                            return Err(format!(
                                "{}: byte {i} reported {:?} but holds {:#04x}",
                                ctx("block_status", off, len),
                                s.status,
                                model.data[iu]
                            ));
                        }
                    }
                }
                rep.block_status += 1;
            }
        }
    }
    // Concurrent phase: worker w owns bytes [k*R + w*S, k*R + (w+1)*S) for stride S that is not
    // a multiple of the block, so neighbours share blocks.
    if cfg.workers > 0 {
        let stride = 1536u64;
        let row = stride * u64::from(cfg.workers);
        let rows = size / row;
        if rows > 0 {
            let mut futs = Vec::new();
            for w in 0..cfg.workers {
                let seed = cfg.seed.wrapping_add(1000 + u64::from(w));
                let ops = cfg.worker_ops;
                futs.push(async move {
                    let mut rng = StdRng::seed_from_u64(seed);
                    let mut writes: Vec<(u64, Vec<u8>)> = Vec::new();
                    for _ in 0..ops {
                        let r = rng.gen_range(0..rows);
                        let base = r * row + u64::from(w) * stride;
                        let a = rng.gen_range(0..stride);
                        let len = rng.gen_range(1..=stride - a);
                        let data = fill(&mut rng, len);
                        disk.write(base + a, Bytes::from(data.clone()), false)
                            .await
                            .map_err(|e| format!("worker {w} write {}+{len}: {e}", base + a))?;
                        writes.push((base + a, data));
                    }
                    Ok::<_, String>(writes)
                });
            }
            let results = futures_join_all(futs).await;
            for r in results {
                for (off, data) in r? {
                    model.write(off, &data);
                    rep.writes += 1;
                    rep.sub_block_writes += 1;
                }
            }
        }
    }
    // Final full check.
    disk.flush()
        .await
        .map_err(|e| format!("final flush: {e}"))?;
    rep.flushes += 1;
    let mut at = 0u64;
    while at < size {
        let n = (size - at).min(1 << 20);
        let got = disk
            .read(at, u32::try_from(n).map_err(|e| e.to_string())?)
            .await
            .map_err(|e| format!("final read {at}+{n}: {e}"))?;
        rep.bytes_checked += model
            .check(at, &got)
            .map_err(|e| format!("final check: {e}"))?;
        rep.reads += 1;
        at += n;
    }
    Ok((rep, model))
}

/// Polls futures concurrently on the current task (no spawn, so borrowed disks work).
async fn futures_join_all<F: std::future::Future>(futs: Vec<F>) -> Vec<F::Output> {
    use std::pin::Pin;
    use std::task::Poll;
    let mut futs: Vec<Pin<Box<F>>> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in futs.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => out[i] = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    out.into_iter()
        .map(|o| o.expect("every future finished"))
        .collect()
}
