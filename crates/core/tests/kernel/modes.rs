//! The three transfer modes: data integrity across all pairs, and honest
//! reports of what really ran.

use sgmap::{cdb::Cdb, BlockIo, Command, Data, DirectBuf, Fallback, Mode};
use sgmap_testkit::{ensure, ensure_eq, Ctx, Failed, KernelTest, Knob};

use crate::common::{data, open, read_with, same, write_with, WAYS};

pub(crate) const TESTS: [KernelTest; 6] = [
    KernelTest::scsi_debug(
        "integrity_nine_mode_pairs_at_4k_64k_and_granted_max",
        nine_pairs,
    ),
    KernelTest::scsi_debug(
        "direct_io_with_allow_dio_off_reports_fallback",
        allow_dio_off,
    ),
    KernelTest::scsi_debug(
        "direct_io_misaligned_reports_fallback_and_data_is_right",
        misaligned,
    ),
    KernelTest::scsi_debug(
        "direct_io_rule_is_the_queues_dma_alignment_not_a_page",
        dma_alignment_rule,
    ),
    KernelTest::scsi_debug("outcome_reports_mode_duration_and_resid", outcome_fields),
    KernelTest::scsi_debug(
        "indirect_command_on_mapped_fd_goes_through_the_reserved_buffer",
        indirect_uses_reserved,
    ),
];

fn nine_pairs(ctx: &Ctx) -> Result<(), Failed> {
    let dev = open(ctx)?;
    let block = dev.block_size()? as usize;
    let max = dev.max_transfer() / 4096 * 4096;
    drop(dev);
    let mut lba = 100_000 * 512 / block as u64;
    let mut pairs = 0;
    for len in [4096, 64 * 1024, max] {
        for (wi, w) in WAYS.iter().enumerate() {
            for (ri, r) in WAYS.iter().enumerate() {
                let want = data((len + wi * 3 + ri) as u64, lba, block, len);
                write_with(ctx, *w, lba, &want)?;
                let got = read_with(ctx, *r, lba, len)?;
                same(
                    &got,
                    &want,
                    &format!("{len} bytes written {w:?}, read {r:?}"),
                )?;
                lba += (len / block) as u64;
                pairs += 1;
            }
        }
    }
    ensure_eq(pairs, 27, "pairs checked")
}

fn allow_dio_off(ctx: &Ctx) -> Result<(), Failed> {
    let dev = open(ctx)?;
    let _off = Knob::allow_dio(false)?;
    let mut buf = DirectBuf::new(64 * 1024);
    let block = dev.block_size()? as usize;
    let t = dev.read_blocks(0, &mut buf[..64 * 1024 / block * block], BlockIo::direct())?;
    ensure_eq(t.mode, Mode::Indirect, "mode that really ran")?;
    ensure_eq(t.fallback, Some(Fallback::AllowDioOff), "fallback reason")?;
    Ok(())
}

fn misaligned(ctx: &Ctx) -> Result<(), Failed> {
    let dev = open(ctx)?;
    let block = dev.block_size()? as usize;
    let lba = 200_000 * 512 / block as u64;
    let len = 16 * 1024;
    let want = data(21, lba, block, len);
    dev.write_blocks(lba, &want, BlockIo::indirect())?;
    let mut backing = DirectBuf::new(len + 4096);
    // One byte past a page boundary: the kernel cannot pin it for DMA.
    let buf = &mut backing[1..1 + len];
    let t = dev.read_blocks(lba, buf, BlockIo::direct())?;
    ensure_eq(t.mode, Mode::Indirect, "misaligned direct IO ran indirect")?;
    ensure_eq(t.fallback, Some(Fallback::Misaligned), "fallback reason")?;
    same(buf, &want, "misaligned read data")
}

/// Direct IO needs the queue's DMA alignment, not a page: buffers a few
/// bytes past a page boundary really do direct IO, and the fallback reason
/// for one that is not aligned says so.
fn dma_alignment_rule(ctx: &Ctx) -> Result<(), Failed> {
    let dev = open(ctx)?;
    let block = dev.block_size()? as usize;
    let lba = 205_000 * 512 / block as u64;
    let len = 4 * block;
    let want = data(22, lba, block, len);
    dev.write_blocks(lba, &want, BlockIo::indirect())?;
    let align = dev
        .dma_alignment()
        .ok_or("no DMA alignment known for the test bed's queue")?;
    ensure(
        align.is_power_of_two() && align < 4096,
        format!("DMA alignment {align}"),
    )?;
    let mut backing = DirectBuf::new(len + 4096);
    for offset in [align, 2 * align, 8usize.max(align)] {
        let buf = &mut backing[offset..offset + len];
        buf.fill(0);
        let t = dev.read_blocks(lba, buf, BlockIo::direct())?;
        ensure_eq(
            (t.mode, t.fallback),
            (Mode::Direct, None),
            format!("a buffer {offset} bytes past a page ({align}-byte alignment)"),
        )?;
        same(buf, &want, &format!("direct read at +{offset}"))?;
    }
    if align > 1 {
        let buf = &mut backing[1..1 + len];
        let t = dev.read_blocks(lba, buf, BlockIo::direct())?;
        ensure_eq(
            (t.mode, t.fallback),
            (Mode::Indirect, Some(Fallback::Misaligned)),
            "a buffer 1 byte past a page",
        )?;
        same(buf, &want, "indirect read at +1")?;
    }
    // The length follows the same rule: 96 bytes of INQUIRY, direct.
    let mut inq = DirectBuf::new(96);
    let out = dev.execute(
        &Command::new(Cdb::inquiry(96)).direct(),
        Data::FromDevice(&mut inq),
    )?;
    ensure_eq(out.mode, Mode::Direct, "a 96-byte direct INQUIRY")?;
    let text = Fallback::Misaligned.to_string();
    ensure(
        !text.contains("page-aligned") && text.contains("DMA alignment"),
        format!("the fallback text states the kernel's rule: {text}"),
    )
}

