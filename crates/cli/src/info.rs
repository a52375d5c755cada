//! `sgmap list` and `sgmap info`.

use std::path::Path;

use serde::Serialize;
use sgmap::discover::{self, SgDeviceInfo};
use sgmap::Device;

use crate::{print_json, Failure, Result};

/// The name of a SCSI peripheral device type.
pub(crate) fn type_name(t: u8) -> &'static str {
    match t {
        0x00 => "disk",
        0x01 => "tape",
        0x02 => "printer",
        0x03 => "processor",
        0x04 => "worm",
        0x05 => "cd/dvd",
        0x06 => "scanner",
        0x07 => "optical",
        0x08 => "changer",
        0x09 => "comms",
        0x0c => "raid",
        0x0d => "enclosure",
        0x0e => "rbc",
        0x0f => "card reader",
        0x11 => "osd",
        0x14 => "zbc disk",
        0x1e => "wlun",
        0x7f => "no lun",
        _ => "other",
    }
}

#[derive(Debug, Serialize)]
struct ListEntry {
    name: String,
    path: String,
    block_device: Option<String>,
    vendor: String,
    model: String,
    revision: String,
    device_type: Option<u8>,
    type_name: Option<&'static str>,
    hctl: Option<String>,
}

fn hctl_text(h: (u32, u32, u32, u64)) -> String {
    format!("{}:{}:{}:{}", h.0, h.1, h.2, h.3)
}

impl From<&SgDeviceInfo> for ListEntry {
    fn from(d: &SgDeviceInfo) -> Self {
        ListEntry {
            name: d.name.clone(),
            path: d.path.display().to_string(),
            block_device: d.block_device.clone(),
            vendor: d.vendor.clone(),
            model: d.model.clone(),
            revision: d.revision.clone(),
            device_type: d.device_type,
            type_name: d.device_type.map(type_name),
            hctl: d.hctl.map(hctl_text),
        }
    }
}

/// `sgmap list`.
pub(crate) fn list(json: bool) -> Result<()> {
    let devices = discover::list()
        .map_err(|e| Failure(format!("list: cannot read the sg devices in sysfs: {e}")))?;
    let entries: Vec<ListEntry> = devices.iter().map(ListEntry::from).collect();
    if json {
        return print_json(&entries);
    }
    if entries.is_empty() {
        println!("no sg devices (the sg driver is loaded but has no devices)");
        return Ok(());
    }
    println!(
        "{:<10} {:<8} {:<10} {:<9} {:<17} {:<5} H:C:T:L",
        "DEVICE", "BLOCK", "TYPE", "VENDOR", "MODEL", "REV"
    );
    for e in &entries {
        println!(
            "{:<10} {:<8} {:<10} {:<9} {:<17} {:<5} {}",
            e.path,
            e.block_device.as_deref().unwrap_or("-"),
            e.type_name.unwrap_or("?"),
            e.vendor,
            e.model,
            e.revision,
            e.hctl.as_deref().unwrap_or("?")
        );
    }
    Ok(())
}

#[derive(Debug, Serialize)]
struct InquiryInfo {
    vendor: String,
    product: String,
    revision: String,
    device_type: u8,
    type_name: &'static str,
    removable: bool,
}

#[derive(Debug, Serialize)]
struct CapacityInfo {
    blocks: u64,
    block_size: u32,
    bytes: u64,
}

#[derive(Debug, Serialize)]
struct InfoDoc {
    device: String,
    block_device: Option<String>,
    hctl: Option<String>,
    driver_version: u32,
    driver_version_text: String,
    supports_mmap: bool,
    inquiry: Option<InquiryInfo>,
    capacity: Option<CapacityInfo>,
    /// The reserved buffer a fresh fd gets.
    reserved_size_default: Option<usize>,
    /// The largest reserved buffer the kernel grants (the queue's limit).
    reserved_size_max: usize,
    /// The largest transfer one command can carry, in bytes.
    max_transfer: usize,
    max_sectors_kb: Option<u32>,
    max_hw_sectors_kb: Option<u32>,
    allow_dio: Option<bool>,
    sg_tablesize: Option<u32>,
    queue_depth: Option<u16>,
    /// What could not be read, and why.
    problems: Vec<String>,
}

fn version_text(v: u32) -> String {
    format!("{}.{}.{}", v / 10000, (v / 100) % 100, v % 100)
}

