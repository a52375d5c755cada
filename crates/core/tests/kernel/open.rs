//! Opening devices and what they report.

use sgmap::{Device, Error, NodeKind};
use sgmap_testkit::{ensure, ensure_eq, Ctx, Failed, KernelTest};

use crate::common::open;

pub(crate) const TESTS: [KernelTest; 5] = [
    KernelTest::device("open_reports_version_scsi_id_and_limits", version_and_ids),
    KernelTest::scsi_debug(
        "inquiry_and_capacity_helpers_match_scsi_debug",
        inquiry_capacity,
    ),
    KernelTest::device(
        "exclusive_open_refuses_a_second_opener_with_a_hint",
        exclusive,
    ),
    KernelTest::scsi_debug("discovery_lists_the_scsi_debug_node", discovery),
    KernelTest::device(
        "reset_gives_a_unit_attention_reported_distinctly",
        reset_unit_attention,
    ),
];

fn version_and_ids(ctx: &Ctx) -> Result<(), Failed> {
    let dev = open(ctx)?;
    ensure_eq(dev.kind(), NodeKind::Sg, "node kind")?;
    ensure(
        dev.driver_version() >= 30122,
        format!("driver {}", dev.driver_version()),
    )?;
    ensure(dev.supports_mmap(), "mmap supported")?;
    let id = dev.scsi_id()?;
    ensure_eq(id.device_type, 0, "disk type")?;
    ensure(
        id.queue_depth >= 1,
        format!("queue depth {}", id.queue_depth),
    )?;
    ensure(dev.sg_table_size()? > 0, "sg table size")?;
    ensure(dev.default_timeout()?.as_secs() > 0, "default timeout")?;
    ensure(dev.reserved_size()? > 0, "reserved size")?;
    Ok(())
}

fn inquiry_capacity(ctx: &Ctx) -> Result<(), Failed> {
    let dev = open(ctx)?;
    let inq = dev.inquiry()?;
    ensure_eq(inq.vendor.as_str(), "Linux", "vendor")?;
    ensure_eq(inq.product.as_str(), "scsi_debug", "product")?;
    let cap = dev.read_capacity()?;
    ensure_eq(cap.bytes(), 256 * 1024 * 1024, "capacity (dev_size_mb=256)")?;
    ensure_eq(dev.block_size()?, cap.block_size, "cached block size")?;
    let pages = dev.inquiry_vpd(0)?;
    ensure_eq(pages.get(1).copied(), Some(0), "VPD page 0 header")?;
    Ok(())
}

fn exclusive(ctx: &Ctx) -> Result<(), Failed> {
    let _first = Device::options()
        .exclusive(true)
        .nonblocking(true)
        .open(&ctx.device)?;
    match Device::options()
        .exclusive(true)
        .nonblocking(true)
        .open(&ctx.device)
    {
        Err(e @ Error::Open { .. }) => {
            let text = e.to_string();
            ensure(
                text.contains(&ctx.device.display().to_string()),
                format!("names the device: {text}"),
            )?;
            ensure(
                text.contains("exclusive"),
                format!("says what to do: {text}"),
            )
        }
        Err(e) => Err(format!("wrong error: {e}").into()),
        Ok(_) => Err("a second exclusive open succeeded".into()),
    }
}

fn discovery(ctx: &Ctx) -> Result<(), Failed> {
    let list = sgmap::discover::list()?;
    let me = list
        .iter()
        .find(|d| d.path == ctx.device)
        .ok_or_else(|| format!("{} not in {list:?}", ctx.device.display()))?;
    ensure_eq(me.vendor.as_str(), "Linux", "vendor")?;
    ensure_eq(me.model.as_str(), "scsi_debug", "model")?;
    ensure_eq(me.device_type, Some(0), "type")?;
    ensure_eq(
        sgmap::discover::allow_dio(),
        Some(true),
        "allow_dio (the test bed loads sg with allow_dio=1)",
    )
}

fn reset_unit_attention(ctx: &Ctx) -> Result<(), Failed> {
    let dev = open(ctx)?;
    dev.reset(sgmap::Reset::Device)?;
    let err = dev
        .test_unit_ready()
        .err()
        .ok_or("TEST UNIT READY after a reset should get UNIT ATTENTION")?;
    ensure(err.is_unit_attention(), format!("unit attention: {err}"))?;
    let scsi = err.scsi().ok_or("a SCSI error")?;
    let sense = scsi.outcome.sense.as_ref().ok_or("sense data")?;
    ensure(sense.is_power_on_or_reset(), format!("ASC 0x29: {sense}"))?;
    ensure(
        err.to_string().contains("retry"),
        format!("says to retry: {err}"),
    )?;
    dev.wait_ready()?;
    dev.test_unit_ready()?;
    Ok(())
}