fn outcome_fields(ctx: &Ctx) -> Result<(), Failed> {
    let dev = open(ctx)?;
    let tur = dev.execute(&Command::new(Cdb::test_unit_ready()), Data::None)?;
    ensure(tur.is_good(), "TUR good")?;
    ensure_eq(tur.mode, Mode::NoData, "no-data mode")?;
    let mut buf = DirectBuf::new(8192);
    let block = dev.block_size()? as u16;
    let cmd = Command::new(Cdb::read_10(0, 8192 / block)).direct();
    let out = dev
        .execute(&cmd, Data::FromDevice(&mut buf))?
        .check(dev.path())?;
    ensure_eq(out.mode, Mode::Direct, "direct mode")?;
    ensure_eq(out.requested_mode, Mode::Direct, "requested mode")?;
    ensure_eq(out.fallback, None, "no fallback")?;
    ensure_eq(
        (out.requested, out.resid, out.transferred()),
        (8192, 0, 8192),
        "lengths",
    )?;
    ensure_eq(out.command_name(), "READ(10)", "command name")?;
    // Asking for more than the device sends: INQUIRY with a 255-byte allocation.
    let mut big = vec![0u8; 255];
    let inq = dev
        .execute(&Command::new(Cdb::inquiry(255)), Data::FromDevice(&mut big))?
        .check(dev.path())?;
    ensure(
        inq.resid > 0 && inq.transferred() < 255,
        format!("INQUIRY resid {}", inq.resid),
    )?;
    Ok(())
}

fn indirect_uses_reserved(ctx: &Ctx) -> Result<(), Failed> {
    // The kernel fact behind the rule that a mapped fd carries only mmap-ed
    // commands and commands without data: an indirect command that fits the
    // reserved buffer moves its data through it, so the mapped bytes change
    // although no mmap-ed command ran. Shown with a raw SG_IO, since sgmap
    // itself refuses to send it (`Device::execute` on a mapped device).
    use std::os::fd::AsRawFd;
    let dev = open(ctx)?;
    let block = dev.block_size()? as usize;
    let lba = 300_000 * 512 / block as u64;
    let want = data(31, lba, block, 8192);
    dev.write_blocks(lba, &want, BlockIo::indirect())?;
    let mut m = dev.map_reserved(64 * 1024)?;
    m.as_mut_slice().ok_or("writable")?.fill(0);
    let mut buf = vec![0u8; 8192];
    let refused = m
        .device()
        .read_blocks(lba, &mut buf, BlockIo::indirect())
        .err()
        .ok_or("sgmap sent an indirect read on a mapped fd")?;
    ensure(
        refused.to_string().contains("reserved buffer"),
        format!("sgmap's refusal says why: {refused}"),
    )?;
    ensure(m.as_slice().iter().all(|&b| b == 0), "nothing was sent")?;
    let cdb = Cdb::read(lba, (8192 / block) as u32)?;
    let mut sense = [0u8; 32];
    let mut hdr = sgmap_sys::sg_io_hdr::new();
    hdr.dxfer_direction = sgmap_sys::SG_DXFER_FROM_DEV;
    hdr.cmd_len = cdb.len() as u8;
    hdr.cmdp = cdb.as_bytes().as_ptr().cast_mut();
    hdr.mx_sb_len = sense.len() as u8;
    hdr.sbp = sense.as_mut_ptr();
    hdr.dxfer_len = 8192;
    hdr.dxferp = buf.as_mut_ptr().cast();
    hdr.timeout = 10_000;
    // SAFETY: the header points at the CDB, sense and data buffers above,
    // which live across the call; no slice of the mapping is held meanwhile.
    unsafe { sgmap_sys::ioctl::sg_io(m.as_raw_fd(), &mut hdr) }?;
    ensure_eq(hdr.status, 0, "raw READ status")?;
    same(&buf, &want, "indirect read")?;
    same(
        &m.as_slice()[..8192],
        &want,
        "the reserved buffer carried the indirect read",
    )
}