/// `sgmap info DEV`.
pub(crate) fn info(path: &Path, json: bool) -> Result<()> {
    // Read-only is enough: INQUIRY and READ CAPACITY are read-safe commands.
    let dev = Device::options().read_only(true).open(path)?;
    let mut problems = Vec::new();
    let inquiry = match dev.inquiry() {
        Ok(i) => Some(InquiryInfo {
            vendor: i.vendor,
            product: i.product,
            revision: i.revision,
            device_type: i.device_type,
            type_name: type_name(i.device_type),
            removable: i.removable,
        }),
        Err(e) => {
            problems.push(format!("INQUIRY: {}", e.report()));
            None
        }
    };
    let capacity = match dev.read_capacity() {
        Ok(c) => Some(CapacityInfo {
            blocks: c.blocks,
            block_size: c.block_size,
            bytes: c.bytes(),
        }),
        Err(e) => {
            problems.push(format!("READ CAPACITY: {}", e.report()));
            None
        }
    };
    let reserved_size_default = dev
        .reserved_size()
        .map_err(|e| problems.push(format!("SG_GET_RESERVED_SIZE: {}", e.report())))
        .ok();
    let max_transfer = dev.max_transfer();
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let listed = discover::list()
        .ok()
        .and_then(|l| l.into_iter().find(|d| d.name == name));
    let scsi_id = dev.scsi_id().ok();
    let doc = InfoDoc {
        device: path.display().to_string(),
        block_device: listed.as_ref().and_then(|d| d.block_device.clone()),
        hctl: scsi_id
            .map(|i| hctl_text((i.host, i.channel, i.target, i.lun)))
            .or_else(|| listed.as_ref().and_then(|d| d.hctl.map(hctl_text))),
        driver_version: dev.driver_version(),
        driver_version_text: version_text(dev.driver_version()),
        supports_mmap: dev.supports_mmap(),
        inquiry,
        capacity,
        reserved_size_default,
        reserved_size_max: max_transfer,
        max_transfer,
        max_sectors_kb: discover::max_sectors_kb(&name),
        max_hw_sectors_kb: discover::max_hw_sectors_kb(&name),
        allow_dio: discover::allow_dio(),
        sg_tablesize: dev.sg_table_size().ok(),
        queue_depth: scsi_id.map(|i| i.queue_depth),
        problems,
    };
    if json {
        return print_json(&doc);
    }
    print_info(&doc);
    Ok(())
}

fn print_info(d: &InfoDoc) {
    let kib = |v: Option<u32>| v.map_or("?".to_string(), |v| format!("{v} KiB"));
    println!("device:          {}", d.device);
    if let Some(i) = &d.inquiry {
        println!(
            "inquiry:         {} {} rev {} ({}{})",
            i.vendor,
            i.product,
            i.revision,
            i.type_name,
            if i.removable { ", removable" } else { "" }
        );
    }
    if let Some(c) = &d.capacity {
        println!(
            "capacity:        {} blocks of {} bytes ({})",
            c.blocks,
            c.block_size,
            crate::size::human(c.bytes)
        );
    }
    println!(
        "block device:    {}",
        d.block_device.as_deref().unwrap_or("none")
    );
    println!("h:c:t:l:         {}", d.hctl.as_deref().unwrap_or("?"));
    println!(
        "sg driver:       {} ({}), mmap-ed IO {}",
        d.driver_version_text,
        d.driver_version,
        if d.supports_mmap {
            "supported"
        } else {
            "not supported"
        }
    );
    println!(
        "reserved buffer: {} by default, at most {} granted",
        d.reserved_size_default
            .map_or("?".to_string(), |v| crate::size::human(v as u64)),
        crate::size::human(d.reserved_size_max as u64)
    );
    println!(
        "max transfer:    {} per command (max_sectors_kb {}, hardware {})",
        crate::size::human(d.max_transfer as u64),
        kib(d.max_sectors_kb),
        kib(d.max_hw_sectors_kb)
    );
    println!(
        "allow_dio:       {}",
        match d.allow_dio {
            Some(true) => "on (direct IO possible)",
            Some(false) =>
                "off: direct IO runs indirect (echo 1 > /sys/module/sg/parameters/allow_dio)",
            None => "unknown (no /sys/module/sg/parameters/allow_dio)",
        }
    );
    if let Some(t) = d.sg_tablesize {
        println!("sg_tablesize:    {t}");
    }
    if let Some(q) = d.queue_depth {
        println!("queue depth:     {q}");
    }
    for p in &d.problems {
        println!("unavailable:     {p}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_versions_print_dotted() {
        assert_eq!(version_text(30536), "3.5.36");
        assert_eq!(version_text(30122), "3.1.22");
    }

    #[test]
    fn type_names() {
        assert_eq!(type_name(0), "disk");
        assert_eq!(type_name(5), "cd/dvd");
        assert_eq!(type_name(0x0d), "enclosure");
        assert_eq!(type_name(0x55), "other");
    }
}
